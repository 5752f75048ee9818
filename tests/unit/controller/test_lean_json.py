"""Parsing the API server's JSON without managedFields: the same object, less its bookkeeping."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from slm_operator.controller import lean_json

ENTRY = {
    "manager": "kube-controller-manager",
    "operation": "Update",
    "apiVersion": "apps/v1",
    "time": "2026-12-07T20:05:01Z",
    "fieldsType": "FieldsV1",
    "fieldsV1": {
        "f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}},
        "f:status": {"f:conditions": {".": {}, 'k:{"type":"Available"}': {".": {}, "f:status": {}}}},
    },
    "subresource": "status",
}


def deployment(managed: list[dict[str, Any]] | None, *, first: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "m", "namespace": "ns", "uid": "u", "resourceVersion": "7"}
    if managed is not None:
        meta = {"managedFields": managed, **meta} if first else {**meta, "managedFields": managed}
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": meta,
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "args": ["a]b", "]"]}]}}},
        "status": {"conditions": [{"type": "Available", "status": "True"}]},
    }


def without_managed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_managed(v) for k, v in value.items() if k != "managedFields"}
    if isinstance(value, list):
        return [without_managed(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(deployment(None), deployment(None), id="none-to-cut"),
        pytest.param(deployment([ENTRY, ENTRY]), deployment(None), id="last-key-of-metadata"),
        pytest.param(
            {"type": "MODIFIED", "object": deployment([ENTRY])},
            {"type": "MODIFIED", "object": deployment(None)},
            id="a-watch-event",
        ),
        pytest.param(
            {"kind": "SmallLanguageModel", "metadata": {"labels": {}, "managedFields": [ENTRY], "name": "m"}},
            {"kind": "SmallLanguageModel", "metadata": {"labels": {}, "name": "m"}},
            id="sorted-keys-of-a-custom-resource",
        ),
        # Several (a listing): parsed whole, every item kept as it came.
        pytest.param(
            {"kind": "List", "items": [deployment([ENTRY]), deployment(None), deployment([ENTRY])]},
            {"kind": "List", "items": [deployment([ENTRY]), deployment(None), deployment([ENTRY])]},
            id="a-list-is-parsed-whole",
        ),
        pytest.param(
            {"kind": "List", "items": [deployment([ENTRY]), deployment(None)]},
            {"kind": "List", "items": [deployment(None), deployment(None)]},
            id="a-list-of-one-is-cut",
        ),
        pytest.param(deployment([], first=False), deployment(None), id="empty-list"),
        # Not after a comma: left in (correct, only not leaner).
        pytest.param(deployment([ENTRY], first=True), deployment([ENTRY], first=True), id="first-key-kept"),
    ],
)
def test_loads_leaves_out_managed_fields_and_nothing_else(document: Any, expected: Any) -> None:
    assert lean_json.loads(orjson.dumps(document)) == expected


@pytest.mark.parametrize(
    "key",
    ['v:"a]b"', 'v:"]"', 'v:"]}"', 'v:"]},\\"spec\\":{}}"', 'k:{"name":"x]"}', "f:]", '\\"]'],
)
def test_a_bracket_inside_a_managed_fields_string_falls_back_to_the_whole_text(key: str) -> None:
    entry = {**ENTRY, "fieldsV1": {"f:metadata": {"f:finalizers": {key: {}}}}}
    raw = orjson.dumps({"type": "ADDED", "object": deployment([entry])})
    assert lean_json.loads(raw) == orjson.loads(raw)


def test_a_cut_that_would_parse_but_end_inside_a_string_is_not_made() -> None:
    """A manager's name is the API client's to choose: one with a "]" whose rest reads as JSON
    would make a cut at that "]" parse into a wrong object. The quote count refuses it."""
    raw = (
        b'{"metadata":{"name":"m","managedFields":[{"manager":"x]},\\"a\\":{\\"b\\":1}}"}]},'
        b'"spec":{"replicas":1}}'
    )
    assert lean_json.loads(raw) == orjson.loads(raw)
    assert lean_json.loads(raw)["metadata"]["managedFields"] == [{"manager": 'x]},"a":{"b":1}}'}]


def test_backslashes_and_quotes_in_the_strings_do_not_matter_to_a_right_cut() -> None:
    entry = {**ENTRY, "manager": 'tool\\ "quoted" \\'}
    assert lean_json.loads(orjson.dumps(deployment([entry]))) == deployment(None)


def test_a_list_inside_managed_fields_is_parsed_whole() -> None:
    """Not in today's API; a cut at an inner list's "]" cannot parse (brackets left over)."""
    entry = {**ENTRY, "future": [1, [2]], "manager": "m"}
    raw = orjson.dumps({"type": "ADDED", "object": deployment([entry])})
    assert lean_json.loads(raw) == orjson.loads(raw)


def test_random_managed_fields_parse_to_the_object_with_or_without_them() -> None:
    """Whatever strings managedFields hold, the answer is the parsed object, never a third thing."""
    rng = random.Random(20261207)
    alphabet = "abcdef.:kv-/" * 8 + '[]{},:"\\ ' + "\u00e9"  # mostly plain, some of everything

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

    def fields(depth: int) -> dict[str, Any]:
        keys = [text() for _ in range(rng.randint(0, 4))]
        return {key: (fields(depth - 1) if depth and rng.random() < 0.4 else {}) for key in keys}

    stripped = kept = 0
    for _ in range(3000):
        entries = [
            {"manager": text(), "operation": "Update", "time": text(), "fieldsV1": fields(3)}
            for _ in range(rng.randint(1, 3))
        ]
        document = {"type": "MODIFIED", "object": deployment(entries)}
        document["object"]["metadata"]["labels"] = {text(): text()}
        parsed = lean_json.loads(orjson.dumps(document))
        if parsed == without_managed(document):
            stripped += 1
        else:
            assert parsed == document
            kept += 1
    assert stripped > 500  # texts with no "]" or escaped backslash in a string take the lean path
    assert kept > 500  # the others are parsed whole


def test_text_that_is_not_json_still_raises() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        lean_json.loads(b'{"metadata":{"name":"m","managedFields":[{"manager":"x"}')
    with pytest.raises(orjson.JSONDecodeError):
        lean_json.loads(b'{"metadata":{"name":"m","managedFields":[{"manager":"x"}]},')
