"""The owner index: children by model from the watches, merged with our own recent writes."""

from __future__ import annotations

import sys
import tracemalloc
from typing import Any

import orjson

from slm_operator.contract.kinds import DEPLOYMENT, SECRET, SERVICE
from slm_operator.controller.bodies import PackedMap
from slm_operator.controller.owner_index import OwnerIndex, kept_json, model_key, pack, slim


def child(
    name: str,
    *,
    kind: str = "Service",
    owner: str | None = "m",
    uid: str = "c-1",
    rv: int = 1,
    label: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": str(rv)}
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "slm.dev/v1alpha1", "kind": "SmallLanguageModel", "name": owner, "uid": "u-1"}
        ]
    if label is not None:
        meta["labels"] = {"slm.dev/model": label}
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, **extra}


def test_model_key_is_the_owner_else_the_model_label() -> None:
    assert model_key(child("x")) == ("ns", "m")
    assert model_key(child("x", owner=None, label="other")) == ("ns", "other")
    assert model_key(child("x", owner=None)) is None
    foreign_owner = child("x", owner=None, label="m")
    foreign_owner["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}
    ]
    assert model_key(foreign_owner) == ("ns", "m")


def test_the_index_keeps_json_of_its_own_size_with_name_and_version() -> None:
    big = {"ports": [{"port": 8000 + n, "name": f"port-{n}", "protocol": "TCP"} for n in range(50)]}
    body = slim(child("m", rv=42, spec=big), kind=SERVICE)
    packed = pack(body)
    assert (packed.name, packed.version) == ("m", 42)
    assert packed.unpack() == body
    assert packed.data == orjson.dumps(body)
    assert sys.getsizeof(packed.data) < len(packed.data) + 64  # not orjson's whole write buffer


def test_slim_drops_managed_fields_and_secret_data_only() -> None:
    secret = child("m-api-key", kind="Secret", data={"api-key": "c2VjcmV0"}, type="Opaque")
    secret["metadata"]["managedFields"] = [{"manager": "x"}]
    secret["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "slm.dev/applied-hash": "abc",
    }
    small = slim(secret, kind=SECRET)
    assert "data" not in small
    assert "managedFields" not in small["metadata"]
    assert small["metadata"]["annotations"] == {"slm.dev/applied-hash": "abc"}
    assert small["type"] == "Opaque"
    assert secret["data"] == {"api-key": "c2VjcmV0"}  # the watched body is left alone
    service = child("m", spec={"ports": [{"port": 80}]})
    assert slim(service, kind=SERVICE) == service


def test_children_come_from_the_index_by_model_and_kind() -> None:
    index = OwnerIndex()
    index.observe(SERVICE, None, child("m"))
    index.observe(SERVICE, "ADDED", child("other", owner="n"))
    index.observe(DEPLOYMENT, None, child("m", kind="Deployment"))
    found = index.children(("ns", "m"), [SERVICE, DEPLOYMENT, SECRET])
    assert set(found[SERVICE]) == {"m"}
    assert found[SERVICE]["m"] == child("m")  # unpacked: the watched object, slimmed
    assert set(found[DEPLOYMENT]) == {"m"}
    assert found[SECRET] == {}
    del found[SERVICE]["m"]  # a snapshot (safe to hand to a thread), not the index itself
    assert index.children(("ns", "m"), [SERVICE])[SERVICE].keys() == {"m"}
    assert index.sizes() == {"Service": 2, "Deployment": 1}


def test_a_deleted_or_terminating_child_leaves_the_index() -> None:
    index = OwnerIndex()
    index.observe(SERVICE, None, child("a"))
    index.observe(SERVICE, None, child("b"))
    index.observe(SERVICE, "DELETED", child("a"))
    going = child("b", rv=2)
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    index.observe(SERVICE, "MODIFIED", going)
    assert index.children(("ns", "m"), [SERVICE])[SERVICE] == {}
    assert index.sizes() == {"Service": 0}


def test_a_child_whose_owner_changes_moves_to_its_new_model() -> None:
    index = OwnerIndex()
    index.observe(SERVICE, None, child("x"))
    moved = child("x", owner=None, label="n", rv=2)
    index.observe(SERVICE, "MODIFIED", moved)
    assert index.children(("ns", "m"), [SERVICE])[SERVICE] == {}
    assert index.children(("ns", "n"), [SERVICE])[SERVICE]["x"] == moved
    unlabelled = child("x", owner=None, rv=3)  # no longer any model's: not kept
    index.observe(SERVICE, "MODIFIED", unlabelled)
    assert index.children(("ns", "n"), [SERVICE])[SERVICE] == {}


