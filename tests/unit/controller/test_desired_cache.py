"""The desired-state cache: reused only for the very same inputs, bounded, never for errors."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest

from slm_operator.api.config import OperatorConfig
from slm_operator.api.errors import SpecError
from slm_operator.api.parse import parse_document
from slm_operator.catalog.loader import load_config
from slm_operator.controller.desired_cache import DesiredCache
from slm_operator.desired import desired_state


@cache
def config() -> OperatorConfig:
    return load_config(None)


def body(name: str = "m", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": name, "namespace": "ai", "uid": "u-1", "generation": 1, "resourceVersion": "5"},
        "spec": {"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "cpu"}, **spec},
    }


def test_the_same_inputs_get_the_state_computed_first_and_equal_to_a_fresh_one() -> None:
    desired = DesiredCache()
    model, state = desired.get(body(), config(), monitoring=True, keda=False)
    # A status patch changes the status and the resourceVersion, nothing the state depends on.
    later = copy.deepcopy(body())
    later["metadata"]["resourceVersion"] = "9"
    later["status"] = {"phase": "Progressing"}
    again = desired.get(later, config(), monitoring=True, keda=False)
    assert again[0] is model
    assert again[1] is state
    assert len(desired) == 1  # one entry served both
    fresh = desired_state(parse_document(body()), config(), monitoring_available=True)
    assert state == fresh


def spec_changed(doc: dict[str, Any]) -> None:
    doc["spec"]["replicas"] = 2


def labelled(doc: dict[str, Any]) -> None:
    doc["metadata"]["labels"] = {"team": "a"}


def renamed(doc: dict[str, Any]) -> None:
    doc["metadata"]["name"] = "other"


def new_generation(doc: dict[str, Any]) -> None:
    doc["metadata"]["generation"] = 2


@pytest.mark.parametrize("change", [spec_changed, labelled, renamed, new_generation])
def test_any_other_change_of_the_body_computes_again(change: Any) -> None:
    desired = DesiredCache()
    _, first = desired.get(body(), config(), monitoring=True, keda=False)
    changed = body()
    change(changed)
    _, second = desired.get(changed, config(), monitoring=True, keda=False)
    assert second is not first
    assert len(desired) == 2


def test_other_discovery_answers_or_another_configuration_compute_again() -> None:
    desired = DesiredCache()
    _, first = desired.get(body(), config(), monitoring=True, keda=False)
    assert desired.get(body(), config(), monitoring=False, keda=False)[1] is not first
    assert desired.get(body(), config(), monitoring=True, keda=True)[1] is not first
    other = copy.copy(config())  # an equal configuration, but another one (a reload)
    assert desired.get(body(), other, monitoring=True, keda=False)[1] is not first
    assert len(desired) == 3  # another configuration replaces the entry of the same inputs


def test_a_spec_that_fails_raises_every_time_and_is_not_kept() -> None:
    desired = DesiredCache()
    broken = body(replicas="three")
    for _ in range(2):
        with pytest.raises(SpecError, match="replicas"):
            desired.get(broken, config(), monitoring=True, keda=False)
    assert len(desired) == 0


def test_the_least_recently_used_entry_goes_first() -> None:
    desired = DesiredCache(capacity=2)
    a, b, c = (desired.get(body(name), config(), monitoring=True, keda=False)[1] for name in "abc")
    assert len(desired) == 2
    assert desired.get(body("c"), config(), monitoring=True, keda=False)[1] is c
    assert desired.get(body("b"), config(), monitoring=True, keda=False)[1] is b
    assert desired.get(body("a"), config(), monitoring=True, keda=False)[1] is not a  # evicted
    assert desired.get(body("c"), config(), monitoring=True, keda=False)[1] is not c  # then c


def test_a_body_orjson_cannot_encode_is_computed_without_the_cache() -> None:
    desired = DesiredCache()
    odd = body()
    odd["metadata"]["annotations"] = {"n": 2**70}
    _, state = desired.get(odd, config(), monitoring=True, keda=False)
    assert state.objects
    assert len(desired) == 0
