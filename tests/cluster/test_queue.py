"""The operator's work queue on a real control plane: what it asks of the API server per model
(read from the API server's audit log), what it leaves on the model, how it treats refusals, and
how edits and events that arrive during a reconcile are folded into one more pass."""

from __future__ import annotations

import time

import pytest
from faultproxy import FaultProxy
from kube import Kube, wait_for
from sim_scenario import children, condition, events, model, phase, slm, wait_phase
from simcluster import OperatorProcess, SimCluster, settle

pytestmark = pytest.mark.timeout(240)


def test_a_new_model_costs_its_children_two_status_patches_and_two_events(
    sim: SimCluster, admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    mark = sim.audit.mark()
    admin.create(model("tiny", namespace))
    wait_phase(admin, namespace, "tiny", "Ready")
    settle(3.0)  # let every echo of our own writes (and the Deployment controller's) arrive
    calls = [e for e in sim.audit.events(mark, user=operator.install.user) if e.namespace == namespace]
    applies = sorted(
        (e.resource, e.name) for e in calls if e.verb == "patch" and e.resource != "smalllanguagemodels"
    )
    assert applies == [("deployments", "tiny"), ("networkpolicies", "tiny"), ("services", "tiny")], calls
    assert [(e.resource, e.name) for e in calls if e.verb == "create" and e.resource == "secrets"] == [
        ("secrets", "tiny-api-key")
    ]
    # Only the status subresource of the model is written: no finalizer, no annotation. Two
    # status patches (Deploying, Ready) at the least, four at the most: the model's status
    # mirrors the Deployment's replica counts, and the Deployment controller reports a new
    # replica in up to three writes of its own (created, ready, available) before the pod is
    # available -- each a change, so a patch. How many it makes depends on how fast kwok marks
    # the pod ready; the operator adds none of its own.
    model_writes = [e for e in calls if e.resource == "smalllanguagemodels" and e.is_write]
    assert {(e.verb, e.subresource) for e in model_writes} == {("patch", "status")}
    assert 2 <= len(model_writes) <= 4, model_writes
    assert len([e for e in calls if e.resource == "events" and e.verb == "create"]) == 2
    # Reads: none. What exists comes from the watches; a child they never showed is created by
    # an apply that only creates (it would fail if a same-named object existed), not read first.
    assert [e for e in calls if e.verb in {"list", "get"}] == [], calls
    assert all(e.code == 201 for e in calls if e.verb == "patch" and e.resource != "smalllanguagemodels")
    other = [e for e in calls if e.verb not in {"patch", "create", "get", "watch"}]
    assert other == []


def test_a_finalizer_and_annotations_left_by_an_older_version_are_removed_on_resume(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    operator.stop()
    old = model("legacy", namespace)
    old["metadata"]["finalizers"] = ["slm.dev/finalizer"]
    old["metadata"]["annotations"] = {
        "slm.dev/last-handled-configuration": '{"spec": {}}',
        "slm.dev/drift": "{}",
        "team": "a",
    }
    admin.create(old)
    operator.process = None
    operator.start()
    wait_phase(admin, namespace, "legacy", "Ready")
    wait_for(lambda: not slm(admin, namespace, "legacy")["metadata"].get("finalizers"), timeout=30)
    wait_for(
        lambda: slm(admin, namespace, "legacy")["metadata"].get("annotations") == {"team": "a"},
        timeout=30,
        message="only the foreign annotation left",
    )
    admin.delete("SmallLanguageModel", namespace, "legacy")
    wait_for(lambda: not slm(admin, namespace, "legacy"), timeout=30, message="deleted")


@pytest.mark.parametrize(("code", "reason"), [(403, "Forbidden"), (422, "Invalid")])
@pytest.mark.resync(600)  # the resync loop re-tries too; here only the backoff is watched
def test_a_refused_write_is_reported_once_and_retried_slowly(
    admin: Kube, proxied: tuple[FaultProxy, OperatorProcess], namespace: str, code: int, reason: str
) -> None:
    proxy, _operator = proxied
    fault = proxy.inject("PATCH", rf"/namespaces/{namespace}/networkpolicies/tiny$", status=code, times=1000)
    admin.create(model("tiny", namespace))
    wait_for(
        lambda: condition(admin, namespace, "tiny", "Degraded").get("status") == "True",
        timeout=60,
        message="Degraded",
    )
    degraded = condition(admin, namespace, "tiny", "Degraded")
    assert degraded["reason"] == reason
    assert f"NetworkPolicy/tiny: HTTP {code}: injected by the test proxy" in degraded["message"]
    assert phase(admin, namespace, "tiny") == "Degraded"
    assert admin.get("Deployment", namespace, "tiny") is not None  # the rest is applied
    # The Deployment's rollout makes events on a child, each worth a pass (a real Deployment
    # controller reports a rollout in a few status writes); after that nothing happens, so
    # nothing is retried: the next try is minutes away.
    wait_for(
        lambda: ((admin.get("Deployment", namespace, "tiny") or {}).get("status") or {}).get(
            "availableReplicas"
        ),
        timeout=60,
        message="the Deployment available",
    )
    settle(3.0)
    hits = fault.hits
    assert hits <= 4, hits
    settle(10.0)
    assert fault.hits == hits
    warnings = [e for e in events(admin, namespace, "tiny") if e.get("type") == "Warning"]
    assert [e["reason"] for e in warnings] == [reason]
    assert "injected by the test proxy" in warnings[0]["message"]

    # Someone fixes the permission; the next event on the model (here: an edit of its spec)
    # heals it.
    fault.times = fault.hits
    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"replicas": 2}})
    wait_for(
        lambda: condition(admin, namespace, "tiny", "Degraded").get("status") == "False",
        timeout=60,
        message="healed",
    )
    wait_for(lambda: admin.get("NetworkPolicy", namespace, "tiny") is not None, timeout=30)
    warnings = [e for e in events(admin, namespace, "tiny") if e.get("type") == "Warning"]
    assert [e["reason"] for e in warnings] == [reason]


