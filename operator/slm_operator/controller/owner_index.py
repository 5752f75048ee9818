"""What the operator's watches have seen of every model's children, by model.

The operator watches each managed kind with its ``managed-by`` label selector anyway (to notice
drift); every event of those watches is filed here by model (:meth:`OwnerIndex.observe`), so a
reconcile answers "what exists, and what differs" from memory instead of listing 8 kinds per
model. Entries are slimmed (:func:`slim`: no ``managedFields``, no Secret data) and kept as
JSON bytes (:class:`Packed`: about 7 KiB for a Deployment instead of tens of KiB of nested
dicts), so 9 children of 1000 models fit in a small heap; a reconcile unpacks its model's.

The watches lag behind our own writes by a few milliseconds to a second. :class:`OwnerIndex`
therefore also remembers the answers to our own writes (and the uids we deleted) until the
watch has caught up, so a reconcile right after a write sees what it wrote, and a watch event
that only echoes our own write is recognised (:meth:`OwnerIndex.is_echo`) and does not
schedule another reconcile.

Every method runs on the operator's event loop (the watches deliver their events there); a reconcile
running in a worker thread gets a plain snapshot taken on the loop (:meth:`OwnerIndex.children`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from slm_operator.api.spec import API_GROUP, KIND
from slm_operator.contract.kinds import SECRET, ManagedKind
from slm_operator.contract.names import MODEL_LABEL

ModelKey = tuple[str, str]  # (namespace, model name)
ObjectKey = tuple[ManagedKind, str, str]  # (kind, namespace, name)
Children = dict[ManagedKind, dict[str, dict[str, Any]]]  # kind -> child name -> object


@dataclass(frozen=True)
class Packed:
    """One watched object in the index: its name, version and slimmed body as JSON.

    Not compressed: zlib's fastest level made a live Deployment's 6.8 KiB about 2.4 KiB, but
    cost some 30 us on every event of the object and 20 us on every read -- the largest part
    of the CPU a child's watch event cost -- for about 9 MiB at 1000 models with 9 children.
    """

    name: str
    version: int | None
    data: bytes

    def unpack(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.data)
        return value


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def model_key(body: Mapping[str, Any]) -> ModelKey | None:
    """The model a child belongs to: its SmallLanguageModel owner, else its model label.

    The label catches a labelled object the model does not own (a leftover of a deleted model
    of the same name, a copy someone made), so the reconcile can report it as foreign.
    """
    meta = body.get("metadata") or {}
    namespace = meta.get("namespace")
    if not namespace:
        return None
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{API_GROUP}/"):
            return (str(namespace), str(ref.get("name")))
    label = (meta.get("labels") or {}).get(MODEL_LABEL)
    return (str(namespace), str(label)) if label else None


def slim(body: Mapping[str, Any], *, kind: ManagedKind) -> dict[str, Any]:
    """A smaller view of a watched object: what drift and ownership checks read.

    Dropped: ``managedFields`` (often the largest part, never compared), kubectl's
    last-applied annotation, and a Secret's ``data``/``stringData`` (a key is created once and
    never compared, so the operator does not keep credentials in memory). The top level and
    ``metadata`` are new dicts; deeper values are shared with ``body``, which nobody changes
    after it was parsed from the watch stream (everything here treats objects as read-only).
    """
    plain: dict[str, Any] = {}
    for key, value in body.items():
        if kind == SECRET and key in ("data", "stringData"):
            continue
        if key == "metadata" and isinstance(value, Mapping):
            meta = {k: v for k, v in value.items() if k != "managedFields"}
            annotations = meta.get("annotations")
            if isinstance(annotations, Mapping) and LAST_APPLIED in annotations:
                meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
            plain[key] = meta
        else:
            plain[key] = value
    return plain


def kept_json(value: Any) -> bytes:
    """``value`` as JSON bytes of their own size, for keeping.

    ``orjson.dumps`` returns its write buffer as the bytes object: 4 KiB for anything up to
    that, 64 KiB for a few KiB more (measured with tracemalloc, orjson 3.13), whatever the
    length of the JSON. Fine for a request body; kept for every watched object, it was most of
    the operator's memory at 1000 models. The copy is exactly as long as the JSON.
    """
    return bytes(memoryview(orjson.dumps(value)))


def pack(obj: Mapping[str, Any]) -> Packed:
    meta = obj.get("metadata") or {}
    return Packed(
        name=str(meta.get("name")),
        version=resource_version(obj),
        data=kept_json(obj),
    )


def resource_version(obj: Mapping[str, Any]) -> int | None:
    """``metadata.resourceVersion`` as a number, where the server uses numbers (etcd does)."""
    raw = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(raw))
    except ValueError:
        return None


@dataclass
class OwnerIndex:
    """The children of every model, from the watches, plus our writes not yet watched."""

    # kind -> model -> child name -> packed object; and which model each object is filed under
    # (so an object whose owner or label changes moves, and a deleted one is found).
    _store: dict[ManagedKind, dict[ModelKey, dict[str, Packed]]] = field(default_factory=dict)
    _owners: dict[ObjectKey, ModelKey] = field(default_factory=dict)
    # Our writes the watch has not shown yet, the version each of our last writes returned (to
    # recognise its echo), and the uids we deleted and the watch has not reported gone yet.
    _written: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    _written_by_model: dict[ModelKey, set[ObjectKey]] = field(default_factory=dict)  # a pass reads its own
    _versions: dict[ObjectKey, tuple[ModelKey, int | None]] = field(default_factory=dict)
    _deleted: dict[ObjectKey, str] = field(default_factory=dict)

    def record_write(self, kind: ManagedKind, obj: Mapping[str, Any]) -> None:
        """Remember the server's answer to our create/apply (until the watch shows it)."""
        meta = obj.get("metadata") or {}
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        owner = model_key(obj)
        if owner is None:
            return
        self._deleted.pop(key, None)
        self._versions[key] = (owner, resource_version(obj))
        seen = self._indexed(kind, owner, key[2])
        version = resource_version(obj)
        if seen is None or seen.version is None or version is None or seen.version < version:
            self._drop_written(key)
            self._written[key] = slim(obj, kind=kind)
            self._written_by_model.setdefault(owner, set()).add(key)

    def record_delete(self, kind: ManagedKind, namespace: str, name: str, uid: str) -> None:
        """Remember that we deleted this exact object until the watch reports it gone."""
        key = (kind, namespace, name)
        self._drop_written(key)
        self._versions.pop(key, None)
        self._deleted[key] = uid

    def observe(self, kind: ManagedKind, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event (``None``: from the initial listing): file the object under its model,
        or drop it when deleted, and drop what it supersedes from our own records.

        An object being deleted (``deletionTimestamp``) is dropped at once: it is going.
        """
        meta = body.get("metadata") or {}
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        self._unfile(key)
        owner = model_key(body)
        if event_type != "DELETED" and not meta.get("deletionTimestamp") and owner is not None:
            self._store.setdefault(kind, {}).setdefault(owner, {})[key[2]] = pack(slim(body, kind=kind))
            self._owners[key] = owner
        written = self._written.get(key)
        if written is not None and not _older(body, written):
            self._drop_written(key)
        if event_type == "DELETED":
            self._versions.pop(key, None)
            if key in self._deleted and self._deleted[key] == meta.get("uid"):
                del self._deleted[key]

    def _drop_written(self, key: ObjectKey) -> None:
        obj = self._written.pop(key, None)
        owner = None if obj is None else model_key(obj)
        if owner is None:
            return
        keys = self._written_by_model.get(owner, set())
        keys.discard(key)
        if not keys:
            self._written_by_model.pop(owner, None)

    def _unfile(self, key: ObjectKey) -> None:
        owner = self._owners.pop(key, None)
        if owner is None:
            return
        by_model = self._store.get(key[0], {})
        filed = by_model.get(owner)
        if filed is not None:
            filed.pop(key[2], None)
            if not filed:
                del by_model[owner]

    def is_echo(self, kind: ManagedKind, body: Mapping[str, Any]) -> bool:
        """Whether a watch event shows exactly the version our own last write returned."""
        meta = body.get("metadata") or {}
        mine = self._versions.get((kind, str(meta.get("namespace")), str(meta.get("name"))))
        return mine is not None and mine[1] is not None and mine[1] == resource_version(body)

    def children(self, key: ModelKey, kinds: Iterable[ManagedKind]) -> Children:
        """A snapshot of the model's children of these kinds, newest version of each.

        Plain dicts, unpacked for this call: safe to hand to another thread. (Our own recent
        writes are shared, read-only: a newer version replaces one, nothing changes one in place.)
        """
        namespace, _ = key
        result: Children = {}
        for kind in kinds:
            found: dict[str, dict[str, Any]] = {
                name: packed.unpack() for name, packed in self._store.get(kind, {}).get(key, {}).items()
            }
            for written_key in self._written_by_model.get(key, ()):
                if written_key[0] is not kind:
                    continue
                name, obj = written_key[2], self._written[written_key]
                if name not in found or _older(found[name], obj):
                    found[name] = obj
            for name in list(found):
                if self._deleted.get((kind, namespace, name)) == found[name]["metadata"].get("uid"):
                    del found[name]
            result[kind] = found
        return result

    def forget(self, key: ModelKey) -> None:
        """Drop our records of a deleted model's writes (the watches report the deletions)."""
        for record_key in list(self._written_by_model.get(key, ())):
            self._drop_written(record_key)
        for record_key in [k for k, (owner, _) in self._versions.items() if owner == key]:
            del self._versions[record_key]

    def pending_writes(self) -> int:
        """Our writes the watches have not shown yet (for tests and the benchmark)."""
        return len(self._written)

    def indexed(self, kind: ManagedKind, body: Mapping[str, Any]) -> Packed | None:
        """The version of this object the watches showed last (``None`` if none)."""
        meta = body.get("metadata") or {}
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        owner = self._owners.get(key)
        return None if owner is None else self._indexed(kind, owner, key[2])

    def _indexed(self, kind: ManagedKind, owner: ModelKey, name: str) -> Packed | None:
        return self._store.get(kind, {}).get(owner, {}).get(name)

    def sizes(self) -> dict[str, int]:
        """Entries per kind (for tests and the benchmark)."""
        return {
            kind.kind: sum(len(children) for children in by_model.values())
            for kind, by_model in self._store.items()
        }


def _older(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether ``a`` is an older version of the object than ``b`` (unknown order: not older)."""
    left, right = resource_version(a), resource_version(b)
    return left is not None and right is not None and left < right