def test_our_write_is_seen_before_the_watch_shows_it_and_then_dropped() -> None:
    index = OwnerIndex()
    index.observe(SERVICE, None, child("m", rv=5, spec={"v": 1}))
    index.record_write(SERVICE, child("m", rv=9, spec={"v": 2}))
    assert index.children(("ns", "m"), [SERVICE])[SERVICE]["m"]["spec"] == {"v": 2}
    assert index.pending_writes() == 1
    # A late event from before our write changes nothing ...
    index.observe(SERVICE, "MODIFIED", child("m", rv=5, spec={"v": 1}))
    assert index.children(("ns", "m"), [SERVICE])[SERVICE]["m"]["spec"] == {"v": 2}
    # ... the echo of our write is recognised and retires our record.
    echo = child("m", rv=9, spec={"v": 2})
    assert index.is_echo(SERVICE, echo)
    index.observe(SERVICE, "MODIFIED", echo)
    assert index.pending_writes() == 0
    assert index.children(("ns", "m"), [SERVICE])[SERVICE]["m"]["spec"] == {"v": 2}
    # Somebody else's later change is not an echo.
    assert not index.is_echo(SERVICE, child("m", rv=10, spec={"v": 3}))


def test_a_write_the_watch_already_showed_is_not_kept_twice() -> None:
    index = OwnerIndex()
    index.observe(SERVICE, None, child("m", rv=9))
    index.record_write(SERVICE, child("m", rv=9))
    assert index.pending_writes() == 0
    assert index.is_echo(SERVICE, child("m", rv=9))


def test_a_child_we_deleted_is_gone_before_the_watch_says_so() -> None:
    hpa = child("m", uid="c-7")
    index = OwnerIndex()
    index.observe(SERVICE, None, hpa)
    index.record_delete(SERVICE, "ns", "m", "c-7")
    assert index.children(("ns", "m"), [SERVICE])[SERVICE] == {}
    index.observe(SERVICE, "DELETED", hpa)
    # A new object of the same name (a new uid) is visible again.
    index.observe(SERVICE, "ADDED", child("m", uid="c-8", rv=12))
    assert set(index.children(("ns", "m"), [SERVICE])[SERVICE]) == {"m"}


def test_forgetting_a_model_drops_our_records_of_its_children() -> None:
    index = OwnerIndex()
    index.record_write(SERVICE, child("m", rv=3))
    index.record_write(SERVICE, child("n", owner="n", rv=4))
    index.forget(("ns", "m"))
    assert index.pending_writes() == 1
    assert not index.is_echo(SERVICE, child("m", rv=3))
    assert index.is_echo(SERVICE, child("n", owner="n", rv=4))


def test_a_models_pending_writes_are_its_own_and_leave_no_trace() -> None:
    index = OwnerIndex()
    index.record_write(SERVICE, child("m", rv=3, spec={"v": 1}))
    index.record_write(DEPLOYMENT, child("m", kind="Deployment", rv=4))
    index.record_write(SERVICE, child("n", owner="n", rv=5))
    index.record_write(SERVICE, child("m", rv=6, spec={"v": 2}))  # a newer write replaces ours
    mine = index.children(("ns", "m"), [SERVICE, DEPLOYMENT])
    assert {kind.kind: sorted(found) for kind, found in mine.items()} == {
        "Service": ["m"],
        "Deployment": ["m"],
    }
    assert mine[SERVICE]["m"]["spec"] == {"v": 2}
    assert set(index.children(("ns", "n"), [SERVICE])[SERVICE]) == {"n"}
    index.observe(SERVICE, "MODIFIED", child("m", rv=6, spec={"v": 2}))
    index.record_delete(DEPLOYMENT, "ns", "m", "c-1")
    index.forget(("ns", "n"))
    assert index.pending_writes() == 0
    assert index._written_by_model == {}


def test_kept_json_holds_only_its_own_length() -> None:
    # orjson hands out its whole write buffer (4 KiB or more) as the bytes it returns; what
    # the operator keeps per watched object must cost what the JSON is long.
    value = {"metadata": {"name": "m", "labels": {"slm.dev/model": "m" * 400}}}
    tracemalloc.start()
    try:
        kept = [kept_json(value) for _ in range(200)]
        records: PackedMap[int] = PackedMap()
        for n in range(200):
            records[n] = value
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept[0] == orjson.dumps(value)
    assert records[0] == value
    assert held < 400 * 1024  # 400 objects of ~450 bytes; 1.6 MiB at orjson's 4 KiB each
