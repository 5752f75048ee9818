"""diagnose(): pod and Deployment status, as the API server returns them, to a Ready=False reason.

The status dicts follow what the kubelet and the scheduler write (field names of core/v1
PodStatus, messages as `kubectl get pod -o json` shows them).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from slm_operator.diagnosis import DIAGNOSED_REASONS, Diagnosis, diagnose, node_label_requirements

SCHEDULER_MESSAGE = (
    "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
    "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: "
    "3 Preemption is not helpful for scheduling."
)


def pod(
    *,
    name: str = "qwen-7d9f8b6c4-x2x9z",
    created: str = "2026-12-01T06:00:00Z",
    phase: str = "Pending",
    conditions: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    node_selector: dict[str, str] | None = None,
    affinity_terms: list[list[dict[str, Any]]] | None = None,
    memory_limit: str = "24Gi",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "runtime",
                "image": "vllm/vllm-openai:v0.11.0",
                "resources": {"limits": {"memory": memory_limit, "nvidia.com/gpu": "1"}},
            },
            {"name": "gateway", "image": "ghcr.io/slm-operator/slm-operator:0.1.0"},
        ],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity_terms:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": t} for t in affinity_terms]
                }
            }
        }
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if statuses is not None:
        status["containerStatuses"] = statuses
    return {
        "metadata": {"name": name, "namespace": "ai", "creationTimestamp": created},
        "spec": spec,
        "status": status,
    }


UNSCHEDULABLE = pod(
    conditions=[
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": SCHEDULER_MESSAGE,
            "lastTransitionTime": "2026-12-01T06:00:01Z",
        }
    ],
    node_selector={"nvidia.com/gpu.product": "NVIDIA-L4"},
)

IMAGE_PULL = pod(
    statuses=[
        {
            "name": "runtime",
            "image": "registry.example.com/vllm/vllm-openai:v0.11.0",
            "ready": False,
            "restartCount": 0,
            "state": {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": 'Back-off pulling image "registry.example.com/vllm/vllm-openai:v0.11.0"',
                }
            },
        }
    ],
    conditions=[{"type": "PodScheduled", "status": "True"}],
)

OOM_LOOP = pod(
    phase="Running",
    statuses=[
        {
            "name": "runtime",
            "image": "vllm/vllm-openai:v0.11.0",
            "ready": False,
            "restartCount": 4,
            "state": {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": "back-off 1m20s restarting failed container=runtime pod=qwen-7d9f8b6c4-x2x9z",
                }
            },
            "lastState": {
                "terminated": {
                    "exitCode": 137,
                    "reason": "OOMKilled",
                    "startedAt": "2026-12-01T06:01:00Z",
                    "finishedAt": "2026-12-01T06:02:10Z",
                }
            },
        },
        {"name": "gateway", "ready": False, "restartCount": 0, "state": {"running": {}}},
    ],
    conditions=[{"type": "PodScheduled", "status": "True"}],
)

ERROR_LOOP = pod(
    phase="Running",
    statuses=[
        {
            "name": "runtime",
            "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
        }
    ],
)

PULL_FAILED = pod(
    phase="Pending",
    init_statuses=[
        {
            "name": "pull-model",
            "image": "ollama/ollama:0.12.6",
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "message": "Error: pull model manifest: file does not exist",
                }
            },
        }
    ],
    statuses=[{"name": "runtime", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}],
)

MISSING_SECRET = pod(
    statuses=[
        {
            "name": "runtime",
            "restartCount": 0,
            "state": {
                "waiting": {
                    "reason": "CreateContainerConfigError",
                    "message": 'secret "hf-token" not found',
                }
            },
        }
    ]
)

STARTING = pod(
    phase="Running",
    conditions=[{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
    statuses=[
        {"name": "runtime", "restartCount": 0, "started": False, "state": {"running": {}}},
        {"name": "gateway", "restartCount": 0, "state": {"running": {}}},
    ],
)

DEADLINE = {
    "spec": {"progressDeadlineSeconds": 2400},
    "status": {
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "qwen-7d9f8b6c4" has timed out progressing.',
            },
        ]
    },
}
PROGRESSING = {
    "status": {"conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}
}


@pytest.mark.parametrize(
    ("pods", "deployment", "reason", "in_message", "in_hint"),
    [
        pytest.param(
            [UNSCHEDULABLE],
            PROGRESSING,
            "Unschedulable",
            [
                "qwen-7d9f8b6c4-x2x9z cannot be scheduled",
                "2 node(s) didn't match Pod's node affinity/selector",
            ],
            ["tier nvidia-l4 needs nodes with nvidia.com/gpu.product=NVIDIA-L4"],
            id="unschedulable",
        ),
        pytest.param(
            [IMAGE_PULL],
            PROGRESSING,
            "ImagePullBackOff",
            ["cannot pull image registry.example.com/vllm/vllm-openai:v0.11.0", "Back-off pulling image"],
            ["spec.imagePullSecrets"],
            id="image-pull",
        ),
        pytest.param(
            [OOM_LOOP],
            PROGRESSING,
            "CrashLoopBackOff",
            [
                "container runtime keeps crashing (OOMKilled, exit code 137) with memory limit 24Gi",
                "4 restarts",
            ],
            ["ran out of memory", "spec.resources.limits.memory"],
            id="oom-killed",
        ),
        pytest.param(
            [ERROR_LOOP],
            None,
            "CrashLoopBackOff",
            ["(Error, exit code 1)"],
            ["kubectl logs qwen-7d9f8b6c4-x2x9z -c runtime --previous"],
            id="crash-error",
        ),
        pytest.param(
            [PULL_FAILED],
            PROGRESSING,
            "ModelPullFailed",
            ["init container pull-model", "pull model manifest: file does not exist", "3 restart(s)"],
            ["kubectl logs qwen-7d9f8b6c4-x2x9z -c pull-model"],
            id="init-container",
        ),
        pytest.param(
            [MISSING_SECRET],
            PROGRESSING,
            "CreateContainerConfigError",
            ['secret "hf-token" not found'],
            ["spec.modelAccessSecretRef"],
            id="missing-secret",
        ),
        pytest.param(
            [STARTING],
            DEADLINE,
            "ProgressDeadlineExceeded",
            ["no progress for 2400 s", "has timed out progressing"],
            ["kubectl describe pods"],
            id="progress-deadline",
        ),
    ],
)
def test_failures_get_a_reason_message_and_hint(
    pods: list[dict[str, Any]],
    deployment: dict[str, Any] | None,
    reason: str,
    in_message: list[str],
    in_hint: list[str],
) -> None:
    found = diagnose(pods, deployment, tier="nvidia-l4")
    assert found is not None
    assert found.reason == reason
    assert found.reason in DIAGNOSED_REASONS  # the controller posts one Event per such reason
    for text in in_message:
        assert text in found.message
    for text in in_hint:
        assert text in found.hint
    assert found.condition_message == f"{found.message}. {found.hint}"


@pytest.mark.parametrize(
    ("pods", "deployment"),
    [
        pytest.param([STARTING], PROGRESSING, id="loading-weights"),
        pytest.param([], None, id="no-pods-yet"),
        pytest.param([pod(phase="Pending")], PROGRESSING, id="just-created"),
    ],
)
def test_a_pod_on_its_way_is_not_a_problem(
    pods: list[dict[str, Any]], deployment: dict[str, Any] | None
) -> None:
    assert diagnose(pods, deployment) is None


def test_adapter_fetch_failures_name_the_adapter_download() -> None:
    failed = copy.deepcopy(PULL_FAILED)
    status = failed["status"]["initContainerStatuses"][0]
    status["name"] = "fetch-adapters"
    status["state"] = {
        "terminated": {"exitCode": 1, "reason": "Error", "message": "adapter sql: cannot download"}
    }
    found = diagnose([failed], None)
    assert found is not None
    assert found.reason == "AdapterFetchFailed"
    assert (
        "init container fetch-adapters (the LoRA adapter download) failed (Error, exit code 1"
        in found.message
    )


def test_fixing_the_cause_clears_the_diagnosis() -> None:
    fixed = copy.deepcopy(UNSCHEDULABLE)
    fixed["status"] = STARTING["status"]
    assert diagnose([UNSCHEDULABLE], PROGRESSING) is not None
    assert diagnose([fixed], PROGRESSING) is None


def test_specific_failures_win_over_general_ones() -> None:
    # One pod of an old ReplicaSet crash-loops while the new one cannot be scheduled: the init
    # and image failures come first, then crashes, then scheduling, then the rollout deadline.
    found = diagnose([UNSCHEDULABLE, OOM_LOOP], DEADLINE)
    assert found is not None
    assert found.reason == "CrashLoopBackOff"
    found = diagnose([UNSCHEDULABLE, PULL_FAILED, IMAGE_PULL], DEADLINE)
    assert found is not None
    assert found.reason == "ModelPullFailed"


def test_the_newest_pod_speaks_first() -> None:
    older = pod(
        name="old", created="2026-12-01T05:00:00Z", statuses=ERROR_LOOP["status"]["containerStatuses"]
    )
    newer = pod(
        name="new", created="2026-12-01T06:00:00Z", statuses=ERROR_LOOP["status"]["containerStatuses"]
    )
    found = diagnose([older, newer], None)
    assert found is not None
    assert "pod new:" in found.message


def test_terminating_pods_are_ignored() -> None:
    leaving = copy.deepcopy(OOM_LOOP)
    leaving["metadata"]["deletionTimestamp"] = "2026-12-01T06:05:00Z"
    assert diagnose([leaving], None) is None


def test_unschedulable_without_node_labels_blames_resources() -> None:
    bare = copy.deepcopy(UNSCHEDULABLE)
    del bare["spec"]["nodeSelector"]
    found = diagnose([bare], None)
    assert found == Diagnosis(
        "Unschedulable",
        f"pod qwen-7d9f8b6c4-x2x9z cannot be scheduled: {SCHEDULER_MESSAGE}",
        "no node has the free CPU, memory or GPUs the pod requests",
    )


def test_node_label_requirements_spell_each_affinity_alternative() -> None:
    gpu = pod(
        node_selector={"kubernetes.io/arch": "amd64"},
        affinity_terms=[
            [
                {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["15000"]},
                {"key": "nvidia.com/gpu.compute.major", "operator": "Gt", "values": ["7"]},
            ],
            [
                {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["Tesla-T4", "NVIDIA-L4"]},
                {"key": "example.com/spot", "operator": "DoesNotExist"},
            ],
        ],
    )
    assert node_label_requirements(gpu) == [
        "kubernetes.io/arch=amd64, nvidia.com/gpu.memory > 15000, nvidia.com/gpu.compute.major > 7",
        "kubernetes.io/arch=amd64, nvidia.com/gpu.product In (Tesla-T4, NVIDIA-L4), "
        "example.com/spot DoesNotExist",
    ]


def test_long_messages_are_cut() -> None:
    noisy = copy.deepcopy(UNSCHEDULABLE)
    noisy["status"]["conditions"][0]["message"] = "x " * 2000
    found = diagnose([noisy], None)
    assert found is not None
    assert len(found.message) < 700
    assert found.message.endswith("...")
