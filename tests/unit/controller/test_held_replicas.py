"""The replicas an autoscaled Deployment is applied with: never below the autoscaler's minimum,
never below what runs; untouched when the model owns the count."""

from __future__ import annotations

from typing import Any

import pytest
from status_fake_api import MODEL_UID, FakeApi

from slm_operator.catalog.loader import builtin_config
from slm_operator.controller.children import held_replicas
from slm_operator.controller.reconcile import reconcile_model


def deployment(replicas: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m"}, "spec": spec}


@pytest.mark.parametrize(
    ("minimum", "live", "applied"),
    [
        (2, None, 2),  # a new Deployment starts at the minimum, not at one
        (2, deployment(1), 2),  # below the minimum: raised, as the HPA would
        (1, deployment(3), 3),  # autoscaling turned on while 3 run: kept
        (2, deployment(4), 4),  # what the autoscaler chose: never lowered
        (0, None, None),  # scale to zero (KEDA): a new Deployment still starts at the default
        (0, deployment(0), 0),  # scaled to zero: kept
        (None, deployment(3), None),  # no autoscaler: the rendered object as it is
    ],
)
def test_held_replicas(minimum: int | None, live: dict[str, Any] | None, applied: int | None) -> None:
    child = deployment()
    held = held_replicas(child, live, minimum)
    assert held["spec"].get("replicas") == applied
    assert "replicas" not in child["spec"]  # the rendered object is not changed


def test_rendered_replicas_and_other_kinds_are_left_alone() -> None:
    assert held_replicas(deployment(5), deployment(2), 3)["spec"]["replicas"] == 5
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "m"}, "spec": {}}
    assert held_replicas(service, None, 3) is service


def test_a_new_autoscaled_model_applies_its_deployment_at_min_replicas() -> None:
    applied: list[dict[str, Any]] = []

    class Recording(FakeApi):
        def apply(self, kind: Any, namespace: str, name: str, body: Any) -> dict[str, Any]:
            applied.append(dict(body))
            return super().apply(kind, namespace, name, body)

    spec = {
        "model": {"catalog": "phi-4-mini"},
        "hardware": {"tier": "cpu"},
        "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 5},
    }
    body = {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": "m1", "namespace": "ai", "uid": MODEL_UID, "generation": 1},
        "spec": spec,
    }
    reconcile_model(body, api=Recording(), config=builtin_config(), now="2026-01-01T00:00:00Z", existing={})
    (deployment_body,) = [b for b in applied if b["kind"] == "Deployment"]
    assert deployment_body["spec"]["replicas"] == 3
