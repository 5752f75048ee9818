"""The kopf handlers: thin I/O glue around :func:`reconcile_model`.

One reconcile serves create, update and resume (kopf's level-based pattern), plus one timer per
model that is both the event-driven drift path and the safety net: it sleeps until a child of
the model changes or disappears (the child watches set a per-model "nudge") or until the resync
interval passes, then reconciles. Nothing is written to the model's spec, labels or annotations;
the model's status is written only through kopf's ``patch``.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from slm_operator.api.config import OperatorConfig
from slm_operator.api.spec import API_GROUP, API_VERSION, KIND, PLURAL
from slm_operator.controller.kubeapi import KubeApi
from slm_operator.controller.metrics import OperatorMetrics
from slm_operator.controller.reconcile import (
    RESULT_ERROR,
    RESULT_INVALID,
    RESULT_OK,
    Outcome,
    reconcile_model,
)
from slm_operator.render.kinds import MANAGED_KINDS

log = logging.getLogger(__name__)

RECONCILE_ID = "reconcile"
DRIFT_ID = "drift"


@dataclass
class ControllerContext:
    """Everything the handlers share for one operator run."""

    api: KubeApi
    config: OperatorConfig
    metrics: OperatorMetrics
    resync_seconds: float = 60.0
    nudge_gap_seconds: float = 1.0
    loop: asyncio.AbstractEventLoop | None = None  # the operator's loop, set when it starts
    _nudges: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    _locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def nudge_event(self, namespace: str, name: str) -> asyncio.Event:
        return self._nudges.setdefault((namespace, name), asyncio.Event())

    def nudge(self, namespace: str, name: str) -> None:
        """Ask for a reconcile of one model soon; safe to call from any thread."""
        if self.loop is None:
            raise RuntimeError("the operator is not running")
        self.loop.call_soon_threadsafe(lambda: self.nudge_event(namespace, name).set())

    def tracks(self, namespace: str, name: str) -> bool:
        """Whether this operator has seen the model and not forgotten it."""
        return (namespace, name) in self._nudges

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((namespace, name), asyncio.Lock())

    def forget(self, namespace: str, name: str) -> None:
        self._nudges.pop((namespace, name), None)
        self._locks.pop((namespace, name), None)
        self.metrics.set_phase(namespace, name, None)


def utc_now() -> str:
    """RFC 3339 with second precision and ``Z``, as Kubernetes writes times."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Only the status keys that change (``None`` removes a key): unchanged means no request."""
    return {
        key: value
        for key, value in new.items()
        if old.get(key) != value and not (value is None and key not in old)
    }


def backoff(base: float, retry: int, *, limit: float = 120.0) -> float:
    """Exponential backoff from ``base`` seconds: base, 2x, 4x ... up to ``limit``."""
    return min(limit, base * float(2 ** min(retry, 8)))


async def run_reconcile(
    ctx: ControllerContext, body: kopf.Body, patch: kopf.Patch, *, retry: int = 0
) -> None:
    """Reconcile one model in a thread, then patch its status and post transition Events."""
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    started = time.monotonic()
    async with ctx.lock(namespace, name):
        # Re-read nothing here: kopf hands the freshest body it has seen; the reconcile is
        # level-based, so a newer change simply triggers another pass.
        try:
            outcome: Outcome = await asyncio.to_thread(
                reconcile_model, _plain(body), api=ctx.api, config=ctx.config, now=utc_now()
            )
        except Exception:
            # A bug or an unexpected API answer: counted, then kopf retries with its backoff.
            ctx.metrics.observe_reconcile(RESULT_ERROR, time.monotonic() - started)
            raise
    ctx.metrics.observe_reconcile(outcome.result, time.monotonic() - started)
    for key, value in status_patch(body.get("status") or {}, outcome.status).items():
        patch.status[key] = value
    phase = outcome.status.get("phase")
    ctx.metrics.set_phase(namespace, name, str(phase) if phase else None)
    for note in outcome.events:
        kopf.event(body, type=note.type, reason=note.reason, message=note.message)
    for kind in outcome.failed_kinds:
        ctx.metrics.apply_errors.labels(kind=kind).inc()
    if outcome.result == RESULT_INVALID:
        # Final until the spec changes: no hot retry loop on input only the user can fix.
        raise kopf.PermanentError(outcome.message)
    if outcome.result != RESULT_OK:
        raise kopf.TemporaryError(outcome.message, delay=backoff(outcome.retry_delay or 10, retry))


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A plain deep copy of kopf's live body view (safe to use from another thread)."""
    return copy.deepcopy(dict(body))


def register(registry: kopf.OperatorRegistry, ctx: ControllerContext) -> None:
    """Register the handlers on ``registry`` (closures over ``ctx``; no module-level state)."""

    @kopf.on.resume(API_GROUP, API_VERSION, PLURAL, id=RECONCILE_ID, registry=registry)
    @kopf.on.create(API_GROUP, API_VERSION, PLURAL, id=RECONCILE_ID, registry=registry)
    @kopf.on.update(API_GROUP, API_VERSION, PLURAL, id=RECONCILE_ID, registry=registry)
    async def reconcile(body: kopf.Body, patch: kopf.Patch, retry: int = 0, **_: Any) -> None:
        await run_reconcile(ctx, body, patch, retry=retry)

    @kopf.timer(
        API_GROUP, API_VERSION, PLURAL, id=DRIFT_ID, interval=ctx.nudge_gap_seconds, registry=registry
    )
    async def drift(
        body: kopf.Body, patch: kopf.Patch, retry: int = 0, stopped: Any = None, **_: Any
    ) -> None:
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        nudge = ctx.nudge_event(namespace, name)
        if retry:
            # kopf re-invokes after a TemporaryError's delay: retry now, do not wait again.
            nudge.clear()
            await run_reconcile(ctx, body, patch, retry=retry)
            return
        # Sleep until a child changes (nudge), the resync interval passes, or kopf stops the
        # timer (object deleted, operator exiting) -- whichever comes first.
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(nudge.wait())]
        if stopped is not None:
            waiters.append(asyncio.ensure_future(stopped.wait()))
        try:
            await asyncio.wait(waiters, timeout=ctx.resync_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if stopped is not None and stopped.is_set():
            return
        nudge.clear()
        await run_reconcile(ctx, body, patch)

    @kopf.on.delete(API_GROUP, API_VERSION, PLURAL, id="forget", optional=True, registry=registry)
    async def forget(body: kopf.Body, **_: Any) -> None:
        # Optional: kopf adds no finalizer for it; owner references garbage-collect the children.
        meta = body.get("metadata") or {}
        ctx.forget(str(meta.get("namespace")), str(meta.get("name")))

    for kind in MANAGED_KINDS:
        args = (kind.group, kind.version, kind.plural) if kind.group else (kind.version, kind.plural)

        @kopf.on.event(*args, id=f"child-{kind.plural}", registry=registry)
        async def child_changed(body: kopf.Body, type: str | None = None, **_: Any) -> None:
            # Any change or deletion of a child nudges its owner's drift timer. The initial
            # listing (type None) is skipped: the resume reconcile covers the time we were away.
            if type is None:
                return
            meta = body.get("metadata") or {}
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{API_GROUP}/"):
                    key = (str(meta.get("namespace")), str(ref.get("name")))
                    # A deletion seen for a model we no longer track is garbage collection
                    # after the model went: do not re-create its bookkeeping.
                    if type == "DELETED" and not ctx.tracks(*key):
                        continue
                    ctx.nudge_event(*key).set()
