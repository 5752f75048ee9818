"""HorizontalPodAutoscaler and PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

import pytest
from render_cases import case, make_model, make_plan

from slm_operator.api.errors import SpecError
from slm_operator.render.hpa import render_hpa
from slm_operator.render.pdb import render_pdb


def test_no_hpa_without_autoscaling() -> None:
    model, plan = case("vllm-gpu-small").build()
    assert render_hpa(model, plan) is None


def test_gpu_hpa_scales_on_in_flight_requests_only() -> None:
    model, plan = case("vllm-autoscaling-rwx").build()
    hpa = render_hpa(model, plan)
    assert hpa is not None
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "m1"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 5)
    # targetCPUUtilizationPercentage defaults to 70, but CPU says nothing on a GPU tier
    assert spec["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "slm_gateway_in_flight_requests"},
                "target": {"type": "AverageValue", "averageValue": "6"},
            },
        }
    ]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300


def test_cpu_hpa_scales_on_cpu_utilization() -> None:
    model, plan = case("ollama-autoscaling-cpu").build()
    hpa = render_hpa(model, plan)
    assert hpa is not None
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
        }
    ]


def test_cpu_tier_with_both_targets_gets_both_metrics() -> None:
    model = make_model(hardware={"tier": "cpu"}, autoscaling={"enabled": True})
    hpa = render_hpa(model, make_plan(model))
    assert hpa is not None
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource", "Pods"]


def test_gpu_tier_without_in_flight_target_is_refused() -> None:
    model = make_model(
        hardware={"tier": "gpu-small"}, autoscaling={"enabled": True, "targetInFlightRequests": None}
    )
    with pytest.raises(SpecError) as info:
        render_hpa(model, make_plan(model))
    assert info.value.problems[0].field == "spec.autoscaling.targetInFlightRequests"


@pytest.mark.parametrize(
    ("spec", "has_pdb"),
    [
        ({"replicas": 1}, False),
        ({"replicas": 0}, False),
        ({"replicas": 2}, True),
        ({"replicas": 5, "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 4}}, False),
        ({"replicas": 1, "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}}, True),
    ],
)
def test_pdb_only_with_more_than_one_replica(spec: dict[str, Any], has_pdb: bool) -> None:
    model = make_model(hardware={"tier": "cpu"}, **spec)
    pdb = render_pdb(model, make_plan(model))
    assert (pdb is not None) == has_pdb
    if pdb is not None:
        assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"slm.dev/model": "m1"}}}
