"""Every shipped example becomes Ready on the simulated cluster: the real scheduler places its
pods on a fake node whose GPU feature discovery labels match the tier, kwok runs them, the
Deployment controller makes them available, and the operator reports Ready.

An example that names its operator configuration (``# slmctl-config: FILE``) is served by an
operator started with the chart rendered from that file's values, as a cluster configured that
way would run it; the others by the session's operator (the chart's defaults), just as
``slmctl plan`` plans them.
"""

from __future__ import annotations

import base64
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import Kube, wait_for
from sim_scenario import children, pods_of, status, wait_phase
from simcluster import ROOT, OperatorProcess, apply_crd, load_test_module, minimal_crd, render_chart

from slm_operator.cli import config_named_in

pytestmark = pytest.mark.timeout(240)

EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if not p.name.startswith("operator-config"))

# The GPU products each tier admits among the nodes of e2e/sim/nodes.yaml, or None for a CPU
# tier (whose pods must never land on a tainted GPU node).
ALL_GPUS = {
    "Tesla-T4",
    "NVIDIA-L4",
    "NVIDIA-A10G",
    "NVIDIA-L40S",
    "NVIDIA-A100-SXM4-40GB",
    "NVIDIA-A100-SXM4-80GB",
    "NVIDIA-H100-80GB-HBM3",
    "NVIDIA-GeForce-RTX-4090",
}
EXPECTED_PRODUCTS: dict[str, set[str] | None] = {
    "cpu": None,
    "edge": None,
    "gpu-small": ALL_GPUS,  # >= 15000 MiB and compute capability >= 7.5
    "gpu-medium": ALL_GPUS - {"Tesla-T4"},  # >= 22000 MiB and compute capability >= 8.0
    "nvidia-l4": {"NVIDIA-L4"},
    "rtx-4090": {"NVIDIA-GeForce-RTX-4090"},
}


AIRGAP = load_test_module("airgap_render_cluster", ROOT / "tests" / "unit" / "test_airgap_render.py")


def documents(path: Path) -> list[dict[str, Any]]:
    """The example's models (what the operator serves)."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "SmallLanguageModel"]


def other_documents(path: Path) -> list[dict[str, Any]]:
    """What else the example file asks the user to apply (e.g. a claim with the adapters)."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") != "SmallLanguageModel"]


def config_of(path: Path) -> Path | None:
    named = config_named_in(path)
    return None if named is None else named.resolve()


def uses_keda(path: Path) -> bool:
    return any((d["spec"].get("autoscaling") or {}).get("engine") == "keda" for d in documents(path))


def prerequisites(admin: Kube, doc: dict[str, Any], claims: set[str]) -> None:
    """What an example says the user creates first: Secrets it references (a Hugging Face token,
    its own API keys) and the claim its weights or adapters are pre-loaded on, unless the
    example file defines that claim itself (``claims``)."""
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
    sources = [spec["model"].get("source") or "", *(a["source"] for a in spec.get("adapters") or [])]
    for claim in {s.removeprefix("pvc://").split("/")[0] for s in sources if s.startswith("pvc://")} - claims:
        preloaded_claim(admin, namespace, claim)


def preloaded_claim(admin: Kube, namespace: str, claim: str) -> None:
    """A claim bound to a volume (as an administrator pre-loads weights on one)."""
    volume = f"{namespace}-{claim}"
    admin.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "100Gi"},
                "accessModes": ["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"],
                "storageClassName": "preloaded",
                "hostPath": {"path": f"/srv/{volume}"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    admin.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "storageClassName": "preloaded",
                "volumeName": volume,
                "resources": {"requests": {"storage": "100Gi"}},
            },
        }
    )