def test_a_spec_edited_during_a_reconcile_is_reconciled_too(
    admin: Kube, proxied: tuple[FaultProxy, OperatorProcess], namespace: str
) -> None:
    proxy, _operator = proxied
    admin.create(model("tiny", namespace))
    wait_phase(admin, namespace, "tiny", "Ready", timeout=90)
    generation = slm(admin, namespace, "tiny")["metadata"]["generation"]
    # Stall the next Deployment write, and edit the spec while the worker waits on it.
    stall = proxy.inject("PATCH", rf"/namespaces/{namespace}/deployments/tiny$", delay=2.0, times=1)
    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"replicas": 2}})
    wait_for(lambda: stall.hits == 1, timeout=30, message="the Deployment apply is in flight")
    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"replicas": 3}})
    wait_for(
        lambda: ((admin.get("Deployment", namespace, "tiny") or {}).get("spec") or {}).get("replicas") == 3,
        timeout=60,
        message="the second edit applied",
    )
    wait_for(
        lambda: slm(admin, namespace, "tiny").get("status", {}).get("observedGeneration") == generation + 2,
        timeout=60,
        message="the second edit observed",
    )


@pytest.mark.resync(600)  # only the passes the events cause are counted, none of the resync loop
def test_events_during_a_reconcile_make_one_more_pass_not_one_each(
    admin: Kube, proxied: tuple[FaultProxy, OperatorProcess], namespace: str
) -> None:
    proxy, operator = proxied
    admin.create(model("tiny", namespace))
    wait_phase(admin, namespace, "tiny", "Ready", timeout=90)
    # The pass counter is the operator's, for all models: wait until the namespaces of earlier
    # tests are gone, so none of their models is reconciled meanwhile.
    wait_for(
        lambda: (
            not [n for n in admin.list("Namespace") if (n.get("status") or {}).get("phase") == "Terminating"]
        ),
        timeout=120,
        message="no namespace terminating",
    )
    settle(3.0)
    count = operator.metric("slm_operator_reconcile_total")
    # A drifted Service starts a pass whose apply stalls; ten more child events arrive meanwhile
    # (labels someone adds to the Service: not drift, but events all the same). The drift is on
    # the Service, not the Deployment: the Deployment controller answers a changed pod template
    # with a rollout and a stream of status writes, each an event of its own, which would drown
    # what is counted here.
    stall = proxy.inject("PATCH", rf"/namespaces/{namespace}/services/tiny$", delay=2.0, times=1)
    live = admin.get("Service", namespace, "tiny")
    assert live is not None
    ports = [dict(p, targetPort=9999) for p in live["spec"]["ports"]]
    admin.patch("Service", namespace, "tiny", {"spec": {"ports": ports}})
    wait_for(lambda: stall.hits == 1, timeout=30, message="the repair is in flight")
    for n in range(10):
        admin.patch("Service", namespace, "tiny", {"metadata": {"labels": {"x": str(n)}}})
    wait_for(
        lambda: (admin.get("Service", namespace, "tiny") or {})["spec"]["ports"] == live["spec"]["ports"],
        timeout=30,
        message="drift repaired",
    )
    settle(3.0)
    # The drift pass and one pass for everything seen meanwhile -- not one per event.
    assert operator.metric("slm_operator_reconcile_total") - count == 2


