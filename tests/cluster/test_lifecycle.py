"""The operator's contract on a real control plane: create, update, drift, scale, deletion.

Each scenario has its own namespace; the operator runs cluster-wide as the chart's
ServiceAccount (see conftest.py).
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from kube import Kube, wait_for
from sim_scenario import (
    children,
    condition,
    create_ready,
    events,
    model,
    phase,
    pods_of,
    reasons,
    slm,
    status,
    wait_phase,
)
from simcluster import OperatorProcess, SimCluster

pytestmark = pytest.mark.timeout(180)

RESYNC = 8.0  # the operator's --resync-seconds in conftest.py


def test_create_makes_every_child_owned_by_the_model_and_reports_ready(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    current = create_ready(admin, namespace)
    uid = slm(admin, namespace, "tiny")["metadata"]["uid"]
    found = children(admin, namespace, "tiny")
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
    assert current["observedGeneration"] == 1
    assert current["readyReplicas"] == 1
    assert current["selector"] == "slm.dev/model=tiny"
    assert current["endpoint"] == f"http://tiny.{namespace}.svc.cluster.local:8000/v1"
    assert current["plan"]["runtime"] == "ollama"
    assert {c["type"] for c in current["conditions"]} == {
        "SpecValid",
        "Fits",
        "Progressing",
        "Ready",
        "Degraded",
    }
    # The user's spec is never written (the API server added the CRD's defaults, nothing else).
    written = slm(admin, namespace, "tiny")["spec"]
    user = model("tiny", namespace)["spec"]
    assert {key: written[key] for key in user} == user
    wait_for(lambda: {"Planned", "Ready"} <= set(reasons(admin, namespace, "tiny")), timeout=20)
    # The model's pod runs (on a kwok node) with the restricted pod security settings.
    pod = pods_of(admin, namespace, "tiny")[0]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # The API server kept every security field the operator rendered.
    deployment = found[("Deployment", "tiny")]
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param({"hardware": {"tier": "edge"}}, {"hardware": {"tier": "cpu"}}, id="tier"),
        pytest.param(
            {"model": {"catalog": "qwen3-0.6b"}, "hardware": {"tier": "gpu-small"}, "quantization": "none"},
            {"model": {"catalog": "qwen3-0.6b"}, "hardware": {"tier": "nvidia-t4"}, "quantization": "gptq"},
            id="gpu-quantization",
        ),
    ],
)
def test_update_rerenders_and_rolls_out(
    admin: Kube,
    operator: OperatorProcess,
    namespace: str,
    before: dict[str, object],
    after: dict[str, object],
) -> None:
    create_ready(admin, namespace, "m", **before)
    old = admin.get("Deployment", namespace, "m")
    assert old is not None
    admin.patch("SmallLanguageModel", namespace, "m", {"spec": after})
    wait_for(
        lambda: (
            status(admin, namespace, "m").get("observedGeneration") == 2
            and phase(admin, namespace, "m") == "Ready"
        ),
        timeout=60,
        message="generation 2 Ready",
    )
    new = admin.get("Deployment", namespace, "m")
    assert new is not None
    assert new["metadata"]["generation"] > old["metadata"]["generation"]
    assert new["spec"]["template"] != old["spec"]["template"]
    tier = after["hardware"]["tier"]  # type: ignore[index]
    assert status(admin, namespace, "m")["plan"]["tier"] == tier
    if tier == "nvidia-t4":
        assert status(admin, namespace, "m")["plan"]["quantization"] == "gptq"
        nodes = {
            p["spec"].get("nodeName")
            for p in pods_of(admin, namespace, "m")
            if not p["metadata"].get("deletionTimestamp")
        }
        wait_for(
            lambda: (
                {
                    p["spec"].get("nodeName")
                    for p in pods_of(admin, namespace, "m")
                    if not p["metadata"].get("deletionTimestamp")
                }
                == {"gpu-t4"}
            ),
            timeout=60,
            message=f"rolled onto the T4 node (now {nodes})",
        )


def test_invalid_update_keeps_serving_and_says_why_once(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    create_ready(admin, namespace)
    before = {k: v["metadata"]["resourceVersion"] for k, v in children(admin, namespace, "tiny").items()}
    # A context shorter than the CRD's minimum is refused by the API server itself ...
    with pytest.raises(Exception, match=r"spec\.model\.contextLength"):
        admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"model": {"contextLength": 100}}})
    # ... while one the operator must judge (over the model's maximum) reaches the operator.
    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"model": {"contextLength": 1048576}}})
    wait_for(lambda: condition(admin, namespace, "tiny", "SpecValid").get("status") == "False", timeout=30)
    assert "spec.model.contextLength" in condition(admin, namespace, "tiny", "SpecValid")["message"]
    assert status(admin, namespace, "tiny")["observedGeneration"] == 2
    assert phase(admin, namespace, "tiny") == "Ready"  # still serving the last good configuration
    wait_for(lambda: "InvalidSpec" in reasons(admin, namespace, "tiny"), timeout=20)
    time.sleep(RESYNC + 2)  # at least one resync passes: no write, no second Event
    after = {k: v["metadata"]["resourceVersion"] for k, v in children(admin, namespace, "tiny").items()}
    assert after == before
    warnings = [e for e in events(admin, namespace, "tiny") if e.get("type") == "Warning"]
    assert [e["reason"] for e in warnings] == ["InvalidSpec"]
    assert all(e.get("count", 1) == 1 for e in warnings)

    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"model": {"contextLength": 4096}}})
    wait_for(lambda: condition(admin, namespace, "tiny", "SpecValid").get("status") == "True", timeout=30)
    wait_for(
        lambda: status(admin, namespace, "tiny").get("plan", {}).get("contextLength") == 4096, timeout=30
    )
    assert status(admin, namespace, "tiny")["observedGeneration"] == 3


def test_spec_that_fits_nowhere_is_refused_with_numbers_and_creates_nothing(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    admin.create(model("big", namespace, maxConcurrency=1024))
    wait_for(lambda: condition(admin, namespace, "big", "Fits").get("status") == "False", timeout=30)
    fits = condition(admin, namespace, "big", "Fits")
    assert fits["reason"] == "DoesNotFit"
    assert "GiB" in fits["message"]
    assert phase(admin, namespace, "big") == "Failed"
    assert children(admin, namespace) == {}
    wait_for(lambda: "DoesNotFit" in reasons(admin, namespace, "big"), timeout=20)


def test_deleted_service_is_recreated(admin: Kube, operator: OperatorProcess, namespace: str) -> None:
    create_ready(admin, namespace)
    uid = admin.get("Service", namespace, "tiny")["metadata"]["uid"]  # type: ignore[index]
    admin.delete("Service", namespace, "tiny")
    wait_for(
        lambda: (
            (admin.get("Service", namespace, "tiny") or {}).get("metadata", {}).get("uid") not in (None, uid)
        ),
        timeout=30,
        message="Service recreated",
    )


def test_edited_deployment_field_is_restored(admin: Kube, operator: OperatorProcess, namespace: str) -> None:
    create_ready(admin, namespace)
    deployment = admin.get("Deployment", namespace, "tiny")
    assert deployment is not None
    good = deployment["spec"]["template"]["spec"]["containers"]
    drifted = [dict(good[0], image="registry.example/other:1"), *good[1:]]
    admin.patch("Deployment", namespace, "tiny", {"spec": {"template": {"spec": {"containers": drifted}}}})
    wait_for(
        lambda: (
            (admin.get("Deployment", namespace, "tiny") or {})["spec"]["template"]["spec"]["containers"]
            == good
        ),
        timeout=30,
        message="drift repaired",
    )


def test_kubectl_scale_without_autoscaling_is_reverted(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    create_ready(admin, namespace)
    admin.patch("Deployment", namespace, "tiny", {"spec": {"replicas": 3}}, sub="scale")
    wait_for(
        lambda: (admin.get("Deployment", namespace, "tiny") or {})["spec"]["replicas"] == 1,
        timeout=30,
        message="replicas back to the model's 1",
    )


def test_with_an_hpa_the_operator_leaves_replicas_alone(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    autoscaling = {"enabled": True, "minReplicas": 1, "maxReplicas": 4}
    create_ready(admin, namespace, "tiny", autoscaling=autoscaling)
    assert admin.get("HorizontalPodAutoscaler", namespace, "tiny") is not None
    # What the HPA controller does when it scales: write the Deployment's scale subresource.
    admin.patch("Deployment", namespace, "tiny", {"spec": {"replicas": 3}}, sub="scale")
    wait_for(lambda: len(pods_of(admin, namespace, "tiny")) == 3, timeout=60, message="3 pods")
    time.sleep(RESYNC + 2)
    assert (admin.get("Deployment", namespace, "tiny") or {})["spec"]["replicas"] == 3
    # Turning autoscaling off removes the HPA and hands replicas back to the model.
    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"autoscaling": {"enabled": False}}})
    wait_for(lambda: admin.get("HorizontalPodAutoscaler", namespace, "tiny") is None, timeout=30)
    wait_for(lambda: (admin.get("Deployment", namespace, "tiny") or {})["spec"]["replicas"] == 1, timeout=30)


def test_an_autoscaled_deployment_starts_at_the_minimum_and_keeps_what_runs(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # A new autoscaled model starts at minReplicas, not at one replica the HPA raises later.
    create_ready(admin, namespace, "tiny", autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 4})
    assert (admin.get("Deployment", namespace, "tiny") or {})["spec"]["replicas"] == 2
    wait_for(lambda: status(admin, namespace, "tiny").get("readyReplicas") == 2, timeout=60)
    # A model serving 3 replicas that turns autoscaling on keeps them: applied without the
    # field, server-side apply would drop it and the Deployment would fall back to one.
    create_ready(admin, namespace, "busy", replicas=3)
    wait_for(lambda: len(pods_of(admin, namespace, "busy")) == 3, timeout=60, message="3 pods")
    autoscaling = {"enabled": True, "minReplicas": 1, "maxReplicas": 4}
    admin.patch("SmallLanguageModel", namespace, "busy", {"spec": {"autoscaling": autoscaling}})
    wait_for(lambda: admin.get("HorizontalPodAutoscaler", namespace, "busy") is not None, timeout=30)
    time.sleep(2.0)  # the pass that created the HPA applied the Deployment too
    assert (admin.get("Deployment", namespace, "busy") or {})["spec"]["replicas"] == 3
    assert len(pods_of(admin, namespace, "busy")) == 3


def test_scale_subresource_of_the_model_is_followed(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    create_ready(admin, namespace)
    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"replicas": 2}}, sub="scale")
    wait_for(lambda: (admin.get("Deployment", namespace, "tiny") or {})["spec"]["replicas"] == 2, timeout=30)
    wait_for(
        lambda: admin.get("PodDisruptionBudget", namespace, "tiny") is not None, timeout=30, message="PDB"
    )
    wait_for(lambda: status(admin, namespace, "tiny").get("readyReplicas") == 2, timeout=60)


def test_foreign_same_named_service_is_reported_and_left_alone(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "tiny", "namespace": namespace, "labels": {"team": "web"}},
        "spec": {"ports": [{"port": 80}]},
    }
    created = admin.create(foreign)
    admin.create(model("tiny", namespace))
    wait_phase(admin, namespace, "tiny", "Degraded")
    degraded = condition(admin, namespace, "tiny", "Degraded")
    assert degraded["reason"] == "ForeignObject"
    assert "Service/tiny" in degraded["message"]
    service = admin.get("Service", namespace, "tiny")
    assert service is not None
    assert service["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]  # untouched
    assert admin.get("Deployment", namespace, "tiny") is not None  # the rest is applied
    wait_for(lambda: "ForeignObject" in reasons(admin, namespace, "tiny"), timeout=20)


def test_api_key_is_created_once_and_never_shown(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    create_ready(admin, namespace)
    secret = admin.get("Secret", namespace, "tiny-api-key")
    assert secret is not None
    key = base64.b64decode(secret["data"]["api-key"]).decode()
    assert len(key) >= 32
    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"replicas": 2}})
    wait_for(lambda: status(admin, namespace, "tiny").get("observedGeneration") == 2, timeout=30)
    operator.restart()
    wait_for(lambda: operator.metric("slm_operator_reconcile_total") >= 1, timeout=30)
    again = admin.get("Secret", namespace, "tiny-api-key")
    assert again is not None
    assert again["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]
    logs = operator.logs()
    assert key not in logs
    assert secret["data"]["api-key"] not in logs
    assert key not in json.dumps(status(admin, namespace, "tiny"))
    assert key not in json.dumps(events(admin, namespace, "tiny"))


def test_deleting_the_model_garbage_collects_its_children(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    create_ready(admin, namespace)
    assert len(children(admin, namespace, "tiny")) == 4
    admin.delete("SmallLanguageModel", namespace, "tiny")
    wait_for(lambda: not slm(admin, namespace, "tiny"), timeout=30, message="model gone")
    wait_for(lambda: children(admin, namespace) == {}, timeout=60, message="children collected by the GC")
    wait_for(lambda: pods_of(admin, namespace, "tiny") == [], timeout=60, message="pods gone")


def test_deleting_a_model_while_the_operator_is_stopped_completes(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    create_ready(admin, namespace)
    assert not slm(admin, namespace, "tiny")["metadata"].get("finalizers")
    operator.stop()
    admin.delete("SmallLanguageModel", namespace, "tiny")
    wait_for(lambda: not slm(admin, namespace, "tiny"), timeout=30, message="model gone without the operator")
    wait_for(lambda: children(admin, namespace) == {}, timeout=60, message="children collected")


def test_deleting_the_namespace_completes(sim: SimCluster, admin: Kube, operator: OperatorProcess) -> None:
    admin.ensure_namespace("doomed")
    create_ready(admin, "doomed")
    create_ready(admin, "doomed", "second", replicas=2)
    operator.stop()  # even with the operator gone (e.g. after `helm uninstall`)
    admin.delete("Namespace", None, "doomed")
    wait_for(lambda: admin.get("Namespace", None, "doomed") is None, timeout=120, message="namespace deleted")
