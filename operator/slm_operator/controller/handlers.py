"""The controller: its own watches feed a work queue, a few workers reconcile.

kopf runs the process (login, liveness endpoint, logging, signals) and handles no resource:
its per-event machinery -- per-object memory, a body wrapper, loggers, cause detection, a patch
to apply -- is made for handlers that change the objects, and cost most of the operator's CPU.
Its handlers would also store state on every model (a diff base copying the whole spec into an
annotation, which can outgrow the API server's 256 KiB annotation limit) and, for a timer, a
finalizer (so a model deleted while the operator is down would hang in Terminating). Instead:

* the models, every managed kind (with our label selector) and the models' pods are listed
  and watched by lean streams (:mod:`slm_operator.controller.watching`); the children are
  indexed by owner (:mod:`slm_operator.controller.owner_index`), so a reconcile reads nothing
  it already knows; a kind of an optional CRD is streamed while its CRD exists;
* an event on a model (new, or a new ``generation``) or on one of its children enqueues the
  model in one :class:`~slm_operator.controller.workqueue.WorkQueue` (deduplicated, per-model
  exponential backoff); an event that only echoes our own write enqueues nothing;
* one resync loop enqueues every model now and then (the safety net; it costs no request when
  nothing drifted);
* a fixed number of workers run :func:`reconcile_model` in a thread, then patch the model's
  ``status`` subresource and post transition Events themselves; they start once every stream
  has listed its objects, so no reconcile works from a half-filled index.

A deleted model is forgotten at once. A finalizer or kopf annotation an older version of the
operator left on a model is removed the first time the model is seen.

The module is a little over the project's usual 400 lines: :class:`ControllerContext` keeps the
wiring of streams, queue and workers in one class, so the path from an event to a status patch
reads in one place; the pure helpers it uses are in :mod:`slm_operator.controller.bodies`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slm_operator.api.config import OperatorConfig
from slm_operator.api.spec import API_GROUP, API_VERSION, PLURAL
from slm_operator.contract.kinds import MANAGED_KINDS, ManagedKind
from slm_operator.contract.names import MODEL_LABEL
from slm_operator.controller.bodies import (
    PackedMap,
    generation_of,
    key_of,
    older,
    only_status_changed,
    reported_status_changed,
    slim_model,
    slim_pod,
    status_patch,
    uid_of,
    utc_now,
)
from slm_operator.controller.desired_cache import DesiredCache
from slm_operator.controller.kubeapi import (
    ApiError,
    KubeApi,
    ModelResource,
    TransientApiError,
    cluster_path,
    collection_path,
)
from slm_operator.controller.leftovers import leftovers_patch, remove_leftovers
from slm_operator.controller.metrics import OperatorMetrics
from slm_operator.controller.owner_index import (
    Children,
    ModelKey,
    OwnerIndex,
    model_key,
)
from slm_operator.controller.reconcile import (
    Outcome,
    Result,
    Settled,
    reconcile_model,
    refresh_status,
    settled_inputs,
)
from slm_operator.controller.settings import COMPONENT, MANAGED_BY_SELECTOR
from slm_operator.controller.watching import ApiSession, EventSink, WatchStream
from slm_operator.controller.workqueue import ExponentialBackoff, WorkQueue
from slm_operator.diagnosis import Diagnosis, diagnose

log = logging.getLogger(__name__)

MODELS = ModelResource(f"{API_GROUP}/{API_VERSION}", PLURAL)
PODS = ManagedKind("v1", "Pod", "pods")  # not a child: only its path is needed here
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

# Kinds every API server serves, streamed from the start; and kinds of optional CRDs, streamed
# while their CRD exists.
BUILT_IN_KINDS: tuple[ManagedKind, ...] = tuple(kind for kind in MANAGED_KINDS if not kind.optional_crd)
OPTIONAL_KINDS: tuple[ManagedKind, ...] = tuple(kind for kind in MANAGED_KINDS if kind.optional_crd)


@dataclass
class ControllerContext:
    """Everything the handlers and workers share for one operator run (one event loop)."""

    api: KubeApi
    config: OperatorConfig
    metrics: OperatorMetrics
    resync_seconds: float = 300.0
    workers: int = 4
    watch_timeout: int = 300  # seconds before the server ends a watch (it is re-opened at once)
    index: OwnerIndex = field(default_factory=OwnerIndex)
    # Parsed specs and desired states, for a model's next pass (a new model's second reuses its first's).
    desired: DesiredCache = field(default_factory=DesiredCache)
    # Transient failures back off from 5 s to 2 min; refusals only a human can fix from 5 min
    # to an hour (WorkQueue's slow backoff); a token bucket spreads a storm of retries.
    queue: WorkQueue[ModelKey] = field(
        default_factory=lambda: WorkQueue(backoff=ExponentialBackoff(base=5.0, limit=120.0))
    )
    # The latest body seen of every model (each read is a fresh copy: see PackedMap).
    models: PackedMap[ModelKey] = field(default_factory=PackedMap)
    # The models' pods (by model, then pod name), from the pod watch: only read to say why a
    # model is not running (slm_operator.diagnosis).
    pods: dict[ModelKey, PackedMap[str]] = field(default_factory=dict)
    # What those pods say is wrong with each model (diagnose() of its pods, without the
    # Deployment), where something is: a pod event compares against it instead of unpacking
    # and diagnosing the model's pods once more.
    _pod_diagnoses: dict[ModelKey, Diagnosis] = field(default_factory=dict)
    # Child events that arrived while their model was being reconciled: decided once the
    # reconcile's own writes are known (an echo of one of them needs no second pass).
    # (kind, metadata, whether only its status changed) of each such event.
    _deferred: dict[ModelKey, list[tuple[ManagedKind, dict[str, Any], bool]]] = field(default_factory=dict)
    # Models whose last pass left every child as desired, with what that pass knew: while
    # their children change only in their status (a Deployment becoming available), the next
    # pass refreshes the status alone (reconcile.refresh_status). Any other change to a child,
    # a new spec, a resync or a failed pass drops the record, and the next pass is complete.
    _settled: dict[ModelKey, Settled] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _session: ApiSession | None = None
    _namespaces: tuple[str, ...] = ()
    _unlisted: int = 0  # streams that have not finished their first listing
    _optional: dict[ManagedKind, list[tuple[WatchStream, asyncio.Task[None]]]] = field(default_factory=dict)
    _listed: asyncio.Event = field(default_factory=asyncio.Event)
    _cleaning: dict[ModelKey, asyncio.Task[None]] = field(default_factory=dict)  # leftovers patches

    # -- models ----------------------------------------------------------------------------

    def model_changed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event on a model (``None``: from the listing): remember it, queue a pass
        when it is new or its spec changed, and remove what an older version left on it."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        if event_type == "DELETED":
            self.forget(namespace, name)
            return
        patch = leftovers_patch(body)
        if patch is not None and (namespace, name) not in self._cleaning:
            self._cleaning[(namespace, name)] = asyncio.create_task(
                self._clean((namespace, name), patch), name=f"clean {namespace}/{name}"
            )
        if self.model_seen(body):
            self.queue.add((namespace, name))

    async def _clean(self, key: ModelKey, patch: dict[str, Any]) -> None:
        try:
            await remove_leftovers(self.api, MODELS, key, patch, latest=lambda: self.models.get(key))
        finally:
            self._cleaning.pop(key, None)

    def model_seen(self, body: Mapping[str, Any]) -> bool:
        """Remember the newest body of a model; True when it needs a reconcile (new spec)."""
        key = key_of(body)
        previous = self.models.get(key)
        if previous is not None and older(body, previous):
            return False  # a late event: we already hold a newer version (our status patch)
        self.models[key] = slim_model(body)
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return False  # being deleted: garbage collection removes the children
        if (
            previous is None
            or generation_of(previous) != generation_of(body)
            or uid_of(previous) != uid_of(body)  # deleted and created again under the same name
        ):
            self._settled.pop(key, None)
            return True
        return False

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self.models.pop(key, None)
        self.pods.pop(key, None)
        self._pod_diagnoses.pop(key, None)
        self._settled.pop(key, None)
        self._deferred.pop(key, None)
        self.queue.remove(key)
        self.index.forget(key)
        self.metrics.set_phase(namespace, name, None)

    def enqueue(self, namespace: str, name: str) -> None:
        """Ask for a reconcile of a known model soon (on the operator's loop)."""
        if (namespace, name) in self.models:
            self.queue.add((namespace, name))

    # -- children --------------------------------------------------------------------------

    def child_changed(self, kind: ManagedKind, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event on a child: enqueue its model unless it only echoes our own write, or
        only changes a status the model's own status does not depend on."""
        previous = self.index.indexed(kind, body) if event_type == "MODIFIED" else None
        self.index.observe(kind, event_type, body)
        if event_type is None:
            return  # the initial listing: every model is enqueued by its own listing event
        key = model_key(body)
        if key is None or key not in self.models:
            return  # not (or no longer) a model we know: a deleted model's children going
        if self.index.is_echo(kind, body):
            return
        status_only = False
        if previous is not None:
            before = previous.unpack()
            status_only = only_status_changed(kind, before, body)
            if status_only and not reported_status_changed(kind, before, body):
                return
        if key in self.queue.processing:
            self._deferred.setdefault(key, []).append((kind, dict(body.get("metadata") or {}), status_only))
            return
        if not status_only:
            self._settled.pop(key, None)  # a possible drift: the next pass checks every child
        self.queue.add(key)

    def pod_changed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event on a model's pod: keep it, and look at the model again when it changes
        what the pods say about the model (a pod that cannot be scheduled, pull its image or
        start changes what Ready says). A pod that is created, scheduled, started and becomes
        ready changes nothing there: the Deployment's own status, watched too, tells that."""
        meta = body.get("metadata") or {}
        model = (meta.get("labels") or {}).get(MODEL_LABEL)
        if not model or not meta.get("namespace"):
            return
        key: ModelKey = (str(meta["namespace"]), str(model))
        pods = self.pods.get(key)
        if pods is None:
            pods = self.pods[key] = PackedMap()
        name = str(meta.get("name"))
        if event_type == "DELETED":
            pods.pop(name, None)
            current = list(pods.values())
            if not pods:
                self.pods.pop(key, None)
        else:
            slimmed = pods[name] = slim_pod(body)
            current = [slimmed if pod == name else pods[pod] for pod in pods]
        before = self._pod_diagnoses.pop(key, None)
        after = diagnose(current, None)
        if after is not None:
            self._pod_diagnoses[key] = after
        if event_type is None or key not in self.models or key in self.queue.processing:
            return
        if after != before:
            self.queue.add(key)

    # -- workers ---------------------------------------------------------------------------

    def start(self, *, watch_namespaces: Sequence[str] | None = None) -> None:
        """Start the workers and the resync loop on the running loop, and the streams of the
        children and pods: cluster-wide for ``()``, else in each of ``watch_namespaces``
        (``None``: no streams; the caller feeds :meth:`child_changed` itself, as tests do)."""
        self.metrics.queue_depth.set_function(lambda: len(self.queue))
        streams = [] if watch_namespaces is None else self._streams(tuple(watch_namespaces))
        self._unlisted = len(streams)
        if not streams:
            self._listed.set()
        self._tasks = [asyncio.create_task(self._work(), name=f"worker-{n}") for n in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._resync(), name="resync"))
        self._tasks += [asyncio.create_task(stream.run(), name=f"watch {stream.path}") for stream in streams]

    def _streams(self, namespaces: tuple[str, ...]) -> list[WatchStream]:
        self._session = ApiSession(self.api.configuration)
        self._namespaces = namespaces
        streams = [
            self._stream(MODELS.collection_path(namespace), self.model_changed, on_listed=self._one_listed)
            for namespace in (self._namespaces or ("",))
        ]
        sinks: list[tuple[ManagedKind, EventSink]] = [
            (kind, functools.partial(self.child_changed, kind)) for kind in BUILT_IN_KINDS
        ]
        sinks.append((PODS, self.pod_changed))
        streams += [
            stream for kind, sink in sinks for stream in self._kind_streams(kind, sink, self._one_listed)
        ]
        for kind in OPTIONAL_KINDS:
            crd = f"metadata.name={kind.plural}.{kind.group}"
            sink = functools.partial(self._crd_changed, kind)
            streams.append(self._stream(CRDS, sink, on_listed=self._one_listed, field_selector=crd))
        return streams

    def _kind_streams(
        self, kind: ManagedKind, sink: EventSink, on_listed: Callable[[], None]
    ) -> list[WatchStream]:
        return [
            self._stream(
                collection_path(kind, namespace) if namespace else cluster_path(kind),
                sink,
                on_listed=on_listed,
                label_selector=MANAGED_BY_SELECTOR,
            )
            for namespace in (self._namespaces or ("",))
        ]

    def _stream(
        self,
        path: str,
        sink: EventSink,
        *,
        on_listed: Callable[[], None],
        label_selector: str = "",
        field_selector: str = "",
    ) -> WatchStream:
        assert self._session is not None
        return WatchStream(
            self._session,
            path=path,
            label_selector=label_selector,
            field_selector=field_selector,
            sink=sink,
            on_listed=on_listed,
            server_timeout=self.watch_timeout,
            client_timeout=self.watch_timeout + 30.0,
        )

    def _crd_changed(self, kind: ManagedKind, event_type: str | None, body: Mapping[str, Any]) -> None:
        """The CRD of an optional kind appeared or went: start or stop streaming that kind.

        A CRD present at start-up is seen in its stream's first listing, before that stream
        counts as listed: the kind's own streams join the start-up gate, so the workers wait
        for them too."""
        del body
        self._settled.clear()  # what the cluster serves changed: check every child again
        if event_type == "DELETED":
            for stream, task in self._optional.pop(kind, []):
                task.cancel()
                stream.forget_all()  # its objects went with the CRD
            log.info("stopped watching %s: its CRD is gone", kind.kind)
            return
        if kind in self._optional:
            return
        gated = not self._listed.is_set()
        streams = self._kind_streams(
            kind, functools.partial(self.child_changed, kind), self._one_listed if gated else _nothing
        )
        if gated:
            self._unlisted += len(streams)
        self._optional[kind] = [
            (stream, asyncio.create_task(stream.run(), name=f"watch {stream.path}")) for stream in streams
        ]
        log.info("watching %s: its CRD is installed", kind.kind)

    def _one_listed(self) -> None:
        self._unlisted -= 1
        if self._unlisted == 0:
            log.info("every watched child and pod is listed; reconciling")
            self._listed.set()

    async def stop(self) -> None:
        tasks = self._tasks + [task for streams in self._optional.values() for _, task in streams]
        tasks += list(self._cleaning.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._optional = [], {}
        self.queue.close()
        if self._session is not None:
            await self._session.close()

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            self._settled.clear()  # the safety net checks every child again
            for key in list(self.models):
                self.queue.add(key)

    async def _work(self) -> None:
        await self._listed.wait()
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile(key)
            except Exception:  # a bug or an unexpected answer: logged, retried with backoff
                log.exception("reconciling %s/%s failed", *key)
                self.queue.retry(key)
            finally:
                self._resolve_deferred(key)
                self.queue.done(key)

    async def reconcile(self, key: ModelKey) -> None:
        """One pass over one model: reconcile, then status and Events, then schedule the next."""
        body = self.models.get(key)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return
        existing = self.index.children(key, MANAGED_KINDS)
        pods = list(self.pods.get(key, {}).values())  # copies, like the body
        settled = self._settled.pop(key, None)
        started = time.monotonic()
        try:
            outcome, updated = await asyncio.to_thread(
                self._reconcile_in_thread, body, existing, pods, settled
            )
        except Exception:
            self.metrics.observe_reconcile(Result.ERROR, time.monotonic() - started)
            raise
        self.metrics.observe_reconcile(outcome.result, time.monotonic() - started)
        if outcome.written:
            log.info("%s/%s: %s", *key, ", ".join(map(str, outcome.written)))  # one line per pass that wrote
        self._record_writes(outcome)
        if outcome.settled is not None and outcome.result is Result.OK and key in self.models:
            self._settled[key] = outcome.settled
        if updated is not None and key in self.models and self.model_seen(updated):
            # The spec changed while we worked (our status patch answered a newer generation,
            # and its watch event may already have been taken for an echo): go again.
            self.queue.add(key)
        phase = outcome.status.get("phase")
        if key in self.models:
            self.metrics.set_phase(*key, str(phase) if phase else None)
        for kind in outcome.failed_kinds:
            self.metrics.apply_errors.labels(kind=kind).inc()
        self._schedule(key, outcome)

    def _reconcile_in_thread(
        self,
        body: dict[str, Any],
        existing: Children,
        pods: list[dict[str, Any]],
        settled: Settled | None,
    ) -> tuple[Outcome, dict[str, Any] | None]:
        """The blocking part: reconcile (or only refresh the status of a settled model whose
        inputs are unchanged), patch the status, post the Events."""
        meta = body["metadata"]
        namespace, name = str(meta["namespace"]), str(meta["name"])
        if settled is not None and settled.inputs == settled_inputs(body, self.api):
            outcome = refresh_status(body, settled=settled, existing=existing, pods=pods, now=utc_now())
        else:
            outcome = reconcile_model(
                body,
                api=self.api,
                config=self.config,
                now=utc_now(),
                existing=existing,
                pods=pods,
                cache=self.desired,
            )
        changes = status_patch(body.get("status") or {}, outcome.status)
        updated: dict[str, Any] | None = None
        if changes:
            try:
                updated = self.api.patch_status(MODELS, namespace, name, changes)
            except TransientApiError as exc:
                outcome.result, outcome.message = Result.RETRY, f"status patch failed: {exc}"
                return outcome, None  # no Events for a status that was not written
        for note in outcome.events:
            try:
                self.api.post_event(
                    updated or body,
                    type_=note.type,
                    reason=note.reason,
                    message=note.message,
                    component=COMPONENT,
                )
            except ApiError as exc:  # an Event is a courtesy: never fail a reconcile over it
                log.warning("posting Event %s on %s/%s failed: %s", note.reason, namespace, name, exc)
        return outcome, updated

    def _record_writes(self, outcome: Outcome) -> None:
        report = outcome.report
        if report is None:
            return
        for kind, obj in report.applied:
            self.index.record_write(kind, obj)
        for kind, name, uid in report.deleted:
            self.index.record_delete(kind, report.namespace, name, uid)

    def _resolve_deferred(self, key: ModelKey) -> None:
        """Child events that came during the pass: re-queue unless each echoes our own write."""
        for kind, meta, status_only in self._deferred.pop(key, []):
            if not self.index.is_echo(kind, {"metadata": meta}):
                if not status_only:
                    self._settled.pop(key, None)
                self.queue.add(key)

    def _schedule(self, key: ModelKey, outcome: Outcome) -> None:
        if outcome.result in (Result.OK, Result.INVALID):
            # Done until something changes; an invalid spec waits for the user's next edit.
            self.queue.forget(key)
        elif outcome.permanent:
            delay = self.queue.retry(key, permanent=True)
            log.warning("%s/%s: %s; next try in %.0f s", *key, outcome.message, delay)
        else:
            delay = self.queue.retry(key)
            log.info("%s/%s: %s; next try in %.1f s", *key, outcome.message, delay)


def _nothing() -> None:
    pass