@pytest.fixture
def serving(
    request: pytest.FixtureRequest, admin: Kube, operator_process: OperatorProcess, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator for the example's configuration (and KEDA's CRD where the example scales
    with KEDA, present before the operator starts so that discovery finds it)."""
    path: Path = request.param
    config = config_of(path)
    if uses_keda(path):
        apply_crd(admin, minimal_crd("keda.sh", "ScaledObject", "scaledobjects", "v1alpha1"))
    if config is None:
        if uses_keda(path) or not operator_process.alive():
            operator_process.stop()
            operator_process.start()
        try:
            yield operator_process
        finally:
            remove_models(admin, path)
            if uses_keda(path):  # leave no KEDA API behind for the scenarios that need it absent
                admin.delete("CustomResourceDefinition", None, "scaledobjects.keda.sh")
                wait_for(
                    lambda: admin.get("CustomResourceDefinition", None, "scaledobjects.keda.sh") is None,
                    timeout=60,
                    message="KEDA's stand-in CRD removed",
                )
                operator_process.restart()
        return
    values = yaml.safe_load(config.read_text())
    config_map = next(
        o
        for o in render_chart(values)
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-config")
    )
    install = dataclasses.replace(operator_process.install, config_yaml=config_map["data"]["config.yaml"])
    operator_process.stop()
    dedicated = OperatorProcess(
        install=install,
        kubeconfig=operator_process.kubeconfig,
        workdir=tmp_path,
        extra_args=list(operator_process.extra_args),
    )
    dedicated.start()
    try:
        yield dedicated
    finally:
        remove_models(admin, path)
        dedicated.stop()
        operator_process.start()


def remove_models(admin: Kube, path: Path) -> None:
    """Give the fake nodes' capacity back for the next example."""
    for doc in documents(path):
        admin.delete("SmallLanguageModel", doc["metadata"]["namespace"], doc["metadata"]["name"])


@pytest.mark.parametrize("serving", EXAMPLES, ids=[p.stem for p in EXAMPLES], indirect=True)
def test_example_becomes_ready_on_a_matching_node(
    admin: Kube, serving: OperatorProcess, request: Any
) -> None:
    path: Path = request.node.callspec.params["serving"]
    docs = documents(path)
    claims = set()
    for doc in other_documents(path):
        admin.ensure_namespace(doc["metadata"]["namespace"])
        admin.apply(doc, manager="kubectl")
        if doc["kind"] == "PersistentVolumeClaim":
            claims.add(doc["metadata"]["name"])
    for doc in docs:
        admin.ensure_namespace(doc["metadata"]["namespace"])
        prerequisites(admin, doc, claims)
        admin.apply(doc, manager="kubectl")
    nodes = {n["metadata"]["name"]: n for n in admin.list("Node")}
    for doc in docs:
        namespace, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
        tier = doc["spec"]["hardware"]["tier"]
        current = wait_phase(admin, namespace, name, "Ready", timeout=90)
        assert current["plan"]["tier"] == tier
        replicas = doc["spec"].get("replicas") or 1
        pods = wait_for(
            lambda ns=namespace, n=name, r=replicas: (
                len(pods_of(admin, ns, n)) >= r and pods_of(admin, ns, n)
            ),
            timeout=60,
            message=f"{name}: {replicas} pods",
        )
        expected = EXPECTED_PRODUCTS[tier]
        for pod in pods:
            node = nodes[pod["spec"]["nodeName"]]
            labels = node["metadata"]["labels"]
            taints = {t["key"] for t in node["spec"].get("taints") or []}
            where = f"{name} ({tier}) on {node['metadata']['name']}"
            if expected is None:
                assert "nvidia.com/gpu" not in taints, where
                assert "nvidia.com/gpu.product" not in labels, where
            else:
                assert labels.get("nvidia.com/gpu.product") in expected, where
                runtime = pod["spec"]["containers"][0]
                assert runtime["resources"]["limits"]["nvidia.com/gpu"] == str(current["plan"]["gpus"])
            if path.name.startswith("airgap"):
                # Egress-free settings: the pods the API server stores name no public host.
                assert AIRGAP.public_names_in_pod(name, pod["spec"]) == []
        assert status(admin, namespace, name)["readyReplicas"] >= 1
    # What the operator created is exactly what `slmctl render` says it would.
    created = {
        key for doc in docs for key in children(admin, doc["metadata"]["namespace"], doc["metadata"]["name"])
    }
    assert created == rendered_children(path)


def rendered_children(path: Path) -> set[tuple[str, str]]:
    slmctl = Path(sys.executable).parent / "slmctl"
    out = subprocess.run(
        [str(slmctl), "render", str(path)] + (["--keda-available"] if uses_keda(path) else []),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d}
