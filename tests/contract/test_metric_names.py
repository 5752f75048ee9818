"""Every PromQL expression this repository ships uses metrics that really exist.

Expressions: the chart's Grafana dashboard (panels and variables), the chart's operator alert
rules, every model's PrometheusRule, the KEDA ScaledObjects' queries and the prometheus-adapter
rule. Each is parsed by a real PromQL parser (promql-parser), and every selected metric must be
one the gateway or the operator registers (their own prometheus-client registries, exposed
names per type), a vLLM metric of ``VLLM_METRICS`` or a kube-state-metrics one. Label matchers
on our own metrics must name labels those metrics have (or target labels Prometheus adds).
"""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
import pytest
import yaml
from chart_support import CHART, find, rendered_objects
from render_inputs import ROOT, all_objects

from slm_operator.controller.metrics import OperatorMetrics
from slm_operator.gateway.metrics import UPSTREAM_ERROR_REASONS, GatewayMetrics
from slm_operator.gateway.routes import ROUTE_LABELS
from slm_operator.render.dashboard import dashboard
from slm_operator.render.hpa import IN_FLIGHT_METRIC
from slm_operator.render.monitoring import KUBE_STATE_METRICS, VLLM_METRICS

# Labels Prometheus adds to every scraped series of a ServiceMonitor target.
TARGET_LABELS = {"namespace", "pod", "service", "job", "instance", "container", "endpoint"}
# vLLM's labelnames for these metrics (PrometheusStatLogger: ["model_name", "engine"]).
VLLM_LABELS = {"model_name", "engine"}
# Series names per Prometheus type, as prometheus-client exposes them (vLLM uses it too).
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}


def _exposed(name: str, kind: str) -> set[str]:
    return {name + suffix for suffix in SUFFIXES.get(kind, ("",))}


def _own_metrics() -> dict[str, set[str]]:
    """Exposed series name -> its label names, as the gateway and the operator expose them
    (each metric used once, so that every labelled series appears)."""
    gateway = GatewayMetrics("m")
    gateway.observe_request(ROUTE_LABELS[0], 200, duration=0.5, ttft=0.1, tokens=3)
    gateway.upstream_error(UPSTREAM_ERROR_REASONS[0])
    operator = OperatorMetrics()
    operator.observe_reconcile("ok", 0.2)
    operator.apply_errors.labels(kind="Deployment").inc()
    operator.set_phase("ns", "m", "Ready")
    out: dict[str, set[str]] = {}
    for registry in (gateway.registry, operator.registry):
        for family in registry.collect():
            for sample in family.samples:
                out.setdefault(sample.name, set()).update(sample.labels)
    return out


OWN = _own_metrics()
VLLM = {exposed for name, kind in VLLM_METRICS.items() for exposed in _exposed(name, kind)}
KNOWN = set(OWN) | VLLM | set(KUBE_STATE_METRICS)


def _selectors(node: Any) -> list[Any]:
    """Every VectorSelector below ``node`` (the parser's AST)."""
    if isinstance(node, promql_parser.VectorSelector):
        return [node]
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    children: list[Any] = []
    for attribute in ("expr", "lhs", "rhs", "param"):
        child = getattr(node, attribute, None)
        if child is not None:
            children.append(child)
    children.extend(getattr(node, "args", None) or [])
    return [selector for child in children for selector in _selectors(child)]


def _grafana_to_promql(expr: str) -> str:
    """Grafana's variables as values the parser accepts; label_values(...) as its selector."""
    expr = expr.replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$model", ".*")
    match = re.fullmatch(r"label_values\((.*), *\w+\)", expr)
    return match.group(1) if match else expr


