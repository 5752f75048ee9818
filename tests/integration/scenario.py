"""Small readers over the emulator's state, shared by the integration scenarios."""

from __future__ import annotations

import copy
from typing import Any

from emulator import ClusterEmulator
from harness import NAMESPACE, SLM

from slm_operator.render.kinds import MANAGED_KINDS


def model(name: str, **spec: Any) -> dict[str, Any]:
    """A SmallLanguageModel document; ``spec`` defaults to a tiny CPU model."""
    body_spec: dict[str, Any] = {"model": {"catalog": "smollm2-135m"}, "hardware": {"tier": "cpu"}}
    body_spec.update(spec)
    return {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": body_spec,
    }


def slm(cluster: ClusterEmulator, name: str) -> dict[str, Any]:
    return cluster.get_object(SLM, NAMESPACE, name) or {}


def status(cluster: ClusterEmulator, name: str) -> dict[str, Any]:
    return dict(slm(cluster, name).get("status") or {})


def phase(cluster: ClusterEmulator, name: str) -> str | None:
    return status(cluster, name).get("phase")


def condition(cluster: ClusterEmulator, name: str, type_: str) -> dict[str, Any]:
    for cond in status(cluster, name).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def child(cluster: ClusterEmulator, resource: str, name: str) -> dict[str, Any] | None:
    return cluster.get_object(resource, NAMESPACE, name)


def children(cluster: ClusterEmulator) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of a managed kind in the namespace, by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in MANAGED_KINDS:
        for obj in cluster.list_objects(f"{kind.api_version}/{kind.plural}", NAMESPACE):
            found[(kind.kind, obj["metadata"]["name"])] = copy.deepcopy(obj)
    return found


def events(cluster: ClusterEmulator, name: str) -> list[dict[str, Any]]:
    """Events posted about the model (kopf posts core v1 Events)."""
    return [
        e
        for e in cluster.list_objects("v1/events", NAMESPACE)
        if (e.get("involvedObject") or {}).get("name") == name
        and (e.get("involvedObject") or {}).get("kind") == "SmallLanguageModel"
    ]


def reasons(cluster: ClusterEmulator, name: str) -> list[str]:
    return [str(e.get("reason")) for e in events(cluster, name)]


def reconciles(ctx: Any) -> float:
    """How many reconciles this operator instance finished (any result)."""
    return sum(
        sample.value
        for metric in ctx.metrics.reconcile_total.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
SECRETS = "v1/secrets"
HPAS = "autoscaling/v2/horizontalpodautoscalers"
PDBS = "policy/v1/poddisruptionbudgets"
NETWORK_POLICIES = "networking.k8s.io/v1/networkpolicies"
SERVICE_MONITORS = "monitoring.coreos.com/v1/servicemonitors"
PROMETHEUS_RULES = "monitoring.coreos.com/v1/prometheusrules"
SCALED_OBJECTS = "keda.sh/v1alpha1/scaledobjects"
