"""The real operator (kopf, the kubernetes client over HTTP, ``slmctl run``'s entry) against the
API emulator: each scenario of the operator's contract is its own test with bounded waits."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from emulator import APPLY_PATCH, ClusterEmulator, DeploymentController
from harness import NAMESPACE, SLM, OperatorHandle, declare_resources, wait_for
from scenario import (
    DEPLOYMENTS,
    HPAS,
    NETWORK_POLICIES,
    PDBS,
    PROMETHEUS_RULES,
    SCALED_OBJECTS,
    SECRETS,
    SERVICE_MONITORS,
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
    status,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def containers(cluster: ClusterEmulator, name: str) -> object:
    return (
        ((child(cluster, DEPLOYMENTS, name) or {}).get("spec") or {})
        .get("template", {})
        .get("spec", {})
        .get("containers")
    )


async def create_ready(cluster: ClusterEmulator, name: str = "tiny", **spec: object) -> None:
    await cluster.server_create(SLM, NAMESPACE, model(name, **spec))
    await wait_for(lambda: phase(cluster, name) == "Ready", timeout=20, message=f"{name} Ready")


async def patch_spec(cluster: ClusterEmulator, name: str, spec: dict[str, object]) -> None:
    await cluster.server_patch(SLM, NAMESPACE, name, {"spec": spec})


async def test_create_makes_every_child_and_is_ready_once_the_deployment_is_available(
    cluster: ClusterEmulator, deployments: DeploymentController, operator: OperatorHandle
) -> None:
    deployments.available = False
    await cluster.server_create(SLM, NAMESPACE, model("tiny"))
    await wait_for(lambda: phase(cluster, "tiny") == "Deploying", timeout=20, message="Deploying")
    assert condition(cluster, "tiny", "Ready")["status"] == "False"
    assert condition(cluster, "tiny", "Progressing")["status"] == "True"

    uid = slm(cluster, "tiny")["metadata"]["uid"]
    found = children(cluster)
    assert set(found) == {
        ("Deployment", "tiny"),
        ("Service", "tiny"),
        ("Secret", "tiny-api-key"),
        ("NetworkPolicy", "tiny"),
    }
    for obj in found.values():
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "slm.dev/v1alpha1",
                "kind": "SmallLanguageModel",
                "name": "tiny",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "slm-operator"
        assert obj["metadata"]["labels"]["slm.dev/model"] == "tiny"

    # The Deployment controller reports the rollout complete: only now is the model Ready.
    deployments.available = True
    live = child(cluster, DEPLOYMENTS, "tiny")
    assert live is not None
    await cluster.server_patch(
        DEPLOYMENTS,
        NAMESPACE,
        "tiny",
        {
            "status": {
                "observedGeneration": live["metadata"]["generation"],
                "replicas": 1,
                "updatedReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "conditions": [{"type": "Available", "status": "True"}],
            }
        },
        subresource="status",
    )
    await wait_for(lambda: phase(cluster, "tiny") == "Ready", timeout=20, message="Ready")
    current = status(cluster, "tiny")
    assert current["observedGeneration"] == 1
    assert current["readyReplicas"] == 1
    assert current["selector"] == "slm.dev/model=tiny"
    assert current["endpoint"] == "http://tiny.ns1.svc.cluster.local:8000/v1"
    assert current["apiKeySecret"] == "tiny-api-key"
    assert current["plan"]["runtime"] == "ollama"
    assert {c["type"] for c in current["conditions"]} == {
        "SpecValid",
        "Fits",
        "Progressing",
        "Ready",
        "Degraded",
    }
    assert slm(cluster, "tiny")["spec"] == model("tiny")["spec"]  # the user's spec is never written
    await wait_for(lambda: "Ready" in reasons(cluster, "tiny"), timeout=10)
    # Two Events for a new model: the plan with the writes that realise it, then Ready.
    assert reasons(cluster, "tiny") == ["Planned", "Ready"]
    planned = events(cluster, "tiny")[0]["message"]
    assert planned.startswith("ollama serving")
    assert "applied Secret/tiny-api-key, Deployment/tiny" in planned


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param({"hardware": {"tier": "cpu"}}, {"hardware": {"tier": "edge"}}, id="tier"),
        pytest.param(
            {"model": {"catalog": "qwen3-0.6b"}, "hardware": {"tier": "gpu-small"}, "quantization": "none"},
            {"model": {"catalog": "qwen3-0.6b"}, "hardware": {"tier": "gpu-small"}, "quantization": "gptq"},
            id="gpu-quantization",
        ),
    ],
)
async def test_update_rerenders_the_deployment(
    cluster: ClusterEmulator, operator: OperatorHandle, before: dict[str, object], after: dict[str, object]
) -> None:
    await create_ready(cluster, "m", **before)
    old = child(cluster, DEPLOYMENTS, "m")
    assert old is not None
    await patch_spec(cluster, "m", after)
    await wait_for(
        lambda: status(cluster, "m").get("observedGeneration") == 2 and phase(cluster, "m") == "Ready",
        timeout=20,
        message="generation 2 Ready",
    )
    new = child(cluster, DEPLOYMENTS, "m")
    assert new is not None
    assert new["metadata"]["generation"] > old["metadata"]["generation"]
    assert new["spec"]["template"] != old["spec"]["template"]
    tier = after["hardware"]["tier"]  # type: ignore[index]
    assert status(cluster, "m")["plan"]["tier"] == tier
    if tier == "gpu-small":
        assert status(cluster, "m")["plan"]["quantization"] == "gptq"
        limits = new["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert str(limits["nvidia.com/gpu"]) == "1"


async def test_invalid_update_changes_no_child_and_says_why_once(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    before = children(cluster)
    await patch_spec(cluster, "tiny", {"model": {"catalog": "smollm2-135m", "contextLength": 100}})
    await wait_for(lambda: condition(cluster, "tiny", "SpecValid").get("status") == "False", timeout=20)
    message = condition(cluster, "tiny", "SpecValid")["message"]
    assert "spec.model.contextLength" in message
    assert status(cluster, "tiny")["observedGeneration"] == 2
    # Still serving the last good configuration.
    assert phase(cluster, "tiny") == "Ready"
    assert condition(cluster, "tiny", "Ready")["status"] == "True"
    await wait_for(lambda: "InvalidSpec" in reasons(cluster, "tiny"), timeout=10)
    # A nudge (as a child event would cause) re-runs the reconcile: still no write, no new Event.
    count = reconciles(operator.ctx)
    operator.nudge("tiny")
    await wait_for(lambda: reconciles(operator.ctx) > count, timeout=10)
    await asyncio.sleep(1.0)
    assert children(cluster) == before
    warnings = [e for e in events(cluster, "tiny") if e.get("type") == "Warning"]
    assert [e["reason"] for e in warnings] == ["InvalidSpec"]

    # Fixing the spec is picked up at once (the permanent error was only for generation 2).
    await patch_spec(cluster, "tiny", {"model": {"catalog": "smollm2-135m", "contextLength": 4096}})
    await wait_for(lambda: condition(cluster, "tiny", "SpecValid").get("status") == "True", timeout=20)
    await wait_for(lambda: status(cluster, "tiny").get("plan", {}).get("contextLength") == 4096, timeout=20)
    assert status(cluster, "tiny")["observedGeneration"] == 3


async def test_spec_that_fits_nowhere_is_reported_with_numbers(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await cluster.server_create(SLM, NAMESPACE, model("big", hardware={"tier": "edge"}, maxConcurrency=1024))
    await wait_for(lambda: condition(cluster, "big", "Fits").get("status") == "False", timeout=20)
    assert condition(cluster, "big", "Fits")["reason"] == "DoesNotFit"
    assert "GiB" in condition(cluster, "big", "Fits")["message"]
    assert phase(cluster, "big") == "Failed"
    assert children(cluster) == {}
    await wait_for(lambda: "DoesNotFit" in reasons(cluster, "big"), timeout=10)


async def test_child_deleted_out_of_band_is_recreated(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    old_uid = child(cluster, SERVICES, "tiny")["metadata"]["uid"]  # type: ignore[index]
    await cluster.server_delete(SERVICES, NAMESPACE, "tiny")
    await wait_for(lambda: child(cluster, SERVICES, "tiny") is not None, timeout=15, message="Service back")
    assert child(cluster, SERVICES, "tiny")["metadata"]["uid"] != old_uid  # type: ignore[index]


async def test_child_edited_out_of_band_is_restored(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    good = child(cluster, SERVICES, "tiny")
    assert good is not None
    await cluster.server_patch(
        SERVICES, NAMESPACE, "tiny", {"spec": {"ports": [{"name": "http", "port": 1234}]}}
    )
    await wait_for(
        lambda: (
            (child(cluster, SERVICES, "tiny") or {}).get("spec", {}).get("ports") == good["spec"]["ports"]
        ),
        timeout=15,
        message="Service ports restored",
    )
    deployment = child(cluster, DEPLOYMENTS, "tiny")
    assert deployment is not None
    good_containers = deployment["spec"]["template"]["spec"]["containers"]
    edited = [dict(good_containers[0], image="registry.example/evil:1"), *good_containers[1:]]
    await cluster.server_patch(
        DEPLOYMENTS, NAMESPACE, "tiny", {"spec": {"template": {"spec": {"containers": edited}}}}
    )
    await wait_for(
        lambda: containers(cluster, "tiny") == good_containers,
        timeout=15,
        message="Deployment containers restored",
    )


async def test_autoscaling_toggles_the_hpa_and_hands_over_replicas(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    assert child(cluster, HPAS, "tiny") is None
    await patch_spec(cluster, "tiny", {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}})
    await wait_for(lambda: child(cluster, HPAS, "tiny") is not None, timeout=15, message="HPA created")
    await wait_for(
        lambda: child(cluster, PDBS, "tiny") is not None, timeout=15, message="PDB for minReplicas 2"
    )
    applies = [
        r
        for r in cluster.writes()
        if r.url.path.endswith("/deployments/tiny") and r.headers.get("Content-Type") == APPLY_PATCH
    ]
    assert "replicas" in applies[0].data["spec"]  # before autoscaling: the operator's field
    assert "replicas" not in applies[-1].data["spec"]  # with an HPA: not rendered, not applied
    # The HPA scales the Deployment through its scale subresource; the operator leaves it alone.
    await cluster.server_patch(DEPLOYMENTS, NAMESPACE, "tiny", {"spec": {"replicas": 3}}, subresource="scale")
    count = reconciles(operator.ctx)
    operator.nudge("tiny")
    await wait_for(lambda: reconciles(operator.ctx) > count, timeout=10)
    assert child(cluster, DEPLOYMENTS, "tiny")["spec"]["replicas"] == 3  # type: ignore[index]

    await patch_spec(cluster, "tiny", {"autoscaling": {"enabled": False}, "replicas": 1})
    await wait_for(lambda: child(cluster, HPAS, "tiny") is None, timeout=15, message="HPA removed")
    await wait_for(lambda: child(cluster, PDBS, "tiny") is None, timeout=15, message="PDB removed")
    await wait_for(
        lambda: child(cluster, DEPLOYMENTS, "tiny")["spec"]["replicas"] == 1,  # type: ignore[index]
        timeout=15,
        message="replicas back to the spec",
    )


async def test_scale_subresource_of_the_model_is_followed(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    await cluster.server_patch(SLM, NAMESPACE, "tiny", {"spec": {"replicas": 2}}, subresource="scale")
    await wait_for(
        lambda: (child(cluster, DEPLOYMENTS, "tiny") or {}).get("spec", {}).get("replicas") == 2,
        timeout=15,
        message="Deployment follows spec.replicas",
    )
    await wait_for(lambda: child(cluster, PDBS, "tiny") is not None, timeout=15, message="PDB for 2 replicas")


async def test_server_errors_and_timeouts_converge(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    cluster.inject("POST", r"/namespaces/ns1/secrets$", status=500, times=2)
    cluster.inject("PATCH", r"/namespaces/ns1/deployments/tiny$", status=503, times=2)
    cluster.inject("PATCH", r"/namespaces/ns1/networkpolicies/tiny$", status=409, times=1)
    # Longer than the operator's request timeout (2 s): the client gives up and retries.
    cluster.inject("PATCH", r"/namespaces/ns1/services/tiny$", delay=3.0, times=1)
    await cluster.server_create(SLM, NAMESPACE, model("tiny"))
    await wait_for(lambda: phase(cluster, "tiny") == "Ready", timeout=45, message="Ready despite faults")
    assert all(fault.hits == fault.times for fault in cluster.faults)
    assert set(children(cluster)) == {
        ("Deployment", "tiny"),
        ("Service", "tiny"),
        ("Secret", "tiny-api-key"),
        ("NetworkPolicy", "tiny"),
    }
    failed = {
        sample.labels["kind"]
        for metric in operator.ctx.metrics.apply_errors.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.value > 0
    }
    assert {"Secret", "Deployment", "NetworkPolicy"} <= failed


async def test_restart_mid_reconcile_converges_without_duplicates(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    # Stall the Service apply so the restart lands in the middle of the first reconcile.
    cluster.inject("PATCH", r"/namespaces/ns1/services/tiny$", delay=1.5, times=1)
    await cluster.server_create(SLM, NAMESPACE, model("tiny"))
    await wait_for(lambda: child(cluster, SECRETS, "tiny-api-key") is not None, timeout=15)
    # The Service apply is stalled, so the NetworkPolicy after it is not written yet.
    assert child(cluster, NETWORK_POLICIES, "tiny") is None
    await operator.restart()
    await wait_for(lambda: phase(cluster, "tiny") == "Ready", timeout=30, message="Ready after restart")
    secret_history = cluster.objects[SECRETS, NAMESPACE, "tiny-api-key"].history
    assert len(secret_history) == 1  # created once, never rewritten
    assert len(children(cluster)) == 4
    creates = [
        r for r in cluster.writes() if r.url.path.endswith("/secrets") and r.method.value.upper() == "POST"
    ]
    assert len(creates) == 1


async def test_foreign_same_named_service_is_reported_and_left_alone(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    foreign = {"metadata": {"name": "tiny", "labels": {"team": "web"}}, "spec": {"ports": [{"port": 80}]}}
    await cluster.server_create(SERVICES, NAMESPACE, foreign)
    await cluster.server_create(SLM, NAMESPACE, model("tiny"))
    await wait_for(lambda: phase(cluster, "tiny") == "Degraded", timeout=20, message="Degraded")
    degraded = condition(cluster, "tiny", "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == "ForeignObject"
    assert "Service/tiny" in degraded["message"]
    assert len(cluster.objects[SERVICES, NAMESPACE, "tiny"].history) == 1  # untouched
    assert child(cluster, DEPLOYMENTS, "tiny") is not None  # the rest is still applied
    assert child(cluster, NETWORK_POLICIES, "tiny") is not None
    await wait_for(lambda: "ForeignObject" in reasons(cluster, "tiny"), timeout=10)


async def test_api_key_is_created_once_and_never_shown(
    cluster: ClusterEmulator, operator: OperatorHandle, operator_logs: pytest.LogCaptureFixture
) -> None:
    await create_ready(cluster)
    secret = child(cluster, SECRETS, "tiny-api-key")
    assert secret is not None
    key = base64.b64decode(secret["data"]["api-key"]).decode()
    assert len(key) >= 32
    await patch_spec(cluster, "tiny", {"replicas": 2})
    await wait_for(lambda: status(cluster, "tiny").get("observedGeneration") == 2, timeout=20)
    await operator.restart()
    await wait_for(lambda: reconciles(operator.ctx) >= 1, timeout=20)
    assert len(cluster.objects[SECRETS, NAMESPACE, "tiny-api-key"].history) == 1
    assert child(cluster, SECRETS, "tiny-api-key")["data"] == secret["data"]  # type: ignore[index]
    assert key not in operator_logs.text
    assert secret["data"]["api-key"] not in operator_logs.text
    assert key not in json.dumps(status(cluster, "tiny"))
    assert key not in json.dumps(events(cluster, "tiny"))
    assert status(cluster, "tiny")["apiKeySecret"] == "tiny-api-key"


async def test_deleting_the_model_removes_its_children(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    assert len(children(cluster)) == 4
    await cluster.server_delete(SLM, NAMESPACE, "tiny")
    await wait_for(lambda: not slm(cluster, "tiny"), timeout=20, message="model gone")
    await wait_for(lambda: children(cluster) == {}, timeout=10, message="children collected")


async def test_second_reconcile_with_nothing_changed_writes_nothing(
    cluster: ClusterEmulator, deployments: DeploymentController, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    await deployments.settle()
    await asyncio.sleep(1.5)  # let the last child events and status patches land

    # A forced reconcile through the drift timer ...
    mark = cluster.request_count
    count = reconciles(operator.ctx)
    operator.nudge("tiny")
    await wait_for(lambda: reconciles(operator.ctx) > count, timeout=10)
    await asyncio.sleep(0.5)
    assert [(r.method, r.url.path) for r in cluster.writes(mark)] == []

    # ... and a fresh operator's resume reconcile.
    mark = cluster.request_count
    await operator.restart()
    await wait_for(lambda: reconciles(operator.ctx) >= 1, timeout=20)
    await asyncio.sleep(1.0)
    assert [(r.method, r.url.path) for r in cluster.writes(mark)] == []


@pytest.fixture
def with_monitoring(cluster: ClusterEmulator) -> ClusterEmulator:
    """The Prometheus Operator's CRDs are installed (declared before the operator starts)."""
    declare_resources(cluster, monitoring=True)
    return cluster


