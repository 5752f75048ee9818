"""Drift comparison, ownership and the objects the operator applies."""

from __future__ import annotations

import copy
import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest

from slm_operator.controller.drift import (
    APPLIED_HASH_ANNOTATION,
    is_owned_by,
    is_subset,
    needs_apply,
    owner_reference,
    parse_quantity,
    prepare_child,
    rendered_hash,
)

MODEL = {
    "apiVersion": "slm.dev/v1alpha1",
    "kind": "SmallLanguageModel",
    "metadata": {"name": "m", "namespace": "ns", "uid": "u-1", "labels": {"team": "a"}},
}

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "m", "namespace": "ns", "labels": {"slm.dev/model": "m"}},
    "spec": {
        "selector": {"slm.dev/model": "m"},
        "ports": [{"name": "http", "port": 8000, "targetPort": "http"}],
    },
}


def live_from(desired: dict[str, Any]) -> dict[str, Any]:
    """What an API server returns: our fields plus defaults and bookkeeping."""
    live = copy.deepcopy(desired)
    live["metadata"].update(uid="c-1", resourceVersion="7", creationTimestamp="2026-01-01T00:00:00Z")
    live["spec"]["clusterIP"] = "10.0.0.7"
    live["spec"]["ports"][0]["protocol"] = "TCP"
    live["status"] = {"loadBalancer": {}}
    return live


def test_owner_reference_is_explicit_and_copies_no_labels() -> None:
    child = prepare_child(SERVICE, MODEL)
    assert child["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "slm.dev/v1alpha1",
            "kind": "SmallLanguageModel",
            "name": "m",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert "team" not in child["metadata"]["labels"]
    assert owner_reference(MODEL)["uid"] == "u-1"
    assert SERVICE["metadata"].get("ownerReferences") is None  # the rendered dict is not mutated


def test_ownership_is_by_uid_not_by_name_or_label() -> None:
    ours = prepare_child(SERVICE, MODEL)
    assert is_owned_by(ours, "u-1")
    assert not is_owned_by(ours, "u-2")
    assert not is_owned_by(SERVICE, "u-1")  # same name and labels, no owner reference


def test_server_defaults_are_not_drift() -> None:
    desired = prepare_child(SERVICE, MODEL)
    assert not needs_apply(desired, live_from(desired))


def test_a_changed_managed_field_is_drift() -> None:
    desired = prepare_child(SERVICE, MODEL)
    live = live_from(desired)
    live["spec"]["ports"][0]["port"] = 1234
    assert needs_apply(desired, live)


def test_a_missing_object_needs_apply() -> None:
    assert needs_apply(prepare_child(SERVICE, MODEL), None)


def test_a_field_we_stopped_rendering_changes_the_hash() -> None:
    with_annotation = copy.deepcopy(SERVICE)
    with_annotation["metadata"]["annotations"] = {"x": "1"}
    live = live_from(prepare_child(with_annotation, MODEL))
    desired = prepare_child(SERVICE, MODEL)  # the annotation is gone from the rendering
    assert is_subset({"spec": desired["spec"]}, live)  # a plain subset check cannot see it ...
    assert needs_apply(desired, live)  # ... the applied hash can
    assert (
        desired["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
        != live["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
    )


def test_replicas_owned_by_an_hpa_are_not_drift_when_not_rendered() -> None:
    desired = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "m"},
        "spec": {"paused": False},
    }
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "m"},
        "spec": {"paused": False, "replicas": 5},
    }
    assert is_subset(desired, live)


def test_named_lists_match_by_key_and_tolerate_extra_items() -> None:
    desired = {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}
    injected = {
        "containers": [
            {"name": "b", "image": "y:1"},
            {"name": "mesh", "image": "z:1"},
            {"name": "a", "image": "x:1"},
        ]
    }
    assert is_subset(desired, injected)
    assert not is_subset(desired, {"containers": [{"name": "a", "image": "x:1"}]})


