"""Apply, create-once and prune a model's children (I/O through :class:`KubeApi`).

What exists comes from the operator's watches (:mod:`slm_operator.controller.owner_index`), so a
pass with nothing to do makes no request at all. Every child is written with server-side apply
(one field manager, force) and only when it differs from the live object in a field we manage;
the generated API-key Secret is created once and never rewritten; objects the model does not
own are reported, never touched. A desired child the watches have not seen may still exist
without our labels (a same-named object of someone else's), and applying over it would take it
over: such a child is created by an apply that only creates (:func:`_apply_if_absent`), and read
with a GET only when something of its name turns out to exist.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slm_operator.contract.kinds import PVC, SECRET, ManagedKind, kind_of
from slm_operator.contract.names import API_KEY_FILE_KEY, GENERATED_ANNOTATION
from slm_operator.controller.drift import is_owned_by, needs_apply, prepare_child
from slm_operator.controller.kubeapi import (
    ApiError,
    ConflictError,
    KubeApi,
    NamespaceTerminatingError,
    TransientApiError,
)
from slm_operator.controller.owner_index import Children

log = logging.getLogger(__name__)

# Kinds that hold data the user cannot get back: when no longer desired they are kept (still
# owned, so deleting the model removes them). The cache PVC may hold gigabytes of downloaded
# weights; the generated API key may already be in clients' hands. Everything else (HPA, PDB,
# the Modelfile ConfigMap, monitoring objects) is configuration and is pruned.
RETAINED_KINDS: frozenset[ManagedKind] = frozenset({PVC, SECRET})

# A resourceVersion no object has: the largest etcd revision (an int64), never reached.
NO_VERSION = str(2**63 - 1)


@dataclass(frozen=True)
class ChildFailure:
    """A read or write of one child the API server refused for good (403, 404, 422 ...)."""

    label: str  # "Kind/name"
    status: int
    message: str

    def __str__(self) -> str:
        return f"{self.label}: HTTP {self.status}: {self.message}"


@dataclass(frozen=True)
class Write:
    """One write to a child: applied (or created), or ``deleted``."""

    kind: str
    name: str
    deleted: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"

    def __str__(self) -> str:
        # As the operator's log line spells a pass's writes: "Kind/name", "-Kind/name" deleted.
        return f"-{self.label}" if self.deleted else self.label


@dataclass
class ApplyReport:
    """What one pass over the children did and found."""

    namespace: str = ""
    written: list[Write] = field(default_factory=list)  # every write, in order
    foreign: list[str] = field(default_factory=list)  # "Kind/name" of same-named objects not ours
    failed: list[ChildFailure] = field(default_factory=list)  # refused for good: wait for a human
    failed_kinds: list[str] = field(default_factory=list)
    transient: list[str] = field(default_factory=list)  # "Kind/name: message" worth a retry
    live: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (kind, name) -> object
    applied: list[tuple[ManagedKind, dict[str, Any]]] = field(default_factory=list)  # server answers
    deleted: list[tuple[ManagedKind, str, str]] = field(default_factory=list)  # (kind, name, uid)
    reads: int = 0  # GETs this pass needed
    terminating: bool = False  # the namespace is being deleted: stop, report nothing


def reconcile_children(
    api: KubeApi,
    *,
    model: Mapping[str, Any],
    desired: Sequence[Mapping[str, Any]],
    existing: Children,
    autoscaled_minimum: int | None = None,
) -> ApplyReport:
    """Make the model's children match ``desired``: apply, create once, prune what we own.

    ``existing`` is what the watches know of the model's children, for every kind the model
    can have (kinds it cannot have are neither read nor pruned). ``autoscaled_minimum``: an
    autoscaler owns the Deployment's replicas and runs at least this many
    (:func:`held_replicas`).
    """
    meta = model["metadata"]
    namespace, uid = meta["namespace"], meta["uid"]
    report = ApplyReport(namespace=namespace)

    wanted: dict[ManagedKind, set[str]] = {}
    for rendered in desired:
        kind = kind_of(dict(rendered))
        child_name = rendered["metadata"]["name"]
        wanted.setdefault(kind, set()).add(child_name)
        label = f"{kind.kind}/{child_name}"
        try:
            live = existing.get(kind, {}).get(child_name)
            generated = _is_generated_secret(rendered)
            if live is None and not generated:
                child = held_replicas(prepare_child(rendered, model), None, autoscaled_minimum)
                created = _apply_if_absent(api, kind, namespace, child)
                if created is not None:
                    report.written.append(Write(kind.kind, child_name))
                    report.applied.append((kind, created))
                    report.live[(kind.kind, child_name)] = created
                    log.debug("created %s/%s", namespace, label)
                    continue
                # Something of that name exists that the watches never showed: read it.
                report.reads += 1
                live = api.get(kind, namespace, child_name)
                if live is None:  # gone again meanwhile: the next pass creates it
                    raise TransientApiError(409, "it was deleted while being created")
            if live is not None and not is_owned_by(live, uid):
                report.foreign.append(label)
                continue
            if live is not None:
                report.live[(kind.kind, child_name)] = live  # what serves, even if the write fails
            if generated:
                if live is None:
                    live = _create_api_key_secret(api, kind, namespace, rendered, model, report)
                if live is not None and not is_owned_by(live, uid):
                    report.foreign.append(label)
                    continue
            else:
                child = held_replicas(prepare_child(rendered, model), live, autoscaled_minimum)
                if needs_apply(child, live):
                    live = api.apply(kind, namespace, child_name, child)
                    report.written.append(Write(kind.kind, child_name))
                    report.applied.append((kind, live))
                    log.debug("applied %s/%s", namespace, label)
            if live is not None:
                report.live[(kind.kind, child_name)] = live
        except NamespaceTerminatingError:
            report.terminating = True
            return report
        except (TransientApiError, ConflictError) as exc:
            report.transient.append(f"{label}: {exc.message or exc.status}")
            report.failed_kinds.append(kind.kind)
        except ApiError as exc:
            report.failed.append(ChildFailure(label, exc.status, exc.message))
            report.failed_kinds.append(kind.kind)

    if report.transient or report.failed:
        return report  # prune only after a complete pass: never delete on partial knowledge
    _prune(api, existing, wanted, uid=uid, namespace=namespace, report=report)
    return report


def held_replicas(
    child: dict[str, Any], live: Mapping[str, Any] | None, minimum: int | None
) -> dict[str, Any]:
    """An autoscaled Deployment with the replicas it should be applied with.

    The renderer leaves ``replicas`` out while an HPA (or KEDA's) owns the count. Applied that
    way, a new Deployment starts with the default of one replica until the autoscaler raises
    it to its minimum -- one more rollout step, and a model reported Ready at 1/1, then 1/2 --
    and a running Deployment that turns autoscaling on drops to one replica when server-side
    apply removes the field its manager stops applying
    (https://kubernetes.io/docs/reference/using-api/server-side-apply/#transferring-ownership).
    So the operator applies the larger of the autoscaler's minimum and the live count: a new
    Deployment starts at the minimum, a running one keeps what runs, and a count the autoscaler
    chose is never lowered (its later changes take the field over; the next apply sends the
    value it set). A minimum below one (KEDA's scale to zero) does not start a new Deployment
    at zero. Anything else (not a Deployment, replicas rendered) is returned as it is.
    """
    spec = child.get("spec")
    if minimum is None or child.get("kind") != "Deployment" or not isinstance(spec, Mapping):
        return child
    if "replicas" in spec:
        return child
    running = ((live or {}).get("spec") or {}).get("replicas")
    if isinstance(running, int) and not isinstance(running, bool):
        count = max(minimum, running)
    elif live is None and minimum >= 1:
        count = minimum
    else:
        return child
    return {**child, "spec": {**spec, "replicas": count}}


def _prune(
    api: KubeApi,
    listed: Children,
    wanted: Mapping[ManagedKind, set[str]],
    *,
    uid: str,
    namespace: str,
    report: ApplyReport,
) -> None:
    for kind, items in listed.items():
        if kind in RETAINED_KINDS:
            continue
        for child_name, item in items.items():
            if child_name in wanted.get(kind, set()) or not is_owned_by(item, uid):
                continue
            label = f"{kind.kind}/{child_name}"
            try:
                api.delete(kind, namespace, child_name, uid=item["metadata"]["uid"])
            except (TransientApiError, ConflictError) as exc:
                report.transient.append(f"{label}: {exc.message or exc.status}")
                report.failed_kinds.append(kind.kind)
                continue
            except ApiError as exc:
                report.failed.append(ChildFailure(label, exc.status, exc.message))
                report.failed_kinds.append(kind.kind)
                continue
            report.written.append(Write(kind.kind, child_name, deleted=True))
            report.deleted.append((kind, child_name, str(item["metadata"]["uid"])))
            log.debug("deleted %s/%s (no longer desired)", namespace, label)


def _apply_if_absent(
    api: KubeApi, kind: ManagedKind, namespace: str, child: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Create a child the watches have never seen by server-side apply, unless one exists.

    The watches see only labelled objects, so an unlabelled same-named one (someone else's)
    may exist, and applying over it would take it over. The apply therefore carries a
    ``metadata.resourceVersion`` no object can have (:data:`NO_VERSION`): the API server
    creates an absent object regardless (and the version is not a managed field), while for an
    existing object it is a precondition that fails with 409 Conflict, changing nothing. Only
    then is the object read (by the caller). So the usual new child costs one request, not a
    GET and an apply; later applies (without the version) own exactly what this one owned.
    ``None`` when something of that name exists.
    """
    body = dict(child)
    body["metadata"] = {**child["metadata"], "resourceVersion": NO_VERSION}
    try:
        return api.apply(kind, namespace, str(child["metadata"]["name"]), body)
    except ConflictError:
        return None


def _is_generated_secret(rendered: Mapping[str, Any]) -> bool:
    annotations = (rendered.get("metadata") or {}).get("annotations") or {}
    return rendered.get("kind") == "Secret" and GENERATED_ANNOTATION in annotations


def _create_api_key_secret(
    api: KubeApi,
    kind: ManagedKind,
    namespace: str,
    rendered: Mapping[str, Any],
    model: Mapping[str, Any],
    report: ApplyReport,
) -> dict[str, Any] | None:
    """Create the Secret with a fresh key; if it appeared meanwhile, return the live one."""
    body = prepare_child(rendered, model)
    # The key exists only in this request body; it is never logged, evented or put in status.
    body["data"] = {API_KEY_FILE_KEY: base64.b64encode(secrets.token_urlsafe(32).encode()).decode()}
    child_name = body["metadata"]["name"]
    try:
        created = api.create(kind, namespace, body)
    except ConflictError:
        log.info("Secret/%s already exists; keeping its key", child_name)
        report.reads += 1
        return api.get(kind, namespace, child_name)
    report.written.append(Write(kind.kind, child_name))
    report.applied.append((kind, created))
    log.debug("created %s/Secret/%s with a generated API key", namespace, child_name)
    return created
