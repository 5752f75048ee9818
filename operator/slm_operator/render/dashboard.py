"""The Grafana dashboard the Helm chart ships (``charts/slm-operator/files/dashboards/``).

Generated from here by ``scripts/sync_chart_files.py`` (``make crd``) so that every PromQL
expression is plain data a test can check: each metric name must be one the gateway or the
operator registers, or one of :data:`slm_operator.render.monitoring.VLLM_METRICS`.

Per model (variables ``namespace`` and ``model``, the served name): requests and errors,
p50/p95 time to first token and end-to-end latency, generated tokens per second, requests in
flight and waiting, KV-cache use and replicas. For the operator: reconciles by result,
reconcile and apply errors, reconcile latency and models by phase. Dashboard JSON model:
https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UID = "slm-operator"
TITLE = "Small language models"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Gateway series carry the served name as `model`; vLLM's as `model_name` (monitoring.py).
GATEWAY = 'namespace=~"$namespace", model=~"$model"'
VLLM = 'namespace=~"$namespace", model_name=~"$model"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    targets: tuple[Target, ...]
    width: int = 8


def _quantiles(metric: str) -> tuple[Target, ...]:
    """p50 and p95 of a gateway histogram, per model."""
    return tuple(
        Target(
            f"histogram_quantile({q}, sum by (le, model) (rate({metric}_bucket{{{GATEWAY}}}[{RATE}])))",
            f"p{round(q * 100)} {{{{model}}}}",
        )
        for q in (0.5, 0.95)
    )


MODEL_PANELS: tuple[Panel, ...] = (
    Panel(
        "Requests per second",
        "Answered requests by HTTP status (gateway).",
        "reqps",
        (
            Target(
                f"sum by (model, code) (rate(slm_gateway_requests_total{{{GATEWAY}}}[{RATE}]))",
                "{{model}} {{code}}",
            ),
        ),
    ),
    Panel(
        "Error ratio (5xx)",
        "Share of requests answered with a 5xx status (gateway).",
        "percentunit",
        (
            Target(
                f'sum by (model) (rate(slm_gateway_requests_total{{{GATEWAY}, code=~"5.."}}[{RATE}]))'
                f" / sum by (model) (rate(slm_gateway_requests_total{{{GATEWAY}}}[{RATE}]))",
                "{{model}}",
            ),
            Target(
                f"sum by (model, reason) (rate(slm_gateway_upstream_errors_total{{{GATEWAY}}}[{RATE}]))"
                " / ignoring (reason) group_left "
                f"sum by (model) (rate(slm_gateway_requests_total{{{GATEWAY}}}[{RATE}]))",
                "{{model}} runtime: {{reason}}",
            ),
        ),
    ),
    Panel(
        "Time to first token",
        "p50 and p95 time to the first streamed chunk (or the whole answer when not streamed).",
        "s",
        _quantiles("slm_gateway_time_to_first_token_seconds"),
    ),
    Panel(
        "End-to-end latency",
        "p50 and p95 time from receiving a request to its last byte (gateway).",
        "s",
        _quantiles("slm_gateway_request_duration_seconds"),
    ),
    Panel(
        "Generated tokens per second",
        "Output tokens per second as the gateway counts them; on vLLM also the engine's own count.",
        "short",
        (
            Target(
                f"sum by (model) (rate(slm_gateway_output_tokens_total{{{GATEWAY}}}[{RATE}]))",
                "{{model}} (gateway)",
            ),
            Target(
                f"sum by (model_name) (rate(vllm:generation_tokens_total{{{VLLM}}}[{RATE}]))",
                "{{model_name}} (vLLM)",
            ),
        ),
    ),
    Panel(
        "Requests in flight and waiting",
        "In flight: forwarded by the gateways right now (what autoscaling targets). Running and "
        "waiting: vLLM's scheduler (Ollama exports no queue metric).",
        "short",
        (
            Target(f"sum by (model) (slm_gateway_in_flight_requests{{{GATEWAY}}})", "{{model}} in flight"),
            Target(f"sum by (model_name) (vllm:num_requests_running{{{VLLM}}})", "{{model_name}} running"),
            Target(f"sum by (model_name) (vllm:num_requests_waiting{{{VLLM}}})", "{{model_name}} waiting"),
        ),
    ),
    Panel(
        "KV-cache use",
        "Fraction of vLLM's KV cache in use (highest replica); near 1 requests get preempted.",
        "percentunit",
        (
            Target(f"max by (model_name) (vllm:kv_cache_usage_perc{{{VLLM}}})", "{{model_name}}"),
            Target(
                f"sum by (model_name) (rate(vllm:num_preemptions_total{{{VLLM}}}[{RATE}]))",
                "{{model_name}} preemptions/s",
            ),
        ),
    ),
    Panel(
        "Replicas",
        "Gateways scraped (one per model pod) and those whose runtime is ready with the model loaded.",
        "short",
        (
            Target(f"count by (model) (slm_gateway_upstream_up{{{GATEWAY}}})", "{{model}} replicas"),
            Target(f"sum by (model) (slm_gateway_upstream_up{{{GATEWAY}}})", "{{model}} ready"),
        ),
    ),
)

OPERATOR_PANELS: tuple[Panel, ...] = (
    Panel(
        "Reconciles per second",
        "Reconciles of SmallLanguageModels by result (ok, invalid, retry, error).",
        "ops",
        (Target(f"sum by (result) (rate(slm_operator_reconcile_total[{RATE}]))", "{{result}}"),),
    ),
    Panel(
        "Reconcile and apply errors",
        "Reconciles that ended in an error, and failed writes of child objects by kind.",
        "ops",
        (
            Target(f'sum(rate(slm_operator_reconcile_total{{result="error"}}[{RATE}]))', "reconcile errors"),
            Target(f"sum by (kind) (rate(slm_operator_apply_errors_total[{RATE}]))", "apply errors {{kind}}"),
        ),
    ),
    Panel(
        "Reconcile duration (p95)",
        "95th percentile wall time of one reconcile, by result.",
        "s",
        (
            Target(
                "histogram_quantile(0.95, sum by (le, result) "
                f"(rate(slm_operator_reconcile_duration_seconds_bucket[{RATE}])))",
                "{{result}}",
            ),
        ),
    ),
    Panel(
        "Models by phase",
        "SmallLanguageModels the operator sees, by status.phase.",
        "short",
        (Target("sum by (phase) (slm_operator_models)", "{{phase}}"),),
        width=24,
    ),
)


def _variables() -> list[dict[str, Any]]:
    def query(name: str, label: str, expr: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": expr, "refId": f"{name}-variable"},
            "definition": expr,
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
        }

    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
        },
        query("namespace", "Namespace", "label_values(slm_gateway_upstream_up, namespace)"),
        query("model", "Model", 'label_values(slm_gateway_upstream_up{namespace=~"$namespace"}, model)'),
    ]


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": t.expr, "legendFormat": t.legend}
            for i, t in enumerate(panel.targets)
        ],
    }


def _row(title: str, panel_id: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
        "panels": [],
    }


def dashboard() -> dict[str, Any]:
    """The dashboard's JSON model."""
    panels: list[dict[str, Any]] = []
    y = 0
    for title, group in (("Models", MODEL_PANELS), ("Operator", OPERATOR_PANELS)):
        panels.append(_row(title, len(panels) + 1, y))
        y += 1
        x = 0
        for panel in group:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel, len(panels) + 1, x, y))
            x += panel.width
        y += 8
    return {
        "uid": UID,
        "title": TITLE,
        "description": "Per-model serving metrics (slm-operator gateway and vLLM) and the operator's own.",
        "tags": ["slm-operator", "llm"],
        "editable": True,
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "templating": {"list": _variables()},
        "panels": panels,
        "annotations": {"list": []},
    }
