"""ServiceMonitor and PrometheusRule."""

from __future__ import annotations

import re
from typing import Any

import pytest
from render_cases import case, make_model, make_plan

from slm_operator.render.monitoring import alert_rules, render_monitoring

GATEWAY_METRICS = {
    "slm_gateway_requests_total",
    "slm_gateway_request_duration_seconds",
    "slm_gateway_time_to_first_token_seconds",
    "slm_gateway_output_tokens_total",
    "slm_gateway_in_flight_requests",
    "slm_gateway_upstream_up",
}


@pytest.mark.parametrize(
    ("mode", "available", "expected"),
    [
        ("enabled", False, True),
        ("enabled", True, True),
        ("auto", True, True),
        ("auto", False, False),
        ("disabled", True, False),
        ("disabled", False, False),
    ],
)
def test_monitoring_modes(mode: str, available: bool, expected: bool) -> None:
    model = make_model(
        hardware={"tier": "cpu"}, monitoring={"serviceMonitor": mode, "prometheusRule": "disabled"}
    )
    kinds = [o["kind"] for o in render_monitoring(model, make_plan(model), monitoring_available=available)]
    assert kinds == (["ServiceMonitor"] if expected else [])
    model = make_model(
        hardware={"tier": "cpu"}, monitoring={"serviceMonitor": "disabled", "prometheusRule": mode}
    )
    kinds = [o["kind"] for o in render_monitoring(model, make_plan(model), monitoring_available=available)]
    assert kinds == (["PrometheusRule"] if expected else [])


def objects(case_id: str) -> dict[str, dict[str, Any]]:
    model, plan = case(case_id).build()
    return {o["kind"]: o for o in render_monitoring(model, plan, monitoring_available=True)}


def test_service_monitor_scrapes_gateway_and_vllm_metrics() -> None:
    monitor = objects("vllm-gpu-small")["ServiceMonitor"]["spec"]
    assert monitor["selector"] == {"matchLabels": {"slm.dev/model": "m1"}}
    assert monitor["namespaceSelector"] == {"matchNames": ["ai"]}
    assert [(e["port"], e["path"]) for e in monitor["endpoints"]] == [
        ("metrics", "/metrics"),
        ("metrics", "/metrics/runtime"),
    ]
    ollama = objects("ollama-cpu")["ServiceMonitor"]["spec"]
    assert [e["path"] for e in ollama["endpoints"]] == ["/metrics"]


def rules_of(case_id: str) -> dict[str, dict[str, Any]]:
    _, plan = case(case_id).build()
    return {r["alert"]: r for r in alert_rules(plan)}


def test_vllm_alerts() -> None:
    rules = rules_of("vllm-autoscaling-rwx")
    assert set(rules) == {
        "SLMModelDown",
        "SLMHighErrorRate",
        "SLMSlowTimeToFirstToken",
        "SLMRequestsWaiting",
        "SLMKVCacheNearlyFull",
        "SLMPodRestarting",
    }
    assert "slm_gateway_upstream_up" in rules["SLMModelDown"]["expr"]
    assert 'code=~"5.."' in rules["SLMHighErrorRate"]["expr"]
    assert rules["SLMHighErrorRate"]["expr"].endswith("> 0.05")
    assert rules["SLMSlowTimeToFirstToken"]["expr"].startswith(
        "histogram_quantile(0.95, sum by (le) (rate(slm_gateway_time_to_first_token_seconds_bucket{"
    )
    assert "vllm:num_requests_waiting" in rules["SLMRequestsWaiting"]["expr"]
    assert rules["SLMKVCacheNearlyFull"]["expr"] == (
        'max(vllm:kv_cache_usage_perc{namespace="ai", model_name="phi"}) > 0.9'
    )
    assert "kube_pod_container_status_restarts_total" in rules["SLMPodRestarting"]["expr"]


def test_every_alert_has_duration_severity_and_text() -> None:
    for rule in [*rules_of("vllm-gpu-small").values(), *rules_of("ollama-cpu").values()]:
        assert re.fullmatch(r"[0-9]+m", rule["for"])
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_ollama_alerts_use_gateway_in_flight_and_no_vllm_metrics() -> None:
    rules = rules_of("ollama-cpu")
    assert "SLMKVCacheNearlyFull" not in rules
    assert rules["SLMRequestsWaiting"]["expr"] == (
        'avg(slm_gateway_in_flight_requests{namespace="ai", model="m1"}) > 8'
    )
    assert not any("vllm:" in r["expr"] for r in rules.values())


@pytest.mark.parametrize("case_id", ["vllm-autoscaling-rwx", "ollama-cpu"])
def test_every_expression_is_scoped_to_this_model(case_id: str) -> None:
    _, plan = case(case_id).build()
    for rule in alert_rules(plan):
        selectors = re.findall(r"([a-z_:]+)\{([^}]*)\}", rule["expr"])
        assert selectors, rule["expr"]
        for metric, labels in selectors:
            assert f'namespace="{plan.namespace}"' in labels, rule["expr"]
            if metric.startswith("slm_gateway_"):
                assert metric.removesuffix("_bucket") in GATEWAY_METRICS
                assert f'model="{plan.served_name}"' in labels
            elif metric.startswith("vllm:"):
                assert f'model_name="{plan.served_name}"' in labels
            else:
                assert metric == "kube_pod_container_status_restarts_total"


def test_deprecated_vllm_cache_metric_never_appears() -> None:
    for case_id in ("vllm-gpu-small", "vllm-autoscaling-rwx", "vllm-tp2-fp8kv-revision"):
        _, plan = case(case_id).build()
        for rule in alert_rules(plan):
            assert "gpu_cache_usage_perc" not in rule["expr"]


def test_restart_alert_matches_this_models_pods_only() -> None:
    _, plan = case("vllm-gpu-small").build()
    expr = next(r["expr"] for r in alert_rules(plan) if r["alert"] == "SLMPodRestarting")
    pattern = re.search(r'pod=~"([^"]+)"', expr)
    assert pattern is not None
    regex = re.compile(pattern.group(1))  # PromQL regexes are fully anchored
    assert regex.fullmatch("m1-7d9f8c6b5d-x2x7k")
    assert not regex.fullmatch("m1-other-7d9f8c6b5d-x2x7k")
    assert not regex.fullmatch("m10-7d9f8c6b5d-x2x7k")
