"""Every shipped example becomes Ready on the simulated cluster: the real scheduler places its
pods on a fake node whose GPU feature discovery labels match the tier, kwok runs them, the
Deployment controller makes them available, and the operator reports Ready."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import Kube, wait_for
from scenario import children, pods_of, status, wait_phase
from simcluster import ROOT, OperatorProcess

EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.name != "operator-config.yaml")

# The GPU product each example's tier must land on (the nodes of e2e/sim/nodes.yaml), or None
# for a CPU tier (which must never land on a tainted GPU node).
EXPECTED_PRODUCTS: dict[str, set[str] | None] = {
    "cpu": None,
    "edge": None,
    # gpu-small admits every GPU with >= 15000 MiB and compute capability >= 7.5.
    "gpu-small": {
        "Tesla-T4",
        "NVIDIA-L4",
        "NVIDIA-A10G",
        "NVIDIA-L40S",
        "NVIDIA-A100-SXM4-40GB",
        "NVIDIA-A100-SXM4-80GB",
        "NVIDIA-H100-80GB-HBM3",
        "NVIDIA-GeForce-RTX-4090",
    },
    # gpu-medium: >= 22000 MiB and compute capability >= 8.0 (not the T4).
    "gpu-medium": {
        "NVIDIA-L4",
        "NVIDIA-A10G",
        "NVIDIA-L40S",
        "NVIDIA-A100-SXM4-40GB",
        "NVIDIA-A100-SXM4-80GB",
        "NVIDIA-H100-80GB-HBM3",
        "NVIDIA-GeForce-RTX-4090",
    },
    "nvidia-l4": {"NVIDIA-L4"},
    "rtx-4090": {"NVIDIA-GeForce-RTX-4090"},
}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def prerequisites(admin: Kube, doc: dict[str, Any]) -> None:
    """The Secrets an example says the user creates first (a Hugging Face token, own API keys)."""
    namespace = doc["metadata"]["namespace"]
    spec = doc["spec"]
    refs = [spec.get("modelAccessSecretRef"), (spec.get("auth") or {}).get("apiKeySecretRef")]
    for ref in filter(None, refs):
        value = base64.b64encode(b"secret-value-for-tests").decode()
        admin.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": ref["name"], "namespace": namespace},
                "data": {ref.get("key", "token"): value},
            }
        )


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_becomes_ready_on_a_matching_node(admin: Kube, operator: OperatorProcess, path: Path) -> None:
    docs = documents(path)
    for doc in docs:
        admin.ensure_namespace(doc["metadata"]["namespace"])
        prerequisites(admin, doc)
        admin.apply(doc, manager="kubectl")
    nodes = {n["metadata"]["name"]: n for n in admin.list("Node")}
    for doc in docs:
        namespace, name, tier = (
            doc["metadata"]["namespace"],
            doc["metadata"]["name"],
            doc["spec"]["hardware"]["tier"],
        )
        current = wait_phase(admin, namespace, name, "Ready", timeout=90)
        assert current["observedGeneration"] == doc.get("metadata", {}).get("generation", 1)
        assert current["plan"]["tier"] == tier
        pods = wait_for(lambda ns=namespace, n=name: pods_of(admin, ns, n), timeout=30, message="pods")
        assert len(pods) >= (doc["spec"].get("replicas") or 1)
        expected = EXPECTED_PRODUCTS[tier]
        for pod in pods:
            node = nodes[pod["spec"]["nodeName"]]
            labels = node["metadata"]["labels"]
            taints = {t["key"] for t in node["spec"].get("taints") or []}
            if expected is None:
                assert "nvidia.com/gpu" not in taints, (
                    f"CPU model {name} landed on GPU node {node['metadata']['name']}"
                )
                assert "nvidia.com/gpu.product" not in labels
            else:
                product = labels.get("nvidia.com/gpu.product")
                assert product in expected, (
                    f"{name} ({tier}) landed on {node['metadata']['name']} ({product})"
                )
                runtime = pod["spec"]["containers"][0]
                assert runtime["resources"]["limits"]["nvidia.com/gpu"] == str(current["plan"]["gpus"])
        assert status(admin, namespace, name)["readyReplicas"] >= 1
    # What the operator created is exactly what `slmctl render` says it would.
    assert {
        k for doc in docs for k in children(admin, doc["metadata"]["namespace"], doc["metadata"]["name"])
    } == (rendered_children(path))


def rendered_children(path: Path) -> set[tuple[str, str]]:
    slmctl = Path(sys.executable).parent / "slmctl"
    out = subprocess.run(
        [str(slmctl), "render", str(path), "--config", str(ROOT / "examples" / "operator-config.yaml")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d}
