"""The operator at scale, in the small: what it asks of the API server per model, what it leaves
on the model, and how it treats refusals -- the real operator against the API emulator."""

from __future__ import annotations

import asyncio

import pytest
from emulator import ClusterEmulator, DeploymentController
from harness import NAMESPACE, OPERATOR_ARGV, SLM, OperatorHandle, wait_for
from scenario import (
    DEPLOYMENTS,
    NETWORK_POLICIES,
    SERVICES,
    child,
    children,
    condition,
    events,
    model,
    phase,
    reasons,
    reconciles,
    slm,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def create_ready(cluster: ClusterEmulator, name: str = "tiny", **spec: object) -> None:
    await cluster.server_create(SLM, NAMESPACE, model(name, **spec))
    await wait_for(lambda: phase(cluster, name) == "Ready", timeout=20, message=f"{name} Ready")


def model_writes(cluster: ClusterEmulator, since: int, name: str = "tiny") -> list[tuple[str, str]]:
    path = f"/apis/slm.dev/v1alpha1/namespaces/{NAMESPACE}/smalllanguagemodels/{name}"
    return [(m, p) for m, p, _ in cluster.calls(since) if p.startswith(path) and m != "GET"]


async def test_a_new_model_costs_its_children_two_status_patches_and_two_events(
    cluster: ClusterEmulator, deployments: DeploymentController, operator: OperatorHandle
) -> None:
    await asyncio.sleep(1.5)  # kopf's initial listings at start-up are not per model
    mark = cluster.request_count
    await create_ready(cluster)
    await deployments.settle()
    await asyncio.sleep(1.0)  # let every echo of our own writes arrive
    calls = cluster.calls(mark)
    writes = [(m, p) for m, p, _ in calls if m in ("POST", "PATCH", "PUT", "DELETE")]
    applies = [p for m, p in writes if m == "PATCH" and "smalllanguagemodels" not in p and "/status" not in p]
    assert sorted(applies) == [
        f"/api/v1/namespaces/{NAMESPACE}/services/tiny",
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/tiny",
        f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies/tiny",
    ]
    assert [p for m, p in writes if m == "POST" and p.endswith("/secrets")] == [
        f"/api/v1/namespaces/{NAMESPACE}/secrets"
    ]
    # Only the status subresource of the model is written: no finalizer, no kopf annotation.
    assert [m for m, p in model_writes(cluster, mark)] == ["PATCH", "PATCH"]
    assert all(p.endswith("/status") for _, p in model_writes(cluster, mark))
    assert len([p for m, p in writes if p.endswith("/events")]) == 2
    # Reads: no LIST at all, a GET only for children the watches could not know about.
    lists = [(m, p) for m, p, action in calls if action == "list" and "/events" not in p]
    assert lists == []
    gets = [p for m, p, action in calls if action == "fetch" and "smalllanguagemodels" not in p]
    assert sorted(p.rsplit("/", 2)[-2] for p in gets) == ["deployments", "networkpolicies", "services"], (
        gets
    )  # never seen: maybe not ours
    # The model's own writes did not make it reconcile again and again.
    assert reconciles(operator.ctx) <= 3


async def test_a_model_carries_no_finalizer_and_no_kopf_annotation(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    meta = slm(cluster, "tiny")["metadata"]
    assert not meta.get("finalizers")
    assert not [a for a in meta.get("annotations") or {} if a.startswith("slm.dev/")]


async def test_a_spec_larger_than_the_annotation_limit_is_served_and_left_alone(
    cluster: ClusterEmulator, deployments: DeploymentController, operator: OperatorHandle
) -> None:
    # 20 example turns of 15 000 characters: a valid spec of ~300 KB, more than the API server
    # accepts in all annotations together (a copy of the spec in one was refused with 422, and
    # the refused bookkeeping was retried for ever).
    messages = [{"role": "user" if i % 2 else "assistant", "content": "x" * 15_000} for i in range(20)]
    start = cluster.request_count
    await create_ready(cluster, ollama={"modelfile": {"messages": messages}})
    assert child(cluster, "v1/configmaps", "tiny-modelfile") is not None
    await deployments.settle()
    await asyncio.sleep(1.0)
    mark = cluster.request_count
    await asyncio.sleep(2.0)
    assert model_writes(cluster, mark) == []
    # Nothing but the status was ever written on the model: no annotation to outgrow the limit.
    not_status = [p for _, p in model_writes(cluster, start) if not p.endswith("/status")]
    assert not_status == []
    assert slm(cluster, "tiny")["metadata"].get("annotations") in (None, {})


async def test_an_idle_operator_asks_nothing_and_a_resync_of_an_unchanged_model_neither(
    cluster: ClusterEmulator, deployments: DeploymentController, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    await deployments.settle()
    await asyncio.sleep(1.0)
    mark = cluster.request_count
    await asyncio.sleep(2.0)
    assert cluster.calls(mark) == []  # watches only
    count = reconciles(operator.ctx)
    operator.nudge("tiny")  # what the resync loop does for every model
    await wait_for(lambda: reconciles(operator.ctx) > count, timeout=10)
    await asyncio.sleep(0.5)
    assert cluster.calls(mark) == []  # drift answered from the watches: not even a read


async def test_an_empty_value_the_server_drops_is_not_re_applied(
    cluster: ClusterEmulator, deployments: DeploymentController, operator: OperatorHandle
) -> None:
    # The emulator drops "" and [] like a real API server; a stored Deployment without the
    # rendered empty values must not look drifted on every resync.
    await create_ready(cluster)
    await deployments.settle()
    await asyncio.sleep(1.0)
    mark = cluster.request_count
    for _ in range(3):
        count = reconciles(operator.ctx)
        operator.nudge("tiny")
        await wait_for(lambda: reconciles(operator.ctx) > count, timeout=10)  # noqa: B023
    await asyncio.sleep(0.5)
    assert cluster.writes(mark) == []
    assert reasons(cluster, "tiny").count("Applied") == 0


async def test_a_refused_write_is_reported_once_and_retried_slowly(
    cluster: ClusterEmulator, deployments: DeploymentController, operator: OperatorHandle
) -> None:
    fault = cluster.inject("PATCH", r"/namespaces/ns1/networkpolicies/tiny$", status=403, times=1000)
    await cluster.server_create(SLM, NAMESPACE, model("tiny"))
    await wait_for(lambda: condition(cluster, "tiny", "Degraded").get("status") == "True", timeout=20)
    degraded = condition(cluster, "tiny", "Degraded")
    assert degraded["reason"] == "Forbidden"
    assert "NetworkPolicy/tiny: HTTP 403: injected HTTP 403" in degraded["message"]
    assert phase(cluster, "tiny") == "Degraded"
    assert child(cluster, DEPLOYMENTS, "tiny") is not None  # the rest is applied
    # The Deployment's rollout is an event on a child, worth a pass (the status follows it);
    # after that nothing happens, so nothing is retried: the next try is minutes away.
    await deployments.settle()
    await asyncio.sleep(0.5)
    hits = fault.hits
    assert hits <= 2
    await asyncio.sleep(3.0)
    assert fault.hits == hits
    warnings = [e for e in events(cluster, "tiny") if e.get("type") == "Warning"]
    assert [e["reason"] for e in warnings] == ["Forbidden"]
    assert "injected HTTP 403" in warnings[0]["message"]

    # Someone fixes the permission; the next event on the model (here: a nudge) heals it.
    fault.times = fault.hits
    operator.nudge("tiny")
    await wait_for(lambda: condition(cluster, "tiny", "Degraded").get("status") == "False", timeout=20)
    await wait_for(lambda: child(cluster, NETWORK_POLICIES, "tiny") is not None, timeout=10)
    assert [e["reason"] for e in events(cluster, "tiny") if e.get("type") == "Warning"] == ["Forbidden"]


async def test_a_deleted_model_is_forgotten_at_once(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    assert operator.ctx.tracks(NAMESPACE, "tiny")
    await cluster.server_delete(SLM, NAMESPACE, "tiny")
    await wait_for(lambda: not operator.ctx.tracks(NAMESPACE, "tiny"), timeout=10, message="forgotten")
    assert not operator.ctx.queue.pending((NAMESPACE, "tiny"))
    await wait_for(lambda: children(cluster) == {}, timeout=10, message="children collected")


async def test_deleting_a_model_while_the_operator_is_down_completes(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    await operator.stop()
    await cluster.server_delete(SLM, NAMESPACE, "tiny")
    await wait_for(lambda: not slm(cluster, "tiny"), timeout=5, message="model gone without the operator")
    await wait_for(lambda: children(cluster) == {}, timeout=5, message="children collected")


async def test_a_finalizer_and_annotations_left_by_an_older_version_are_removed_on_resume(
    cluster: ClusterEmulator, deployments: DeploymentController
) -> None:
    old = model("legacy")
    old["metadata"]["finalizers"] = ["slm.dev/finalizer"]
    old["metadata"]["annotations"] = {
        "slm.dev/last-handled-configuration": '{"spec": {}}',
        "slm.dev/drift": "{}",
        "team": "a",
    }
    await cluster.server_create(SLM, NAMESPACE, old)
    handle = OperatorHandle(argv=list(OPERATOR_ARGV))
    await handle.start()
    try:
        await wait_for(lambda: phase(cluster, "legacy") == "Ready", timeout=20, message="Ready")
        await wait_for(lambda: not slm(cluster, "legacy")["metadata"].get("finalizers"), timeout=10)
        await wait_for(
            lambda: slm(cluster, "legacy")["metadata"].get("annotations") == {"team": "a"}, timeout=10
        )
        await cluster.server_delete(SLM, NAMESPACE, "legacy")
        await wait_for(lambda: not slm(cluster, "legacy"), timeout=10, message="deleted")
    finally:
        await handle.stop()
        await deployments.settle()


async def test_a_spec_edited_during_a_reconcile_is_reconciled_too(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    # Stall the next Deployment write, and edit the spec while the worker waits on it.
    cluster.inject("PATCH", r"/namespaces/ns1/deployments/tiny$", delay=1.0, times=1)
    await cluster.server_patch(SLM, NAMESPACE, "tiny", {"spec": {"hardware": {"tier": "edge"}}})
    await asyncio.sleep(0.3)
    await cluster.server_patch(SLM, NAMESPACE, "tiny", {"spec": {"replicas": 2}})
    await wait_for(
        lambda: (child(cluster, DEPLOYMENTS, "tiny") or {}).get("spec", {}).get("replicas") == 2,
        timeout=20,
        message="the second edit applied",
    )
    await wait_for(lambda: slm(cluster, "tiny")["status"].get("observedGeneration") == 3, timeout=20)


async def test_events_during_a_reconcile_make_one_more_pass_not_one_each(
    cluster: ClusterEmulator, deployments: DeploymentController, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    await deployments.settle()
    await asyncio.sleep(1.0)
    count = reconciles(operator.ctx)
    # A drifted Deployment starts a pass whose apply stalls; ten more child events arrive
    # meanwhile (labels someone adds to the Service: not drift, but events all the same).
    cluster.inject("PATCH", r"/namespaces/ns1/deployments/tiny$", delay=1.0, times=1)
    live = child(cluster, DEPLOYMENTS, "tiny")
    assert live is not None
    drifted = [
        dict(c, image="registry.example/other:1") for c in live["spec"]["template"]["spec"]["containers"]
    ]
    await cluster.server_patch(
        DEPLOYMENTS, NAMESPACE, "tiny", {"spec": {"template": {"spec": {"containers": drifted}}}}
    )
    await asyncio.sleep(0.3)
    for n in range(10):
        await cluster.server_patch("v1/services", NAMESPACE, "tiny", {"metadata": {"labels": {"x": str(n)}}})
    await deployments.settle()
    await asyncio.sleep(2.0)
    # The drift pass, one pass for everything seen meanwhile, and one for the Deployment
    # controller's report on the repaired Deployment -- not one per event.
    assert 2 <= reconciles(operator.ctx) - count <= 3


async def test_a_namespace_being_deleted_is_neither_repaired_nor_reported(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    # While a namespace terminates, the namespace controller deletes the children first; the
    # API server refuses to create anything there (403, cause NamespaceTerminating).
    await create_ready(cluster)
    ready = condition(cluster, "tiny", "Ready")
    terminating = "unable to create new content in namespace ns1 because it is being terminated"
    fault = cluster.inject(
        "PATCH",
        r"/namespaces/ns1/services/tiny$",
        status=403,
        times=100,
        message=terminating,
        cause="NamespaceTerminating",
    )
    await cluster.server_delete(SERVICES, NAMESPACE, "tiny")
    await wait_for(lambda: fault.hits >= 1, timeout=10, message="the repair is tried")
    await asyncio.sleep(2.0)
    assert fault.hits == 1  # not retried
    assert condition(cluster, "tiny", "Degraded")["status"] == "False"
    assert condition(cluster, "tiny", "Ready") == ready
    assert [e for e in events(cluster, "tiny") if e.get("type") == "Warning"] == []