def test_a_namespace_being_deleted_is_neither_repaired_nor_reported(
    sim: SimCluster, admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # While a namespace terminates, the namespace controller deletes the children first; the
    # API server refuses to create anything there (403, cause NamespaceTerminating).
    admin.create(model("tiny", namespace))
    wait_phase(admin, namespace, "tiny", "Ready")
    mark = sim.audit.mark()
    errors = operator.metric("slm_operator_apply_errors_total")
    admin.delete("Namespace", None, namespace)
    seen: list[dict[str, str]] = []
    deadline = time.monotonic() + 120
    while admin.get("Namespace", None, namespace) is not None:
        assert time.monotonic() < deadline, "namespace not deleted"
        degraded = condition(admin, namespace, "tiny", "Degraded")
        if degraded:
            seen.append(degraded)
        time.sleep(0.2)
    assert all(c["status"] == "False" for c in seen), seen
    calls = [e for e in sim.audit.events(mark, user=operator.install.user) if e.namespace == namespace]
    # Each child the namespace controller deletes is an event, worth a pass that stops at the
    # first refusal; nothing is retried on a timer (four children: at most four refusals).
    refused = [(e.verb, e.resource, e.name) for e in calls if e.code == 403]
    assert len(refused) <= 4, refused
    assert [e for e in calls if e.resource == "events" and e.verb == "create" and e.code < 300] == []
    assert operator.metric("slm_operator_apply_errors_total") == errors  # nothing counted as failed


def test_a_deleted_model_is_forgotten_at_once(
    sim: SimCluster, admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    admin.create(model("tiny", namespace))
    wait_phase(admin, namespace, "tiny", "Ready")
    settle(2.0)
    mark = sim.audit.mark()
    admin.delete("SmallLanguageModel", namespace, "tiny")
    wait_for(lambda: not slm(admin, namespace, "tiny"), timeout=30, message="model gone")
    wait_for(lambda: children(admin, namespace) == {}, timeout=60, message="children collected")
    settle(10.0)  # more than a resync period (8 s): a remembered model would be reconciled
    calls = [e for e in sim.audit.events(mark, user=operator.install.user) if e.namespace == namespace]
    # Neither its status nor its children are written again, nor read: it is not repaired.
    assert [e for e in calls if e.verb != "watch"] == [], calls
