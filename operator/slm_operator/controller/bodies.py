"""Pure helpers over watched objects: what the operator keeps of them, and which changes
need a reconcile pass (:mod:`slm_operator.controller.handlers` wires them to the watches).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

import orjson

from slm_operator.contract.kinds import DEPLOYMENT, ManagedKind
from slm_operator.controller.observed import deployment_view
from slm_operator.controller.owner_index import ModelKey, kept_json, resource_version, slim
from slm_operator.diagnosis import diagnose


def only_status_changed(kind: ManagedKind, before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether a child changed only in a way no reconcile can act on: its ``status`` (written by
    its own controller: the HPA's metrics, the PDB's healthy count, the Deployment's rollout)
    and nothing else. Such a change needs a pass only when the model's own status shows it
    (:func:`reported_status_changed`), and then no drift check.

    ``before`` is the indexed (slimmed) version; anything else that differs -- spec, labels,
    annotations, owners -- is a possible drift and gets a complete pass, except the annotations
    the child's own controller writes (:data:`CONTROLLER_ANNOTATIONS`), which no render carries.
    """
    return without_status(before) == without_status(slim(after, kind=kind))


def reported_status_changed(kind: ManagedKind, before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether the part of a child's status the model's own status reports changed: the
    Deployment's replicas and availability, and what its conditions say is wrong."""
    if kind != DEPLOYMENT:
        return False
    return deployment_view(before) != deployment_view(after) or diagnose([], before) != diagnose([], after)


# Written on a child by its own controller, as part of its status in all but name: the
# Deployment controller numbers every rollout in ``deployment.kubernetes.io/revision`` (set
# right after the Deployment is created, so on every new model)
# (https://kubernetes.io/docs/reference/labels-annotations-taints/#deployment-kubernetes-io-revision).
CONTROLLER_ANNOTATIONS = frozenset({"deployment.kubernetes.io/revision"})


def without_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    plain = {key: value for key, value in obj.items() if key != "status"}
    meta = plain.get("metadata")
    if isinstance(meta, Mapping):
        kept = {k: v for k, v in meta.items() if k not in ("resourceVersion", "managedFields")}
        annotations = kept.get("annotations")
        if isinstance(annotations, Mapping) and not CONTROLLER_ANNOTATIONS.isdisjoint(annotations):
            kept["annotations"] = {k: v for k, v in annotations.items() if k not in CONTROLLER_ANNOTATIONS}
        plain["metadata"] = kept
    return plain


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


def key_of(body: Mapping[str, Any]) -> ModelKey:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace")), str(meta.get("name")))


def uid_of(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("uid"))


def generation_of(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 0)


def older(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    left, right = resource_version(a), resource_version(b)
    return left is not None and right is not None and left < right


K = TypeVar("K")


class PackedMap(MutableMapping[K, dict[str, Any]]):
    """A dict of JSON objects kept as ``orjson`` bytes: each read returns a fresh copy.

    For the records the operator keeps of every model and pod for as long as they exist.
    Kept as parsed objects they were a few hundred small dicts and strings each, which the
    allocator's pools cannot hand back while any one of them lives: at 1000 models with 2 pods
    each, tens of MiB that stayed after the burst of watch events that made them. One bytes
    object each is smaller and lets the pools empty; a read costs some microseconds.
    """

    def __init__(self) -> None:
        self._data: dict[K, bytes] = {}

    def __getitem__(self, key: K) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self._data[key])
        return value

    def __setitem__(self, key: K, value: Mapping[str, Any]) -> None:
        self._data[key] = kept_json(value)

    def __delitem__(self, key: K) -> None:
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def slim_model(body: Mapping[str, Any]) -> dict[str, Any]:
    """The model without ``managedFields`` (never read, often large).

    A shallow copy: the parsed watch event it comes from is not changed afterwards.
    """
    plain = dict(body)
    meta = plain.get("metadata")
    if isinstance(meta, Mapping):
        plain["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return plain


def slim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the diagnosis reads of a pod: its identity, containers (names, images, limits),
    scheduling constraints and status; not ``managedFields``, volumes or env."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}

    def containers(key: str) -> list[dict[str, Any]]:
        return [{k: c[k] for k in ("name", "image", "resources") if k in c} for c in spec.get(key) or []]

    return {
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "creationTimestamp", "deletionTimestamp") if k in meta
        },
        "spec": {
            "containers": containers("containers"),
            "initContainers": containers("initContainers"),
            **{k: spec[k] for k in ("nodeSelector", "affinity", "nodeName") if k in spec},
        },
        "status": dict(body.get("status") or {}),
    }
