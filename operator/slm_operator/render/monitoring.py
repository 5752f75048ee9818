"""Prometheus Operator objects: a ServiceMonitor for the gateway's metrics and a PrometheusRule
with the alerts that matter for a model server.

Every expression is scoped to one model: its namespace plus the served name, which is the
``model`` label of the gateway's metrics and the ``model_name`` label of vLLM's.
"""

from __future__ import annotations

from typing import Any

from slm_operator.api.config import Accelerator
from slm_operator.api.plan import Plan
from slm_operator.api.sections import MonitoringMode
from slm_operator.api.spec import SmallLanguageModel
from slm_operator.contract.kinds import PROMETHEUS_RULE, SERVICE_MONITOR
from slm_operator.contract.names import METRICS_PORT_NAME
from slm_operator.contract.runtime import Engine
from slm_operator.render.meta import child_metadata, label_selector

# The vLLM metrics this project relies on (alert rules here, the chart's Grafana dashboard), by
# Prometheus type; the gateway re-exposes them under /metrics/runtime with vLLM's model_name
# label. Source: vLLM's V1 metrics, vllm/v1/metrics/loggers.py (PrometheusStatLogger) of the
# pinned release v0.11.0, https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/v1/metrics/loggers.py,
# documented at https://docs.vllm.ai/en/v0.11.0/usage/metrics.html. A test checks every
# expression's metric names against this list and the gateway's and operator's own registries.
VLLM_METRICS: dict[str, str] = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:generation_tokens": "counter",
    "vllm:num_preemptions": "counter",
}
# kube-state-metrics, installed with kube-prometheus-stack (exposed names; docs/metrics/workload/
# pod-metrics.md of https://github.com/kubernetes/kube-state-metrics): restarts of the model's pods.
KUBE_STATE_METRICS: frozenset[str] = frozenset({"kube_pod_container_status_restarts_total"})

SCRAPE_INTERVAL = "30s"
METRICS_PATH = "/metrics"
RUNTIME_METRICS_PATH = "/metrics/runtime"  # the gateway re-exposes vLLM's own metrics here
ERROR_RATE_THRESHOLD = 0.05
KV_CACHE_THRESHOLD = 0.9
RESTART_THRESHOLD = 2
# p95 time to first token that warrants a look: a GPU answers in well under a second when
# healthy; a CPU model's prefill is an order of magnitude slower.
TTFT_SECONDS: dict[str, float] = {Accelerator.NVIDIA: 2.0, Accelerator.NONE: 10.0}


def wanted(mode: MonitoringMode | str, *, monitoring_available: bool) -> bool:
    """``enabled`` always; ``auto`` only when the Prometheus Operator CRDs exist."""
    return mode == MonitoringMode.ENABLED or (mode == MonitoringMode.AUTO and monitoring_available)


