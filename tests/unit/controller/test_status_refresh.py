"""A settled model's status-only pass: the same status and Events as a complete pass, and
taken only while nothing but the children's status changed since the pass that settled it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from status_fake_api import FakeApi
from test_status_shape import AVAILABLE, T0, T1, body, builtin_config, served_children, summary

from slm_operator.contract.kinds import DEPLOYMENT, MANAGED_KINDS, SERVICE, ManagedKind
from slm_operator.controller import handlers
from slm_operator.controller.handlers import ControllerContext
from slm_operator.controller.kubeapi import ModelResource, TransientApiError
from slm_operator.controller.metrics import OperatorMetrics
from slm_operator.controller.owner_index import Children
from slm_operator.controller.reconcile import (
    Outcome,
    Result,
    reconcile_model,
    refresh_status,
    settled_inputs,
)

KEY = ("ai", "m1")
UNSCHEDULABLE_POD = {
    "metadata": {"name": "m1-abc", "namespace": "ai", "creationTimestamp": T0},
    "spec": {"containers": [{"name": "ollama", "image": "ollama/ollama:0.12.6"}]},
    "status": {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
        ],
    },
}
ROLLING = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1}
SCALED = {**AVAILABLE, "replicas": 3, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 3}
DEADLINE = {
    "observedGeneration": 1,
    "replicas": 1,
    "conditions": [
        {"type": "Available", "status": "False"},
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "slow"},
    ],
}


def _children_with(deployment_status: Mapping[str, Any]) -> tuple[dict[str, Any], Children]:
    status, existing = served_children()
    existing[DEPLOYMENT]["m1"]["status"] = copy.deepcopy(dict(deployment_status))
    return status, existing


@pytest.mark.parametrize(
    ("deployment_status", "pods"),
    [
        (AVAILABLE, []),
        (ROLLING, []),
        (ROLLING, [UNSCHEDULABLE_POD]),
        (SCALED, []),
        (DEADLINE, []),
        ({}, []),
    ],
    ids=["available", "rolling-out", "unschedulable", "scaled", "deadline", "not-observed"],
)
def test_a_status_refresh_writes_what_a_complete_pass_would(
    deployment_status: Mapping[str, Any], pods: list[dict[str, Any]]
) -> None:
    first = reconcile_model(body(), api=FakeApi(), config=builtin_config(), now=T0, existing={})
    assert first.settled is not None
    status, existing = _children_with(deployment_status)
    full = reconcile_model(
        body(status=status), api=FakeApi(), config=builtin_config(), now=T1, existing=existing, pods=pods
    )
    refreshed = refresh_status(
        body(status=status), settled=first.settled, existing=existing, pods=pods, now=T1
    )
    assert summary(refreshed) == summary(full)
    assert full.settled == first.settled  # the same inputs settle to the same record


def test_only_a_pass_that_left_everything_as_desired_settles() -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "m1", "namespace": "ai", "uid": "x"},
    }
    cases = {
        "foreign object": FakeApi(foreign={("Service", "m1"): foreign}),
        "refused write": FakeApi(refuse={"Service": 403}),
        "discovery down": FakeApi(discovery_fails=True),
    }
    for what, api in cases.items():
        outcome = reconcile_model(body(), api=api, config=builtin_config(), now=T0, existing={})
        assert outcome.settled is None, what
    invalid = reconcile_model(
        body({"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "cpu"}, "maxConcurrency": 0}),
        api=FakeApi(),
        config=builtin_config(),
        now=T0,
        existing={},
    )
    assert invalid.result is Result.INVALID
    assert invalid.settled is None


def test_the_settled_inputs_ignore_the_status_but_not_the_spec_or_discovery() -> None:
    inputs = settled_inputs(body(), FakeApi())
    assert inputs is not None
    rewritten = body(status={"phase": "Ready"})
    rewritten["metadata"]["resourceVersion"] = "99"
    assert settled_inputs(rewritten, FakeApi()) == inputs
    assert (
        settled_inputs(body({"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "edge"}}), FakeApi())
        != inputs
    )
    relabelled = body()
    relabelled["metadata"]["labels"] = {"team": "a"}
    assert settled_inputs(relabelled, FakeApi()) != inputs
    assert settled_inputs(body(), FakeApi(discovery_fails=True)) is None


class ClusterApi(FakeApi):
    """FakeApi with resourceVersions, a status subresource and Events, for the operator shell."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 100
        self.statuses: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.model = body()

    def _write(self, kind: ManagedKind, name: str, body_: Mapping[str, Any]) -> dict[str, Any]:
        live = super()._write(kind, name, body_)
        self.version += 1
        live["metadata"].update(namespace="ai", resourceVersion=str(self.version))
        return live

    def patch_status(
        self, resource: ModelResource, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        self.version += 1
        self.statuses.append(dict(status))
        self.model = copy.deepcopy(self.model)
        self.model.setdefault("status", {}).update(copy.deepcopy(dict(status)))
        self.model["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.model)

    def post_event(self, involved: Mapping[str, Any], *, type_: str, reason: str, **_: Any) -> None:
        self.events.append(reason)


@pytest.fixture
def complete_passes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The complete passes the shell runs (reconcile_model calls), by model name."""
    calls: list[str] = []

    def counted(model: Mapping[str, Any], **kwargs: Any) -> Outcome:
        calls.append(str(model["metadata"]["name"]))
        return reconcile_model(model, **kwargs)

    monkeypatch.setattr(handlers, "reconcile_model", counted)
    return calls


def _context(api: ClusterApi) -> ControllerContext:
    ctx = ControllerContext(api=api, config=builtin_config(), metrics=OperatorMetrics())
    ctx.models[KEY] = api.model
    return ctx


def _live(ctx: ControllerContext, kind: ManagedKind) -> dict[str, Any]:
    found = ctx.index.children(KEY, MANAGED_KINDS)[kind]["m1"]
    return copy.deepcopy(found)


def _echo_writes(ctx: ControllerContext) -> None:
    """The watch events of the first pass's writes (ADDED, at the versions it was answered)."""
    for kind, items in ctx.index.children(KEY, MANAGED_KINDS).items():
        for obj in items.values():
            ctx.child_changed(kind, "ADDED", copy.deepcopy(obj))


def _next_version(api: ClusterApi, obj: dict[str, Any]) -> dict[str, Any]:
    api.version += 1
    obj["metadata"]["resourceVersion"] = str(api.version)
    return obj


async def test_a_deployment_becoming_available_only_refreshes_the_status(complete_passes: list[str]) -> None:
    api = ClusterApi()
    ctx = _context(api)
    await ctx.reconcile(KEY)
    assert complete_passes == ["m1"]
    assert len(api.writes) == 4
    _echo_writes(ctx)
    assert len(ctx.queue) == 0
    available = _next_version(api, _live(ctx, DEPLOYMENT))
    available["status"] = copy.deepcopy(AVAILABLE)
    ctx.child_changed(DEPLOYMENT, "MODIFIED", available)
    assert ctx.queue.pending(KEY)
    await ctx.reconcile(KEY)
    assert complete_passes == ["m1"]  # no second parse, plan, render or drift check
    assert len(api.writes) == 4
    assert api.statuses[-1]["phase"] == "Ready"
    assert api.events == ["Planned", "Ready"]


async def test_any_other_change_to_a_child_makes_the_next_pass_complete(complete_passes: list[str]) -> None:
    api = ClusterApi()
    ctx = _context(api)
    await ctx.reconcile(KEY)
    _echo_writes(ctx)
    edited = _next_version(api, _live(ctx, SERVICE))
    edited["spec"]["ports"] = [{"name": "http", "port": 9999}]  # someone edits the Service
    ctx.child_changed(SERVICE, "MODIFIED", edited)
    await ctx.reconcile(KEY)
    assert complete_passes == ["m1", "m1"]
    assert api.writes[-1] == "write Service/m1"  # and the drift is repaired


async def test_a_change_seen_during_a_pass_unsettles_once_it_proves_not_ours(
    complete_passes: list[str],
) -> None:
    api = ClusterApi()
    ctx = _context(api)
    await ctx.reconcile(KEY)
    _echo_writes(ctx)
    ctx.queue.add(KEY)
    assert await ctx.queue.get() == KEY  # a pass is running
    available = _next_version(api, _live(ctx, DEPLOYMENT))
    available["status"] = copy.deepcopy(AVAILABLE)
    ctx.child_changed(DEPLOYMENT, "MODIFIED", available)
    ctx._resolve_deferred(KEY)
    assert KEY in ctx._settled  # only the Deployment's status: still settled
    edited = _next_version(api, _live(ctx, SERVICE))
    edited["metadata"]["labels"] = {**edited["metadata"]["labels"], "extra": "x"}
    ctx.child_changed(SERVICE, "MODIFIED", edited)
    ctx._resolve_deferred(KEY)
    assert KEY not in ctx._settled
    ctx.queue.done(KEY)


async def test_a_failed_status_write_leaves_the_model_unsettled(complete_passes: list[str]) -> None:
    api = ClusterApi()

    def refuse(*args: Any) -> None:
        raise TransientApiError(503, "etcd is slow")

    api.patch_status = refuse  # type: ignore[method-assign,assignment]
    ctx = _context(api)
    await ctx.reconcile(KEY)
    assert KEY not in ctx._settled


async def test_a_new_spec_drops_the_record() -> None:
    api = ClusterApi()
    ctx = _context(api)
    await ctx.reconcile(KEY)
    assert KEY in ctx._settled
    edited = body({"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "edge"}}, generation=2)
    edited["metadata"]["resourceVersion"] = str(api.version + 1)
    ctx.model_changed("MODIFIED", edited)
    assert KEY not in ctx._settled
    assert ctx.queue.pending(KEY)


async def test_a_relabelled_model_gets_a_complete_pass(complete_passes: list[str]) -> None:
    """Labels and annotations do not move the generation (no pass of their own), but they are
    inputs: the next pass, whatever queued it, is complete."""
    api = ClusterApi()
    ctx = _context(api)
    await ctx.reconcile(KEY)
    _echo_writes(ctx)
    relabelled = copy.deepcopy(api.model)
    relabelled["metadata"].update(labels={"team": "search"}, resourceVersion=str(api.version + 1))
    api.model = relabelled
    ctx.model_changed("MODIFIED", relabelled)
    assert not ctx.queue.pending(KEY)
    assert KEY in ctx._settled
    available = _next_version(api, _live(ctx, DEPLOYMENT))
    available["status"] = copy.deepcopy(AVAILABLE)
    ctx.child_changed(DEPLOYMENT, "MODIFIED", available)
    await ctx.reconcile(KEY)
    assert complete_passes == ["m1", "m1"]