def test_unkeyed_lists_must_match_in_order_and_length() -> None:
    assert is_subset({"args": ["--a", "--b"]}, {"args": ["--a", "--b"]})
    assert not is_subset({"args": ["--a", "--b"]}, {"args": ["--b", "--a"]})
    assert not is_subset({"args": ["--a"]}, {"args": ["--a", "--b"]})


def test_quantities_compare_by_value_in_resources_only() -> None:
    assert is_subset({"resources": {"limits": {"cpu": "0.5"}}}, {"resources": {"limits": {"cpu": "500m"}}})
    assert is_subset(
        {"resources": {"requests": {"memory": "1Gi"}}}, {"resources": {"requests": {"memory": "1024Mi"}}}
    )
    assert not is_subset({"resources": {"limits": {"cpu": "1"}}}, {"resources": {"limits": {"cpu": "500m"}}})
    assert not is_subset({"image": "0.5"}, {"image": "500m"})


def test_types_matter_outside_quantities() -> None:
    assert not is_subset({"port": 8000}, {"port": "8000"})
    assert not is_subset({"enabled": True}, {"enabled": 1})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("1Gi", Decimal(1024**3)),
        ("2", Decimal(2)),
        ("1e3", Decimal(1000)),
        ("1k", Decimal(1000)),
    ],
)
def test_parse_quantity(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_parse_quantity_rejects_garbage() -> None:
    assert parse_quantity("lots") is None
    assert parse_quantity("1Xi") is None


@pytest.mark.parametrize(
    "empty", ["", 0, False, [], {}], ids=["empty-string", "zero", "false", "empty-list", "empty-map"]
)
def test_a_value_go_omitempty_drops_equals_absent(empty: object) -> None:
    assert is_subset({"spec": {"a": 1, "b": empty}}, {"spec": {"a": 1}})
    assert not is_subset({"spec": {"a": 1, "b": "x"}}, {"spec": {"a": 1}})


def test_an_empty_env_value_the_server_dropped_is_not_drift() -> None:
    # An env var rendered with value "" comes back from a real API server without "value":
    # without this rule every resync re-applied the Deployment and posted an Event.
    container = {"name": "pull", "env": [{"name": "MODELFILE", "value": ""}, {"name": "A", "value": "1"}]}
    stored = {"name": "pull", "env": [{"name": "MODELFILE"}, {"name": "A", "value": "1"}]}
    desired = {"spec": {"template": {"spec": {"initContainers": [container]}}}}
    live = {"spec": {"template": {"spec": {"initContainers": [stored]}}}}
    assert is_subset(desired, live)
    stored["env"][1]["value"] = "2"
    assert not is_subset(desired, live)


@pytest.mark.parametrize(
    ("desired", "stored"),
    [("100u", "0.0001"), ("0.1", "100m"), ("1000Mi", "1000Mi"), ("2048Ki", "2Mi"), ("1e3", "1k"), (2, "2")],
)
def test_quantities_are_compared_as_quantities(desired: object, stored: str) -> None:
    assert is_subset(
        {"resources": {"requests": {"cpu": desired}}}, {"resources": {"requests": {"cpu": stored}}}
    )


@pytest.mark.parametrize(
    "obj",
    [
        SERVICE,
        {"data": {"system": "Réponds en une phrase. 答えて", "ctl": "a\tb\u007f\u0001"}},
        {"spec": {"b": 1, "a": [1.5, 1e16, 0.0001, True, None]}},
        {"spec": {1: "an int key orjson does not encode"}},
        {"spec": {"big": 2**70}},
    ],
    ids=["service", "non-ascii", "numbers", "int-key", "big-int"],
)
def test_the_applied_hash_is_the_sorted_json_hash_children_carry(obj: dict[Any, Any]) -> None:
    # The hash was always sha256 of json.dumps with sorted keys; remembering it by the orjson
    # encoding must not change it (a changed hash would re-apply every child once).
    expected = hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()[:16]
    assert rendered_hash(obj) == expected
    assert rendered_hash(copy.deepcopy(obj)) == expected  # from the memo, for an equal object


def test_equal_looking_values_of_other_types_hash_differently() -> None:
    hashes = {rendered_hash({"v": value}) for value in (1, 1.0, True, "1")}
    assert len(hashes) == 4
