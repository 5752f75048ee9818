"""Rendered KEDA ScaledObjects validate against KEDA's CRD schema (tests/data/keda, see its
README), and their triggers use the Prometheus and CPU scalers' documented metadata keys."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # installed with kubernetes-validate
import pytest
from render_inputs import ROOT, all_objects

SCHEMA = ROOT / "tests" / "data" / "keda" / "scaledobject.json"
OBJECTS = [(i, o) for i, o in all_objects() if o["kind"] == "ScaledObject"]

# Metadata keys of the scalers (https://keda.sh/docs/latest/scalers/prometheus/ and
# https://keda.sh/docs/latest/scalers/cpu/; kedacore/keda v2.20.1 pkg/scalers/prometheus_scaler.go
# and cpu_memory_scaler.go): every required key, and no key the scaler does not read.
SCALER_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "prometheus": (
        {"serverAddress", "query", "threshold"},
        {
            "activationThreshold",
            "namespace",
            "queryParameters",
            "customHeaders",
            "ignoreNullValues",
            "unsafeSsl",
            "timeout",
        },
    ),
    "cpu": ({"value"}, {"containerName"}),
}
METRIC_TYPES = {"prometheus": {"AverageValue", "Value"}, "cpu": {"Utilization", "AverageValue"}}


@cache
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_some_scaled_objects_were_rendered() -> None:
    ids = {i.split("/")[0] for i, _ in OBJECTS}
    assert "case:vllm-autoscaling-keda" in ids
    assert any(not i.startswith("case:") for i in ids), "no example renders a ScaledObject"


@pytest.mark.parametrize(("object_id", "obj"), OBJECTS, ids=[i for i, _ in OBJECTS])
def test_object_validates(object_id: str, obj: dict[str, Any]) -> None:
    errors = sorted(validator().iter_errors(obj), key=lambda e: list(e.path))
    messages = ["/".join(str(p) for p in e.path) + ": " + e.message for e in errors]
    assert not messages, f"{object_id}: " + "; ".join(messages)


@pytest.mark.parametrize(("object_id", "obj"), OBJECTS, ids=[i for i, _ in OBJECTS])
def test_triggers_use_the_scalers_metadata(object_id: str, obj: dict[str, Any]) -> None:
    for trigger in obj["spec"]["triggers"]:
        required, optional = SCALER_KEYS[trigger["type"]]
        keys = set(trigger["metadata"])
        assert required <= keys, f"{object_id}: {trigger['type']} lacks {required - keys}"
        assert keys <= required | optional, f"{object_id}: unknown keys {keys - required - optional}"
        assert trigger["metricType"] in METRIC_TYPES[trigger["type"]], object_id
        # Numbers are strings in the CRD's string map, and must parse as numbers for KEDA.
        for key in ("threshold", "value"):
            if key in trigger["metadata"]:
                float(trigger["metadata"][key])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o["spec"].update(minReplicas=1),  # the HPA's spelling, not KEDA's
        lambda o: o["spec"].pop("triggers"),
        lambda o: o["spec"]["triggers"][0]["metadata"].update(threshold=4),
        lambda o: o["spec"]["scaleTargetRef"].pop("name"),
    ],
)
def test_the_schema_rejects_wrong_objects(mutate: Any) -> None:
    # Guards the check itself: a misspelt, mistyped or missing field must fail.
    obj = copy.deepcopy(OBJECTS[0][1])
    mutate(obj)
    assert list(validator().iter_errors(obj))
