"""The GitHub Actions workflows: what they run, on what, and that every action is pinned.

actionlint checks their syntax, expressions and run: scripts in `make lint`;
these tests hold them to what the project needs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
EXACT = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")


def load(name: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return data


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    on: dict[str, Any] = workflow.get("on", workflow.get(True))
    return on


def test_the_three_workflows_exist() -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.y*ml")) == ["ci.yaml", "e2e.yaml", "release.yaml"]


@pytest.mark.parametrize("name", ["ci.yaml", "e2e.yaml", "release.yaml"])
def test_every_action_is_pinned_to_an_exact_version(name: str) -> None:
    uses = [step["uses"] for step in steps(load(name)) if "uses" in step]
    assert uses
    assert [u for u in uses if not EXACT.match(u)] == []


def test_ci_runs_make_test_on_python_311_and_go_126_with_the_caches() -> None:
    workflow = load("ci.yaml")
    all_steps = steps(workflow)
    assert any(s.get("run") == "make test" for s in all_steps)
    by_action = {s["uses"].split("@")[0]: s for s in all_steps if "uses" in s}
    assert by_action["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert by_action["actions/setup-go"]["with"]["go-version"] == "1.26"
    cached = by_action["actions/cache"]["with"]["path"].split()
    assert cached == ["~/go/pkg/mod", "~/.cache/go-build", "~/.cache/slm-operator"]
    assert {"push", "pull_request"} <= set(triggers(workflow))


def test_e2e_runs_the_kind_script_on_main_and_nightly_and_fails_on_skip() -> None:
    workflow = load("e2e.yaml")
    on = triggers(workflow)
    assert on["push"]["branches"] == ["main"]
    assert on["schedule"][0]["cron"]
    run = next(s["run"] for s in steps(workflow) if "e2e/run.sh" in s.get("run", ""))
    assert "PASS" in run  # e2e/run.sh exits 0 on SKIP; the workflow must not
    uses = {s["uses"].split("@")[0] for s in steps(workflow) if "uses" in s}
    assert {"helm/kind-action", "azure/setup-helm"} <= uses
    # the script's own model: smollm2-135m on the edge tier through Ollama
    assert "catalog: smollm2-135m" in (ROOT / "e2e" / "run.sh").read_text()


def test_release_pushes_the_image_and_the_chart_to_ghcr_on_version_tags() -> None:
    workflow = load("release.yaml")
    assert triggers(workflow)["push"]["tags"] == ["v*"]
    assert workflow["permissions"]["packages"] == "write"
    push = next(s for s in steps(workflow) if s.get("uses", "").startswith("docker/build-push-action@"))
    assert push["with"]["push"] is True
    assert push["with"]["tags"].startswith("${{ env.IMAGE }}:")
    assert workflow["env"]["IMAGE"] == "ghcr.io/slm-operator/slm-operator"
    chart = next(s["run"] for s in steps(workflow) if "helm push" in s.get("run", ""))
    assert "helm package charts/slm-operator" in chart
    assert workflow["env"]["CHART_REPOSITORY"].startswith("oci://ghcr.io/")


def test_make_lint_runs_actionlint_on_the_workflows() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(ACTIONLINT) -shellcheck $(BIN)/shellcheck .github/workflows/*.yaml" in lint