async def test_monitoring_objects_follow_discovery_and_the_spec(
    with_monitoring: ClusterEmulator, operator: OperatorHandle
) -> None:
    cluster = with_monitoring
    await create_ready(cluster)
    assert child(cluster, SERVICE_MONITORS, "tiny") is not None
    assert child(cluster, PROMETHEUS_RULES, "tiny") is not None
    await patch_spec(
        cluster, "tiny", {"monitoring": {"serviceMonitor": "disabled", "prometheusRule": "disabled"}}
    )
    await wait_for(lambda: child(cluster, SERVICE_MONITORS, "tiny") is None, timeout=15, message="pruned")
    await wait_for(lambda: child(cluster, PROMETHEUS_RULES, "tiny") is None, timeout=15, message="pruned")
    assert child(cluster, DEPLOYMENTS, "tiny") is not None


async def test_keda_engine_needs_keda_and_swaps_the_hpa_for_a_scaled_object(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    # Without KEDA's API: refused naming the field, and what serves keeps serving.
    await create_ready(cluster)
    await patch_spec(cluster, "tiny", {"autoscaling": {"enabled": True, "engine": "keda"}})
    await wait_for(
        lambda: condition(cluster, "tiny", "SpecValid").get("status") == "False",
        timeout=20,
        message="refused",
    )
    assert "spec.autoscaling.engine" in condition(cluster, "tiny", "SpecValid")["message"]
    assert child(cluster, DEPLOYMENTS, "tiny") is not None


@pytest.fixture
def with_keda(cluster: ClusterEmulator) -> ClusterEmulator:
    """KEDA's CRDs are installed (declared before the operator starts)."""
    declare_resources(cluster, keda=True)
    return cluster


async def test_keda_engine_renders_a_scaled_object_once_keda_is_served(
    with_keda: ClusterEmulator, operator: OperatorHandle
) -> None:
    cluster = with_keda
    await create_ready(cluster, autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 3})
    assert child(cluster, HPAS, "tiny") is not None
    assert child(cluster, SCALED_OBJECTS, "tiny") is None
    await patch_spec(cluster, "tiny", {"autoscaling": {"engine": "keda"}})
    await wait_for(lambda: child(cluster, SCALED_OBJECTS, "tiny") is not None, timeout=20, message="created")
    await wait_for(lambda: child(cluster, HPAS, "tiny") is None, timeout=20, message="HPA pruned")
    scaled = child(cluster, SCALED_OBJECTS, "tiny") or {}
    assert scaled["spec"]["scaleTargetRef"]["name"] == "tiny"
    assert scaled["metadata"]["ownerReferences"][0]["kind"] == "SmallLanguageModel"
    await patch_spec(cluster, "tiny", {"autoscaling": {"engine": "hpa"}})
    await wait_for(lambda: child(cluster, HPAS, "tiny") is not None, timeout=20, message="HPA back")
    await wait_for(lambda: child(cluster, SCALED_OBJECTS, "tiny") is None, timeout=20, message="pruned")


async def test_transient_errors_on_a_serving_model_do_not_flap_its_status(
    cluster: ClusterEmulator, operator: OperatorHandle
) -> None:
    await create_ready(cluster)
    ready_since = condition(cluster, "tiny", "Ready")["lastTransitionTime"]
    good = containers(cluster, "tiny")
    fault = cluster.inject("PATCH", r"/namespaces/ns1/deployments/tiny$", status=500, times=2)
    drifted = [dict(good[0], image="registry.example/other:1"), *good[1:]]  # type: ignore[index]
    await cluster.server_patch(
        DEPLOYMENTS, NAMESPACE, "tiny", {"spec": {"template": {"spec": {"containers": drifted}}}}
    )
    await wait_for(lambda: fault.hits == 2, timeout=20, message="both failures served")
    assert phase(cluster, "tiny") == "Ready"
    assert condition(cluster, "tiny", "Ready")["lastTransitionTime"] == ready_since
    await wait_for(lambda: containers(cluster, "tiny") == good, timeout=20, message="drift repaired")
