"""The operator benchmark's pure parts: counting requests in an audit log, and its workload."""

from __future__ import annotations

import json
from typing import Any

import pytest
from bench.operator import audit, workload

from slm_operator.api.parse import parse_document
from slm_operator.catalog.loader import load_config
from slm_operator.desired import desired_state

OPERATOR = "system:serviceaccount:slm-bench:slm-operator"


def line(
    audit_id: str,
    verb: str,
    resource: str,
    *,
    stage: str = "ResponseComplete",
    at: str = "2026-12-01T06:00:01.500000Z",
    user: str = OPERATOR,
    subresource: str | None = None,
    code: int = 200,
) -> str:
    ref: dict[str, Any] = {"resource": resource, "namespace": "ns", "name": "m"}
    if subresource:
        ref["subresource"] = subresource
    return json.dumps(
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": audit_id,
            "stage": stage,
            "verb": verb,
            "user": {"username": user},
            "objectRef": ref,
            "responseStatus": {"code": code},
            "requestReceivedTimestamp": at,
            "stageTimestamp": at,
        }
    )


def test_requests_are_counted_once_and_by_kind() -> None:
    log = [
        line("1", "watch", "deployments", stage="ResponseStarted"),
        line("1", "watch", "deployments", stage="ResponseComplete"),
        line("2", "patch", "deployments"),
        line("3", "create", "secrets", code=201),
        line("4", "patch", "smalllanguagemodels", subresource="status"),
        line("5", "create", "events", code=201),
        line("6", "get", "services", code=404),
        line("7", "list", "services"),
        line("8", "patch", "deployments", user="admin"),
        line("9", "patch", "deployments", at="2026-12-01T06:10:00Z"),
        "",
    ]
    requests = audit.parse_lines(log)
    assert len(requests) == 9
    start = audit.parse_time("2026-12-01T06:00:00Z")
    tally = audit.tally(requests, user=OPERATOR, start=start, end=start + 60)
    assert dict(tally.writes) == {
        "patch deployments": 1,
        "create secrets": 1,
        "patch smalllanguagemodels/status": 1,
    }
    assert (tally.events, tally.gets, tally.lists, tally.watches) == (1, 1, 1, 1)
    assert tally.refused == 1
    assert tally.non_watch == 6


def test_times_parse_with_and_without_fractions() -> None:
    assert audit.parse_time("2026-12-01T06:00:00Z") + 0.25 == audit.parse_time("2026-12-01T06:00:00.25Z")


@pytest.mark.parametrize("children", [4, 9])
def test_each_shape_has_the_children_it_is_named_for(children: int) -> None:
    (doc,) = workload.models("bench", 1, children=children, spread=1)
    state = desired_state(parse_document(doc), load_config(None), monitoring_available=True)
    assert len(state.objects) == children


def test_models_spread_round_robin_over_namespaces() -> None:
    docs = workload.models("bench", 25, children=4, spread=10)
    spaces = [d["metadata"]["namespace"] for d in docs]
    assert spaces[:3] == ["bench-00", "bench-01", "bench-02"]
    assert {spaces.count(ns) for ns in set(spaces)} == {2, 3}
    assert len({d["metadata"]["name"] for d in docs}) == 25


def test_a_shape_settles_at_its_minimum_replicas() -> None:
    assert workload.replicas(4) == 1
    assert workload.replicas(9) == 2
