"""`slmctl completion bash|zsh`: the generated scripts complete as a user types.

The bash script is sourced into a real bash and its function called with COMP_WORDS set as
bash's completion machinery sets them; zsh, where installed, runs the same function through
its bashcompinit module.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from slm_operator.cli import main

ROOT = Path(__file__).resolve().parents[2]


def script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


CASES = [
    (["slmctl", "pl"], ["plan"]),
    (
        ["slmctl", ""],
        ["plan", "render", "crd", "catalog", "tiers", "completion", "run", "gateway", "--help", "--version"],
    ),
    (["slmctl", "plan", "-o", ""], ["table", "wide", "json", "yaml"]),
    (["slmctl", "catalog", "--output", "w"], ["wide"]),
    (["slmctl", "catalog", "smollm2-1"], ["smollm2-135m", "smollm2-1.7b"]),
    (["slmctl", "tiers", "nvidia-l"], ["nvidia-l4", "nvidia-l40s"]),
    (["slmctl", "plan", "--tier", "gpu-"], ["gpu-large", "gpu-medium", "gpu-small"]),
    (["slmctl", "render", "--mon"], ["--monitoring-available"]),
    (["slmctl", "completion", ""], ["bash", "zsh"]),
    (["slmctl", "render", "examples/smollm2"], ["examples/smollm2-135m-edge.yaml"]),
    (["slmctl", "plan", "--config", "examples/operator-config."], ["examples/operator-config.yaml"]),
    (["kubectl-slm", "cr"], ["crd"]),
]


def _bash_words(words: list[str]) -> str:
    return " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize(("words", "expected"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bash_completion(
    words: list[str], expected: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "slmctl.bash"
    path.write_text(script("bash", capsys))
    probe = (
        f"source {path}\n"
        f"COMP_WORDS=({_bash_words(words)}); COMP_CWORD={len(words) - 1}\n"
        "_slmctl_complete\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
        "complete -p slmctl kubectl-slm\n"
    )
    result = subprocess.run(
        ["bash", "--norc", "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    *replies, reg1, reg2 = result.stdout.splitlines()
    assert sorted(replies) == sorted(expected)
    assert reg1.endswith(" slmctl")
    assert reg2.endswith(" kubectl-slm")


def test_zsh_script_wraps_the_bash_function(capsys: pytest.CaptureFixture[str]) -> None:
    bash, zsh = script("bash", capsys), script("zsh", capsys)
    assert zsh.endswith(bash)
    assert "bashcompinit" in zsh.removesuffix(bash)


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
@pytest.mark.parametrize(("words", "expected"), CASES[:9], ids=[" ".join(c[0]) for c in CASES[:9]])
def test_zsh_completion(
    words: list[str], expected: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "slmctl.zsh"
    path.write_text(script("zsh", capsys))
    # bashcompinit calls the function with sh emulation (0-based arrays), as done here.
    probe = (
        f"source {path}\n"
        "emulate sh -c '"
        f"COMP_WORDS=({' '.join(repr(w) for w in words).replace(chr(39), chr(34))}); "
        f"COMP_CWORD={len(words) - 1}; _slmctl_complete; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
        "'\n"
    )
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["zsh", "-f", "-c", probe], cwd=ROOT, capture_output=True, text=True, env=env, check=True
    )
    # zsh's compgen stand-in returns every word; zsh's own matcher then keeps those that start
    # with what was typed, as this does.
    replies = [line for line in result.stdout.splitlines() if line.startswith(words[-1])]
    assert sorted(replies) == sorted(expected)


def test_unknown_shell_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["completion", "fish"])
    assert exc.value.code == 2
    assert "invalid choice: 'fish'" in capsys.readouterr().err
