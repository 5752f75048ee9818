"""Rendered ServiceMonitors and PrometheusRules validate against the Prometheus Operator CRD
schemas shipped in ``tests/data/prometheus-operator`` (see its README for their origin)."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # installed with kubernetes-validate
import pytest
from render_inputs import ROOT, all_objects

SCHEMAS = ROOT / "tests" / "data" / "prometheus-operator"
FILES = {"ServiceMonitor": "servicemonitor.json", "PrometheusRule": "prometheusrule.json"}
OBJECTS = [(i, o) for i, o in all_objects() if o["apiVersion"] == "monitoring.coreos.com/v1"]


@cache
def validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / FILES[kind]).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(("object_id", "obj"), OBJECTS, ids=[i for i, _ in OBJECTS])
def test_object_validates(object_id: str, obj: dict[str, Any]) -> None:
    errors = sorted(validator(obj["kind"]).iter_errors(obj), key=lambda e: list(e.path))
    messages = ["/".join(str(p) for p in e.path) + ": " + e.message for e in errors]
    assert not messages, f"{object_id}: " + "; ".join(messages)


def test_both_kinds_were_checked() -> None:
    assert {o["kind"] for _, o in OBJECTS} == set(FILES)


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [
        ("ServiceMonitor", lambda o: o["spec"]["endpoints"][0].update(scrapeInterval="30s")),
        ("ServiceMonitor", lambda o: o["spec"].update(endpoints="metrics")),
        ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].update(forr="5m")),
        ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].update({"for": "5 minutes"})),
        ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr")),
    ],
)
def test_the_schemas_reject_wrong_objects(kind: str, mutate: Any) -> None:
    # Guards the check itself: a misspelt, mistyped or missing field must fail.
    obj = copy.deepcopy(next(o for _, o in OBJECTS if o["kind"] == kind))
    mutate(obj)
    assert list(validator(kind).iter_errors(obj))


def balanced(expr: str) -> bool:
    """Parentheses, brackets and braces nest properly outside string literals."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    in_string = False
    for index, char in enumerate(expr):
        if char == '"' and (index == 0 or expr[index - 1] != "\\"):
            in_string = not in_string
        elif in_string:
            continue
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not in_string


@pytest.mark.parametrize(
    ("object_id", "obj"),
    [(i, o) for i, o in OBJECTS if o["kind"] == "PrometheusRule"],
    ids=[i for i, o in OBJECTS if o["kind"] == "PrometheusRule"],
)
def test_rule_expressions_are_well_nested(object_id: str, obj: dict[str, Any]) -> None:
    for group in obj["spec"]["groups"]:
        for rule in group["rules"]:
            assert balanced(rule["expr"]), f"{object_id} {rule['alert']}: {rule['expr']}"
