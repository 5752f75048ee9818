"""The simulated cluster's own files: its fake nodes cover every built-in tier, and its script
fails with one clear line where Go is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from slm_operator.catalog.loader import builtin_config

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "e2e" / "sim"
NODES = [d for d in yaml.safe_load_all((SIM / "nodes.yaml").read_text()) if d]


def _expression_holds(labels: dict[str, str], expr: dict[str, Any]) -> bool:
    value = labels.get(expr["key"])
    operator, values = expr["operator"], expr.get("values") or []
    if operator == "In":
        return value in values
    if operator == "NotIn":
        return value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        if value is None:
            return False
        return int(value) > int(values[0]) if operator == "Gt" else int(value) < int(values[0])
    raise AssertionError(f"unknown operator {operator}")


def admits(tier: Any, node: dict[str, Any]) -> bool:
    """Whether the scheduler may place the tier's pods on the node (selector, affinity, taints)."""
    labels = node["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in (tier.node_selector or {}).items()):
        return False
    terms = tier.node_affinity or []
    if terms and not any(
        all(_expression_holds(labels, e.model_dump(by_alias=True)) for e in term.match_expressions)
        for term in terms
    ):
        return False
    tolerated = {t.key for t in tier.tolerations or []}
    return all(t["key"] in tolerated for t in node["spec"].get("taints") or [])


@pytest.mark.parametrize("tier_name", sorted(builtin_config().tiers))
def test_every_builtin_tier_has_a_node(tier_name: str) -> None:
    tier = builtin_config().tiers[tier_name]
    matching = [n for n in NODES if admits(tier, n)]
    assert matching, f"no node in e2e/sim/nodes.yaml admits tier {tier_name}"
    for node in matching:
        capacity = node["status"]["capacity"]
        if tier.gpus:
            assert int(capacity.get("nvidia.com/gpu", 0)) >= tier.gpus
            gib = int(node["metadata"]["labels"]["nvidia.com/gpu.memory"]) / 1024
            assert gib >= tier.gpu_memory_gib, (
                f"{node['metadata']['name']} has less GPU memory than {tier_name}"
            )
        else:
            assert "nvidia.com/gpu" not in capacity, f"CPU tier {tier_name} admits GPU node"


def test_gpu_nodes_carry_the_gpu_taint_and_the_feature_discovery_labels() -> None:
    gpu_nodes = [n for n in NODES if "nvidia.com/gpu" in n["status"]["capacity"]]
    assert len(gpu_nodes) >= 7
    for node in gpu_nodes:
        labels = node["metadata"]["labels"]
        for key in ("product", "memory", "compute.major", "compute.minor", "count"):
            assert f"nvidia.com/gpu.{key}" in labels, (node["metadata"]["name"], key)
        assert labels["nvidia.com/gpu.count"] == node["status"]["capacity"]["nvidia.com/gpu"]
        assert {"key": "nvidia.com/gpu", "effect": "NoSchedule"} in node["spec"]["taints"]


def test_without_go_the_build_says_so_in_one_line(tmp_path: Path) -> None:
    # A PATH with what the script needs to get that far, and no go.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sed", "awk", "dirname", "cut", "sort", "head", "mkdir"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "SIM_BIN_DIR": str(tmp_path / "empty")}
    result = subprocess.run(
        [str(bin_dir / "bash"), str(SIM / "cluster.sh"), "build"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "sim: error: Go >= 1.26 is needed to build the simulated cluster (https://go.dev/dl/); "
        "'go' is not on PATH"
    ]