def promql_string(value: str) -> str:
    """A PromQL string literal (names are validated, but quoting stays correct regardless)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_service_monitor(plan: Plan) -> dict[str, Any]:
    """ServiceMonitor ``<name>``: the gateway's ``/metrics`` (and vLLM's via ``/metrics/runtime``)."""
    endpoints = [{"port": METRICS_PORT_NAME, "path": METRICS_PATH, "interval": SCRAPE_INTERVAL}]
    if plan.runtime is Engine.VLLM:
        endpoints.append(
            {"port": METRICS_PORT_NAME, "path": RUNTIME_METRICS_PATH, "interval": SCRAPE_INTERVAL}
        )
    return {
        "apiVersion": SERVICE_MONITOR.api_version,
        "kind": SERVICE_MONITOR.kind,
        "metadata": child_metadata(plan, plan.name),
        "spec": {
            "selector": label_selector(plan),
            "namespaceSelector": {"matchNames": [plan.namespace]},
            "endpoints": endpoints,
        },
    }


def _alert(
    name: str, expr: str, *, duration: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def alert_rules(plan: Plan) -> list[dict[str, Any]]:
    """The alerting rules for one model (exposed for tests that inspect the expressions)."""
    ns = promql_string(plan.namespace)
    served = promql_string(plan.served_name)
    gateway = f"namespace={ns}, model={served}"
    vllm = f"namespace={ns}, model_name={served}"
    who = f"{plan.namespace}/{plan.name}"
    ttft = TTFT_SECONDS.get(plan.accelerator, TTFT_SECONDS[Accelerator.NONE])
    requests = f"slm_gateway_requests_total{{{gateway}}}"
    errors = f'slm_gateway_requests_total{{{gateway}, code=~"5.."}}'
    rules = [
        _alert(
            "SLMModelDown",
            f"max(slm_gateway_upstream_up{{{gateway}}}) == 0",
            duration="5m",
            severity="critical",
            summary=f"Model {who} is not serving",
            description="No gateway of this model reaches a runtime that lists the served model.",
        ),
        _alert(
            "SLMHighErrorRate",
            f"sum(rate({errors}[5m])) / sum(rate({requests}[5m])) > {ERROR_RATE_THRESHOLD}",
            duration="10m",
            severity="warning",
            summary=f"Model {who} answers more than {ERROR_RATE_THRESHOLD:.0%} of requests with 5xx",
            description="5xx share of requests is {{ $value | humanizePercentage }} over 5 minutes.",
        ),
        _alert(
            "SLMSlowTimeToFirstToken",
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(slm_gateway_time_to_first_token_seconds_bucket{{{gateway}}}[10m]))) > {ttft}",
            duration="15m",
            severity="warning",
            summary=f"Model {who}: p95 time to first token above {ttft} s",
            description="p95 time to first token is {{ $value | humanizeDuration }}.",
        ),
    ]
    if plan.runtime is Engine.VLLM:
        rules.append(
            _alert(
                "SLMRequestsWaiting",
                f"min_over_time(sum(vllm:num_requests_waiting{{{vllm}}})[10m:1m]) > 0",
                duration="5m",
                severity="warning",
                summary=f"Model {who}: requests have been queueing for 10 minutes",
                description="{{ $value }} requests wait for a batch slot; add replicas"
                " or raise maxConcurrency.",
            )
        )
        rules.append(
            _alert(
                "SLMKVCacheNearlyFull",
                f"max(vllm:kv_cache_usage_perc{{{vllm}}}) > {KV_CACHE_THRESHOLD}",
                duration="10m",
                severity="warning",
                summary=f"Model {who}: KV cache above {KV_CACHE_THRESHOLD:.0%}",
                description="KV-cache use is {{ $value | humanizePercentage }}; requests will be preempted.",
            )
        )
    else:
        # Ollama exports no queue metric: more requests in flight per replica than
        # OLLAMA_NUM_PARALLEL means the rest are waiting inside Ollama.
        rules.append(
            _alert(
                "SLMRequestsWaiting",
                f"avg(slm_gateway_in_flight_requests{{{gateway}}}) > {plan.max_concurrency}",
                duration="10m",
                severity="warning",
                summary=f"Model {who}: more requests in flight than the {plan.max_concurrency}"
                " it serves at once",
                description="{{ $value }} requests in flight per replica; add replicas"
                " or raise maxConcurrency.",
            )
        )
    # Pods of a Deployment are named <name>-<template hash>-<suffix>; matching exactly that shape
    # keeps a model called "<name>-x" out of this model's alert.
    pods = promql_string(f"{plan.name}-[a-z0-9]{{1,10}}-[a-z0-9]{{5}}")
    rules.append(
        _alert(
            "SLMPodRestarting",
            f"sum(increase(kube_pod_container_status_restarts_total{{namespace={ns}, pod=~{pods}}}[15m]))"
            f" > {RESTART_THRESHOLD}",
            duration="0m",
            severity="warning",
            summary=f"Model {who}: containers restarted more than {RESTART_THRESHOLD} times in 15 minutes",
            description="Check the runtime's logs (out of memory, failed download, bad engine argument).",
        )
    )
    return rules


def render_prometheus_rule(plan: Plan) -> dict[str, Any]:
    """PrometheusRule ``<name>`` with one group of alerts for this model."""
    return {
        "apiVersion": PROMETHEUS_RULE.api_version,
        "kind": PROMETHEUS_RULE.kind,
        "metadata": child_metadata(plan, plan.name),
        "spec": {"groups": [{"name": f"slm-{plan.namespace}-{plan.name}", "rules": alert_rules(plan)}]},
    }


def render_monitoring(
    model: SmallLanguageModel, plan: Plan, *, monitoring_available: bool
) -> list[dict[str, Any]]:
    """The ServiceMonitor and/or PrometheusRule the spec asks for (possibly none)."""
    monitoring = model.spec.monitoring
    objects: list[dict[str, Any]] = []
    if wanted(monitoring.service_monitor, monitoring_available=monitoring_available):
        objects.append(render_service_monitor(plan))
    if wanted(monitoring.prometheus_rule, monitoring_available=monitoring_available):
        objects.append(render_prometheus_rule(plan))
    return objects
