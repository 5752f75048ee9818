"""HorizontalPodAutoscaler, KEDA ScaledObject and PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

import pytest
from render_cases import builtin_config, by_kind, case, make_model, make_plan

from slm_operator.api.config import Defaults
from slm_operator.api.errors import SpecError
from slm_operator.render import render_children
from slm_operator.render.hpa import BEHAVIOR, render_hpa
from slm_operator.render.keda import render_scaled_object
from slm_operator.render.pdb import render_pdb


def test_no_hpa_without_autoscaling() -> None:
    _model, plan = case("vllm-gpu-small").build()
    assert render_hpa(plan) is None


def test_gpu_hpa_scales_on_in_flight_requests_only() -> None:
    _model, plan = case("vllm-autoscaling-rwx").build()
    hpa = render_hpa(plan)
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
    # Switching to engine: keda creates the ScaledObject before this HPA is pruned; KEDA's
    # webhook must not refuse it because of this HPA.
    assert hpa["metadata"]["annotations"] == {"validations.keda.sh/hpa-ownership": "false"}


def test_cpu_hpa_scales_on_cpu_utilization() -> None:
    _model, plan = case("ollama-autoscaling-cpu").build()
    hpa = render_hpa(plan)
    assert hpa is not None
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
        }
    ]


def test_cpu_tier_with_both_targets_gets_both_metrics() -> None:
    model = make_model(hardware={"tier": "cpu"}, autoscaling={"enabled": True})
    hpa = render_hpa(make_plan(model))
    assert hpa is not None
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource", "Pods"]


def test_gpu_tier_without_in_flight_target_is_refused() -> None:
    model = make_model(
        hardware={"tier": "gpu-small"}, autoscaling={"enabled": True, "targetInFlightRequests": None}
    )
    with pytest.raises(SpecError) as info:
        render_hpa(make_plan(model))
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
    pdb = render_pdb(make_plan(model))
    assert (pdb is not None) == has_pdb
    if pdb is not None:
        assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"slm.dev/model": "m1"}}}


# --- KEDA (spec.autoscaling.engine: keda) ---------------------------------------------------


def test_keda_engine_renders_a_scaled_object_and_no_hpa() -> None:
    model, plan = case("vllm-autoscaling-keda").build()
    objects = by_kind(
        render_children(model, plan, builtin_config(), monitoring_available=True, keda_available=True)
    )
    assert "HorizontalPodAutoscaler" not in objects
    scaled = objects["ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "m1"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 4)
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == BEHAVIOR
    # GPU tier: the in-flight requests only (default target 4), summed over the model's gateways;
    # KEDA's AverageValue divides the sum by the replica count, as the HPA's Pods metric does.
    assert spec["triggers"] == [
        {
            "type": "prometheus",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                "query": 'sum(slm_gateway_in_flight_requests{namespace="ai", model="phi"})',
                "threshold": "4",
            },
        }
    ]
    # The replica count is KEDA's, exactly as it is the HPA's under engine: hpa.
    assert "replicas" not in objects["Deployment"]["spec"]
    # KEDA's own HPA must not look like one of ours.
    assert scaled["metadata"]["annotations"] == {
        "scaledobject.keda.sh/hpa-excluded-labels": "app.kubernetes.io/managed-by,slm.dev/model"
    }


def test_hpa_engine_renders_no_scaled_object() -> None:
    model, plan = case("vllm-autoscaling-rwx").build()
    kinds = [
        o["kind"]
        for o in render_children(
            model, plan, builtin_config(), monitoring_available=True, keda_available=True
        )
    ]
    assert "HorizontalPodAutoscaler" in kinds
    assert "ScaledObject" not in kinds
    assert render_scaled_object(plan, builtin_config(), keda_available=True) is None


def test_keda_on_a_cpu_tier_adds_the_cpu_trigger() -> None:
    _model, plan = case("ollama-autoscaling-keda-cpu").build()
    scaled = render_scaled_object(plan, builtin_config(), keda_available=True)
    assert scaled is not None
    triggers = scaled["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["prometheus", "cpu"]
    assert triggers[0]["metadata"]["threshold"] == "2"
    assert triggers[1] == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}


def test_keda_queries_the_configured_prometheus() -> None:
    _model, plan = case("vllm-autoscaling-keda").build()
    config = builtin_config().model_copy(
        update={"defaults": Defaults(prometheus_url="https://thanos.observability.svc:10902")}
    )
    scaled = render_scaled_object(plan, config, keda_available=True)
    assert scaled is not None
    assert (
        scaled["spec"]["triggers"][0]["metadata"]["serverAddress"] == "https://thanos.observability.svc:10902"
    )


def test_keda_engine_without_keda_installed_is_refused_naming_the_field() -> None:
    model, plan = case("vllm-autoscaling-keda").build()
    with pytest.raises(SpecError) as info:
        render_children(model, plan, builtin_config(), monitoring_available=True, keda_available=False)
    (problem,) = info.value.problems
    assert problem.field == "spec.autoscaling.engine"
    assert "install KEDA" in problem.message


def test_keda_on_a_gpu_tier_without_in_flight_target_is_refused() -> None:
    model = make_model(
        hardware={"tier": "gpu-small"},
        autoscaling={"enabled": True, "engine": "keda", "targetInFlightRequests": None},
    )
    with pytest.raises(SpecError) as info:
        render_scaled_object(make_plan(model), builtin_config(), keda_available=True)
    assert info.value.problems[0].field == "spec.autoscaling.targetInFlightRequests"


def test_no_scaled_object_without_autoscaling_even_with_engine_keda() -> None:
    model = make_model(hardware={"tier": "cpu"}, autoscaling={"enabled": False, "engine": "keda"})
    plan = make_plan(model)
    assert render_scaled_object(plan, builtin_config(), keda_available=False) is None
    assert render_hpa(plan) is None
