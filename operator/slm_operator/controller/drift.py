"""Ownership and drift, as pure functions over plain dicts.

The reconciler applies a child only when the live object differs from the rendered one in a
field we manage, so a reconcile with nothing changed writes nothing. Two checks together:

* the rendered object must be a *subset* of the live one (the API server adds defaults such as
  ``protocol: TCP``, ``clusterIP`` or ``terminationMessagePath``; those are not ours and are
  ignored; quantities are compared by value, so ``"0.5"`` equals ``"500m"``);
* the hash of the rendered object, stamped on the child as an annotation, must match: a subset
  check alone cannot see a field we *stopped* rendering (server-side apply removes it only when
  we apply again).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

APPLIED_HASH_ANNOTATION = "slm.dev/applied-hash"

# Lists of maps that the API server merges by a key (strategic-merge/SSA list-map keys); a
# user's extra item in such a list (an injected sidecar, an extra env var) is not drift.
_LIST_MAP_KEYS = ("name", "containerPort", "port", "mountPath", "type")

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([a-zA-Z]*[0-9]*)$")
_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(1000),
    "M": Decimal(1000) ** 2,
    "G": Decimal(1000) ** 3,
    "T": Decimal(1000) ** 4,
    "P": Decimal(1000) ** 5,
    "E": Decimal(1000) ** 6,
    "Ki": Decimal(1024),
    "Mi": Decimal(1024) ** 2,
    "Gi": Decimal(1024) ** 3,
    "Ti": Decimal(1024) ** 4,
    "Pi": Decimal(1024) ** 5,
    "Ei": Decimal(1024) ** 6,
}


def owner_reference(model: Mapping[str, Any]) -> dict[str, Any]:
    """The controller owner reference to the model (set explicitly; never ``kopf.adopt``)."""
    meta = model.get("metadata") or {}
    return {
        "apiVersion": model.get("apiVersion"),
        "kind": model.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether ``obj`` has an owner reference to the object with this uid."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(ref, Mapping) and ref.get("uid") == uid for ref in refs)


def rendered_hash(obj: Mapping[str, Any]) -> str:
    """A stable hash of a rendered object (key order and whitespace do not matter)."""
    encoded = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def prepare_child(rendered: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, Any]:
    """The object we apply: the rendered dict plus our owner reference and the rendered hash."""
    child: dict[str, Any] = json.loads(json.dumps(rendered))
    meta = child.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[APPLIED_HASH_ANNOTATION] = rendered_hash(rendered)
    meta["annotations"] = annotations
    meta["ownerReferences"] = [owner_reference(model)]
    return child


def needs_apply(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether applying ``desired`` would change ``live`` in a field we manage."""
    if live is None:
        return True
    return not is_subset(strip_server_side(desired), live)


def strip_server_side(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Drop what the API server owns (``status``) from a desired object before comparing."""
    return {key: value for key, value in obj.items() if key != "status"}


def is_subset(desired: Any, live: Any, path: tuple[str, ...] = ()) -> bool:
    """Whether every field of ``desired`` is present in ``live`` with an equal value."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(
            key in live and is_subset(value, live[key], (*path, str(key))) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return _list_subset(desired, live, path)
    return _scalar_equal(desired, live, path)


def _list_subset(desired: Sequence[Any], live: Any, path: tuple[str, ...]) -> bool:
    if not isinstance(live, list):
        return False
    key = _list_key(desired)
    if key is not None:
        by_key = {item.get(key): item for item in live if isinstance(item, Mapping)}
        return all(item[key] in by_key and is_subset(item, by_key[item[key]], path) for item in desired)
    if len(desired) != len(live):
        return False
    return all(is_subset(d, v, path) for d, v in zip(desired, live, strict=True))


def _list_key(items: Sequence[Any]) -> str | None:
    """The merge key of a list of maps, if every item carries the same one."""
    if not items or not all(isinstance(item, Mapping) for item in items):
        return None
    for key in _LIST_MAP_KEYS:
        if all(key in item for item in items) and len({str(item[key]) for item in items}) == len(items):
            return key
    return None


def _scalar_equal(desired: Any, live: Any, path: tuple[str, ...]) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    if _is_quantity_path(path) and isinstance(desired, str | int) and isinstance(live, str | int):
        left, right = parse_quantity(str(desired)), parse_quantity(str(live))
        return left is not None and left == right
    return False


def _is_quantity_path(path: tuple[str, ...]) -> bool:
    return any(part in {"requests", "limits", "capacity", "sizeLimit", "storage"} for part in path[-3:])


def parse_quantity(text: str) -> Decimal | None:
    """A Kubernetes quantity as a number (``"500m"`` -> 0.5, ``"1Gi"`` -> 1073741824)."""
    match = _QUANTITY.match(text.strip())
    if not match:
        return None
    number, suffix = match.groups()
    if suffix.startswith("e") and suffix[1:].isdigit():
        multiplier = Decimal(10) ** int(suffix[1:])
    elif suffix in _SUFFIX:
        multiplier = _SUFFIX[suffix]
    else:
        return None
    try:
        return Decimal(number) * multiplier
    except InvalidOperation:
        return None
