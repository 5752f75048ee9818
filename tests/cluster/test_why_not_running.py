"""Why a model is not running, reported from what the scheduler and the (kwok) kubelet write:
a tier no node matches is Unschedulable with the scheduler's own message; a pod that cannot
pull its image or crash-loops (made to fail by the stages in e2e/sim/stages/) is reported with
the kubelet's reason; fixing the cause clears the condition. One Event per transition."""

from __future__ import annotations

import pytest
from kube import Kube, wait_for
from sim_scenario import condition, events, model, wait_phase
from simcluster import OperatorProcess

pytestmark = pytest.mark.timeout(180)

# Images the simulated cluster's kwok stages fail on demand (e2e/sim/stages/pod-failures.yaml).
IMAGE_PULL_FAILS = "registry.invalid/sim/image-pull-fails:1"
OOM_CRASH_LOOP = "registry.invalid/sim/oom-crash-loop:1"


def ready_reason(admin: Kube, namespace: str, name: str) -> str:
    return str(condition(admin, namespace, name, "Ready").get("reason", ""))


def warnings_with(admin: Kube, namespace: str, name: str, reason: str) -> list[dict[str, object]]:
    return [e for e in events(admin, namespace, name) if e.get("reason") == reason]


def test_a_tier_no_node_matches_is_unschedulable_with_the_schedulers_message(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    # Sixteen GPUs in one pod: the plan fits on paper, but no node of the cluster has 16.
    spec = {"model": {"catalog": "qwen3-0.6b"}, "hardware": {"tier": "gpu-large", "gpus": 16}}
    admin.create(model("huge", namespace, **spec))
    wait_for(
        lambda: ready_reason(admin, namespace, "huge") == "Unschedulable", timeout=60, message="Unschedulable"
    )
    message = condition(admin, namespace, "huge", "Ready")["message"]
    assert "nodes are available" in message  # the scheduler's own words
    assert "nvidia.com/gpu" in message
    wait_for(
        lambda: warnings_with(admin, namespace, "huge", "Unschedulable"), timeout=30, message="one Event"
    )
    # kubectl get slm shows the reason while not Ready (the printer column reads the condition).
    assert admin.get("SmallLanguageModel", namespace, "huge")["status"]["phase"] != "Ready"  # type: ignore[index]
    # Fixing the cause (a GPU count a node has) clears it.
    admin.patch("SmallLanguageModel", namespace, "huge", {"spec": {"hardware": {"gpus": 1}}})
    wait_phase(admin, namespace, "huge", "Ready", timeout=90)
    assert ready_reason(admin, namespace, "huge") != "Unschedulable"
    assert len(warnings_with(admin, namespace, "huge", "Unschedulable")) == 1


@pytest.mark.parametrize(
    ("image", "reason", "words"),
    [
        pytest.param(IMAGE_PULL_FAILS, "ImagePullBackOff", IMAGE_PULL_FAILS, id="image-pull"),
        pytest.param(OOM_CRASH_LOOP, "CrashLoopBackOff", "OOMKilled", id="oom-crash-loop"),
    ],
)
def test_a_failing_pod_is_reported_and_fixing_it_clears_the_condition(
    admin: Kube, operator: OperatorProcess, namespace: str, image: str, reason: str, words: str
) -> None:
    admin.create(model("tiny", namespace, image=image))
    wait_for(lambda: ready_reason(admin, namespace, "tiny") == reason, timeout=60, message=reason)
    assert words in condition(admin, namespace, "tiny", "Ready")["message"]
    wait_for(lambda: warnings_with(admin, namespace, "tiny", reason), timeout=30, message="one Event")
    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"image": None}})
    wait_phase(admin, namespace, "tiny", "Ready", timeout=90)
    assert len(warnings_with(admin, namespace, "tiny", reason)) == 1
