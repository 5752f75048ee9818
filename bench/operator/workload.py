"""The models the benchmark applies: two shapes, spread over namespaces."""

from __future__ import annotations

from typing import Any

# A small CPU model with the API-key Secret, Deployment, Service and NetworkPolicy (4 children).
SMALL: dict[str, Any] = {
    "model": {"catalog": "smollm2-135m"},
    "hardware": {"tier": "cpu"},
    "monitoring": {"serviceMonitor": "disabled", "prometheusRule": "disabled"},
}
# The same with a Modelfile, autoscaling from 2 replicas and monitoring (9 children: Secret,
# ConfigMap, Deployment, Service, NetworkPolicy, PDB, HPA, ServiceMonitor, PrometheusRule).
FULL: dict[str, Any] = {
    "model": {"catalog": "smollm2-135m"},
    "hardware": {"tier": "cpu"},
    "ollama": {"modelfile": {"system": "Answer in one sentence."}},
    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 3},
}
SHAPES: dict[int, dict[str, Any]] = {4: SMALL, 9: FULL}


def replicas(children: int) -> int:
    """Pods each model of a shape runs once settled (the HPA's minReplicas, else one)."""
    autoscaling = SHAPES[children].get("autoscaling") or {}
    return int(autoscaling.get("minReplicas") or SHAPES[children].get("replicas") or 1)


def namespaces(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:02d}" for i in range(count)]


def models(prefix: str, count: int, *, children: int, spread: int) -> list[dict[str, Any]]:
    """``count`` models named ``m-0000``..., round-robin over ``spread`` namespaces."""
    spec = SHAPES[children]
    spaces = namespaces(prefix, spread)
    return [
        {
            "apiVersion": "slm.dev/v1alpha1",
            "kind": "SmallLanguageModel",
            "metadata": {"name": f"m-{i:04d}", "namespace": spaces[i % len(spaces)]},
            "spec": spec,
        }
        for i in range(count)
    ]
