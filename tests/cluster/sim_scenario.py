"""Readers and writers the cluster scenarios share: a model document, its status, conditions,
children and Events as the API server holds them."""

from __future__ import annotations

from typing import Any

from kube import ApiError, Kube, wait_for

# The operator's public contract: every child carries these labels (docs/operator.md).
MODEL_LABEL = "slm.dev/model"
MANAGED_BY = "app.kubernetes.io/managed-by=slm-operator"

CHILD_KINDS = (
    "Deployment",
    "Service",
    "Secret",
    "NetworkPolicy",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "ConfigMap",
    "PersistentVolumeClaim",
)
# Kinds of other projects' CRDs: listed where they are installed.
OPTIONAL_CHILD_KINDS = ("ServiceMonitor", "PrometheusRule", "ScaledObject")


def model(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A SmallLanguageModel; ``spec`` defaults to the smallest CPU model."""
    body: dict[str, Any] = {"model": {"catalog": "smollm2-135m"}, "hardware": {"tier": "edge"}}
    body.update(spec)
    return {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def slm(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return kube.get("SmallLanguageModel", namespace, name) or {}


def status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return dict(slm(kube, namespace, name).get("status") or {})


def phase(kube: Kube, namespace: str, name: str) -> str | None:
    return status(kube, namespace, name).get("phase")


def condition(kube: Kube, namespace: str, name: str, type_: str) -> dict[str, Any]:
    for cond in status(kube, namespace, name).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def children(kube: Kube, namespace: str, name: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """The operator's objects in the namespace (of one model, or of all), by (kind, name)."""
    selector = MANAGED_BY + (f",{MODEL_LABEL}={name}" if name else "")
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in CHILD_KINDS + OPTIONAL_CHILD_KINDS:
        try:
            objects = kube.list(kind, namespace, selector)
        except ApiError as exc:
            if exc.code == 404 and kind in OPTIONAL_CHILD_KINDS:
                continue
            raise
        for obj in objects:
            found[(kind, obj["metadata"]["name"])] = obj
    return found


def events(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Events about the model (core v1, as kopf posts them)."""
    return [
        e
        for e in kube.list("Event", namespace)
        if (e.get("involvedObject") or {}).get("kind") == "SmallLanguageModel"
        and (e.get("involvedObject") or {}).get("name") == name
    ]


def reasons(kube: Kube, namespace: str, name: str) -> list[str]:
    return [str(e.get("reason")) for e in events(kube, namespace, name)]


def wait_phase(kube: Kube, namespace: str, name: str, expected: str, timeout: float = 60) -> dict[str, Any]:
    try:
        wait_for(lambda: phase(kube, namespace, name) == expected, timeout=timeout)
    except AssertionError:
        raise AssertionError(
            f"{namespace}/{name} not {expected} after {timeout}s; status: {status(kube, namespace, name)}"
        ) from None
    return status(kube, namespace, name)


def pods_of(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    return kube.list("Pod", namespace, f"{MODEL_LABEL}={name}")


def create_ready(kube: Kube, namespace: str, name: str = "tiny", **spec: Any) -> dict[str, Any]:
    kube.create(model(name, namespace, **spec))
    return wait_phase(kube, namespace, name, "Ready")
