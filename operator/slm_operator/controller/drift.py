"""Ownership and drift, as pure functions over plain dicts.

The reconciler applies a child only when the live object differs from the rendered one in a
field we manage, so a reconcile with nothing changed writes nothing. Two checks together:

* the rendered object must be a *subset* of the live one (the API server adds defaults such as
  ``protocol: TCP``, ``clusterIP`` or ``terminationMessagePath``; those are not ours and are
  ignored), compared the way the API server stores it: a value Go's ``omitempty`` drops
  (``""``, ``0``, ``false``, an empty list or map) equals an absent field, and quantities are
  compared as quantities (``"0.5"`` equals ``"500m"``, ``"100u"`` equals ``"0.0001"``);
* the hash of the rendered object, stamped on the child as an annotation, must match: a subset
  check alone cannot see a field we *stopped* rendering (server-side apply removes it only when
  we apply again).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

APPLIED_HASH_ANNOTATION = "slm.dev/applied-hash"

# Lists of maps that the API server merges by a key (strategic-merge/SSA list-map keys); a
# user's extra item in such a list (an injected sidecar, an extra env var) is not drift.
_LIST_MAP_KEYS = ("name", "containerPort", "port", "mountPath", "type")


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
    """A stable hash of a rendered object (key order and whitespace do not matter).

    The hash of ``json.dumps`` with sorted keys, as children already carry it. Every pass
    renders its children again, and that encoding costs tens of microseconds per child, so
    the hashes are remembered by a digest of the object's ``orjson`` encoding (a few
    microseconds): equal encodings mean equal values, hence equal ``json.dumps`` output.
    """
    try:
        key = hashlib.blake2b(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
    except TypeError:  # what orjson does not encode (a non-string key, a huge int): no memo
        return _json_hash(obj)
    known = _HASHES.get(key)
    if known is None:
        if len(_HASHES) >= _HASHES_KEPT:
            _HASHES.clear()  # a crude bound: the next passes fill it again
        known = _HASHES[key] = _json_hash(obj)
    return known


def _json_hash(obj: Mapping[str, Any]) -> str:
    encoded = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


# Hashes by encoding digest; enough for a pass and the next of every child of 1000 models
# (about 150 bytes an entry). Shared by the worker threads: dict reads and writes are atomic.
_HASHES: dict[bytes, str] = {}
_HASHES_KEPT = 10_000


def prepare_child(rendered: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, Any]:
    """The object we apply: the rendered dict plus our owner reference and the rendered hash.

    A new top level and ``metadata``; everything deeper is shared with ``rendered`` (a fresh
    render of this pass that nothing changes afterwards), so no deep copy is paid for a
    comparison that, in a steady state, writes nothing.
    """
    child = dict(rendered)
    meta = dict(child.get("metadata") or {})
    annotations = {**(meta.get("annotations") or {}), APPLIED_HASH_ANNOTATION: rendered_hash(rendered)}
    meta["annotations"] = annotations
    meta["ownerReferences"] = [owner_reference(model)]
    child["metadata"] = meta
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
    if _is_mapping(desired):
        if not _is_mapping(live):
            return False
        for key, value in desired.items():
            if key not in live:
                if not is_omitted_empty(value):
                    return False
                continue
            found = live[key]
            kind = type(value)
            if kind in _PLAIN_SCALARS and kind is type(found) and value == found:
                continue  # the common case, decided without a call
            if not is_subset(value, found, (*path, str(key))):
                return False
        return True
    if isinstance(desired, list):
        return _list_subset(desired, live, path)
    return _scalar_equal(desired, live, path)


# Scalars whose equality (with equal types) is equality as the API server stores them; a
# quantity written differently (``"0.5"``/``"500m"``) is unequal as a string and goes on to
# :func:`_scalar_equal`.
_PLAIN_SCALARS = frozenset({str, int, bool, float})


def _is_mapping(value: Any) -> bool:
    # Parsed JSON holds plain dicts: their type check is several times cheaper than the ABC's.
    return type(value) is dict or isinstance(value, Mapping)


def is_omitted_empty(value: Any) -> bool:
    """Whether the API server drops ``value`` when it stores the object.

    Go's ``encoding/json`` leaves out an ``omitempty`` field holding its zero value: ``""``,
    ``0``, ``false``, an empty list or map (https://pkg.go.dev/encoding/json#Marshal); most
    optional fields of the Kubernetes API types are ``omitempty``. A pointer field (``emptyDir:
    {}``) keeps an empty map, so this is only a license to treat such values as absent.
    """
    if isinstance(value, bool):
        return value is False
    if isinstance(value, int | float):
        return value == 0
    return value is None or value == "" or (isinstance(value, list | Mapping) and not value)


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
    """A Kubernetes quantity as a number (``"500m"`` -> 0.5, ``"1Gi"`` -> 1073741824), or None.

    The API's quantity grammar (k8s.io/apimachinery/pkg/api/resource, quantity.go): a signed
    decimal number, then a binary suffix (``Ki`` .. ``Ei``), a decimal one (``n``, ``u``, ``m``,
    none, ``k``, ``M`` .. ``E``) or a decimal exponent (``e3``, ``E-2``). Parsed here rather than
    by the ``kubernetes`` client's ``parse_quantity``, which the operator process does not load;
    the tests hold the two to the same answers.
    """
    found = _QUANTITY.fullmatch(text.strip())
    if found is None:
        return None
    number, suffix = Decimal(found["number"]), found["suffix"] or ""
    if suffix[1:].lstrip("+-").isdigit():  # a decimal exponent: e3, E-2
        return number.scaleb(int(suffix[1:]))
    return number * _QUANTITY_FACTORS[suffix]


_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_QUANTITY_FACTORS: dict[str, Decimal] = {
    **{prefix: Decimal(1000) ** power for prefix, power in zip("kMGTPE", range(1, 7), strict=True)},
    **{f"{prefix}i": Decimal(1024) ** power for prefix, power in zip("KMGTPE", range(1, 7), strict=True)},
    "": Decimal(1),
    "m": Decimal("0.001"),
    "u": Decimal("0.000001"),
    "n": Decimal("0.000000001"),
}