def check(expr: str) -> list[str]:
    """Problems with one expression: unparsable, unknown metrics, labels the metric lacks."""
    try:
        ast = promql_parser.parse(expr)
    except Exception as error:  # the parser raises a plain ValueError/RuntimeError
        return [f"does not parse: {error}"]
    problems = []
    selectors = _selectors(ast)
    if not selectors:
        problems.append("selects no metric")
    for selector in selectors:
        name = selector.name
        if name not in KNOWN:
            problems.append(f"unknown metric {name}")
            continue
        allowed = OWN.get(name, VLLM_LABELS if name in VLLM else None)
        if allowed is None:
            continue  # kube-state-metrics: names only
        for matcher in selector.matchers.matchers:
            if matcher.name != "__name__" and matcher.name not in allowed | TARGET_LABELS:
                problems.append(f"{name} has no label {matcher.name}")
    return problems


ADAPTER_VALUES = ROOT / "deploy" / "prometheus-adapter" / "values.yaml"


def _adapter_rules() -> list[dict[str, Any]]:
    values: dict[str, Any] = yaml.safe_load(ADAPTER_VALUES.read_text(encoding="utf-8"))
    rules: list[dict[str, Any]] = values["rules"]["custom"]
    return rules


def _expand_adapter_query(template: str) -> str:
    """The adapter's Go template (delimiters << >>) as it expands for an HPA asking about two
    pods of namespace "ai" (https://github.com/kubernetes-sigs/prometheus-adapter/blob/master/docs/config.md)."""
    expanded = (
        template.replace("<<.Series>>", IN_FLIGHT_METRIC)
        .replace("<<.LabelMatchers>>", 'namespace="ai",pod=~"m-7d9f-a|m-7d9f-b"')
        .replace("<<.GroupBy>>", "pod")
    )
    assert "<<" not in expanded, f"unexpanded template field in {template}"
    return expanded


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets, then its query variables."""
    board = dashboard()
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    exprs.extend(v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query")
    return exprs


def _shipped_expressions() -> list[tuple[str, str]]:
    out = [(f"dashboard: {e[:60]}", _grafana_to_promql(e)) for e in expressions()]
    (rule,) = find(rendered_objects("monitoring"), "PrometheusRule")
    out.extend((f"chart rule {r['alert']}", r["expr"]) for g in rule["spec"]["groups"] for r in g["rules"])
    for object_id, obj in all_objects():
        if obj["kind"] == "PrometheusRule":
            out.extend(
                (f"{object_id} {r['alert']}", r["expr"]) for g in obj["spec"]["groups"] for r in g["rules"]
            )
        if obj["kind"] == "ScaledObject":
            out.extend(
                (f"{object_id} trigger", t["metadata"]["query"])
                for t in obj["spec"]["triggers"]
                if t["type"] == "prometheus"
            )
    for rule in _adapter_rules():
        out.append(("prometheus-adapter seriesQuery", rule["seriesQuery"]))
        out.append(("prometheus-adapter metricsQuery", _expand_adapter_query(rule["metricsQuery"])))
    return out


SHIPPED = _shipped_expressions()


@pytest.mark.parametrize(("where", "expr"), SHIPPED, ids=[w for w, _ in SHIPPED])
def test_expression_uses_real_metrics(where: str, expr: str) -> None:
    assert check(expr) == [], f"{where}: {expr}"


def test_the_check_itself_catches_wrong_names_labels_and_syntax() -> None:
    assert check("sum(rate(slm_gateway_requests_total[5m]))") == []
    assert check("sum(vllm:gpu_cache_usage_perc)") == ["unknown metric vllm:gpu_cache_usage_perc"]
    assert check("slm_gateway_requests") == ["unknown metric slm_gateway_requests"]  # counter without _total
    assert check('slm_gateway_in_flight_requests{model_name="x"}') == [
        "slm_gateway_in_flight_requests has no label model_name"
    ]
    assert check("sum(rate(slm_gateway_requests_total[5m])")[0].startswith("does not parse")


def test_dashboard_covers_every_asked_for_signal() -> None:
    text = "\n".join(expressions())
    for metric in (
        "slm_gateway_requests_total",  # requests and errors
        "slm_gateway_time_to_first_token_seconds_bucket",
        "slm_gateway_request_duration_seconds_bucket",
        "slm_gateway_output_tokens_total",  # tokens/s
        "slm_gateway_in_flight_requests",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "slm_gateway_upstream_up",  # replicas
        "slm_operator_reconcile_total",
        "slm_operator_apply_errors_total",
        "slm_operator_models",
    ):
        assert metric in text, metric
    assert text.count("histogram_quantile(0.5,") >= 2
    assert text.count("histogram_quantile(0.95,") >= 2


# --- the chart's dashboard ConfigMap --------------------------------------------------------


def test_dashboard_config_map_is_labelled_for_the_grafana_sidecar() -> None:
    (config_map,) = find(rendered_objects("monitoring"), "ConfigMap", "slm-slm-operator-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "LLM"}
    (key,) = config_map["data"]
    assert key.endswith(".json")
    assert json.loads(config_map["data"][key]) == dashboard()
    # Off by default: no ConfigMap other than the operator's configuration.
    assert [c["metadata"]["name"] for c in find(rendered_objects("default"), "ConfigMap")] == [
        "slm-slm-operator-config"
    ]


def test_dashboard_file_is_generated_from_the_code() -> None:
    path = CHART / "files" / "dashboards" / "slm-operator.json"
    assert json.loads(path.read_text(encoding="utf-8")) == dashboard(), "run `make crd`"


def test_dashboard_panels_do_not_overlap_and_refids_are_unique() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


# --- the operator's own alert rules ---------------------------------------------------------


def test_operator_rules_cover_errors_and_models_stuck_not_ready() -> None:
    (rule,) = find(rendered_objects("monitoring"), "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "SLMOperatorDown",
        "SLMOperatorReconcileErrors",
        "SLMOperatorApplyErrors",
        "SLMModelsFailing",
        "SLMModelsNotReady",
    }
    assert alerts["SLMModelsNotReady"]["for"] == "30m"
    assert 'result="error"' in alerts["SLMOperatorReconcileErrors"]["expr"]
    # Scoped to this release's operator (the namespace its metrics are scraped in).
    for alert in alerts.values():
        assert 'namespace="slm-system"' in alert["expr"], alert["alert"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert find(rendered_objects("default"), "PrometheusRule") == []


def test_operator_rules_validate_against_the_prometheus_operator_schema() -> None:
    import jsonschema  # type: ignore[import-untyped]

    schema = json.loads(
        (ROOT / "tests/data/prometheus-operator/prometheusrule.json").read_text(encoding="utf-8")
    )
    (rule,) = find(rendered_objects("monitoring"), "PrometheusRule")
    assert [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(rule)] == []


# --- prometheus-adapter ---------------------------------------------------------------------


def test_adapter_rule_serves_the_metric_the_hpa_asks_for_per_pod() -> None:
    hpas = [o for _, o in all_objects() if o["kind"] == "HorizontalPodAutoscaler"]
    asked = {m["pods"]["metric"]["name"] for h in hpas for m in h["spec"]["metrics"] if m["type"] == "Pods"}
    assert asked == {IN_FLIGHT_METRIC}
    (rule,) = _adapter_rules()
    served = re.sub(rule["name"]["matches"], rule["name"]["as"], IN_FLIGHT_METRIC)
    assert served == IN_FLIGHT_METRIC
    assert promql_parser.parse(rule["seriesQuery"]).name == IN_FLIGHT_METRIC
    # Series map to the pods (and namespace) the HPA's Pods metric is about.
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    query = _expand_adapter_query(rule["metricsQuery"])
    assert query == f'sum({IN_FLIGHT_METRIC}{{namespace="ai",pod=~"m-7d9f-a|m-7d9f-b"}}) by (pod)'


def test_adapter_and_keda_query_the_same_prometheus_by_default() -> None:
    from slm_operator.api.config import Defaults

    values = yaml.safe_load(ADAPTER_VALUES.read_text(encoding="utf-8"))
    assert f"{values['prometheus']['url']}:{values['prometheus']['port']}" == Defaults().prometheus_url
