"""Why a model is not running: its pods and Deployment, read as the API returns them, turned
into the reason, message and hint of a ``Ready=False`` condition.

Pure: plain dicts in (camelCase JSON of core/v1 Pod and apps/v1 Deployment), a
:class:`Diagnosis` out. The first problem found wins, in this order, from the most specific
to the most general:

1. an init container that failed or is crash-looping: ``ModelPullFailed`` (Ollama's
   ``pull-model``), ``AdapterFetchFailed`` (vLLM's ``fetch-adapters``), ``InitContainerFailed``;
2. an image that cannot be pulled: ``ImagePullBackOff`` / ``ErrImagePull`` / ``InvalidImageName``;
3. a container the kubelet cannot create (a missing Secret or ConfigMap):
   ``CreateContainerConfigError``;
4. a crash-looping container, with its last termination (``OOMKilled`` with the memory
   limit, or the exit code): ``CrashLoopBackOff``;
5. a pod the scheduler cannot place, with the scheduler's own message and the node labels
   the pod asks for: ``Unschedulable``;
6. the Deployment's ``ProgressDeadlineExceeded``.

Anything else (pods creating, weights downloading, a runtime loading) is not a problem: the
answer is ``None`` and the usual "waiting for replicas" status stands.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Waiting reasons of the kubelet (pkg/kubelet/images/types.go and kuberuntime, as shown by
# `kubectl describe pod`).
IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError")
CRASH_LOOP = "CrashLoopBackOff"
# The operator's init containers (render/ollama.py, render/vllm.py): the reason each failure is reported as.
INIT_CONTAINERS = {
    "pull-model": ("ModelPullFailed", "the Ollama model download"),
    "fetch-adapters": ("AdapterFetchFailed", "the LoRA adapter download"),
}
# Every reason diagnose() can answer (the Ready condition's reason while the model is not running).
DIAGNOSED_REASONS = frozenset(
    {
        *(reason for reason, _ in INIT_CONTAINERS.values()),
        "InitContainerFailed",
        *IMAGE_PULL_REASONS,
        *CONFIG_REASONS,
        CRASH_LOOP,
        "Unschedulable",
        "ProgressDeadlineExceeded",
    }
)
# Kept short in condition messages; the pod's own status has the full text.
MESSAGE_LIMIT = 600


@dataclass(frozen=True)
class Diagnosis:
    """A ``Ready=False`` reason (CamelCase), what happened, and what to try."""

    reason: str
    message: str
    hint: str = ""

    @property
    def condition_message(self) -> str:
        """The message and the hint, as one condition message."""
        return f"{self.message}. {self.hint}" if self.hint else self.message


def diagnose(
    pods: Sequence[Mapping[str, Any]], deployment: Mapping[str, Any] | None, *, tier: str | None = None
) -> Diagnosis | None:
    """Why the model's pods do not serve, or None when nothing is wrong (yet).

    ``pods`` are the model's pods (selected by its labels), ``deployment`` its Deployment (or
    None), ``tier`` the hardware tier named in hints.
    """
    live = [
        p for p in pods if not _meta(p).get("deletionTimestamp") and _status(p).get("phase") != "Succeeded"
    ]
    newest_first = sorted(live, key=_created, reverse=True)
    for check in (_init_failure, _image_pull, _config_error, _crash_loop, _unschedulable):
        for pod in newest_first:
            found = check(pod, tier)
            if found is not None:
                return found
    return _progress_deadline(deployment)


# --- the checks, one per kind of failure -------------------------------------------------------


def _init_failure(pod: Mapping[str, Any], tier: str | None) -> Diagnosis | None:
    for status in _statuses(pod, "initContainerStatuses"):
        name = str(status.get("name"))
        waiting = _state(status, "waiting")
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            continue  # reported as an image problem, with the image's name
        terminated = _state(status, "terminated")
        last = _last_terminated(status)
        if waiting.get("reason") == CRASH_LOOP or (
            terminated and terminated.get("exitCode") not in (0, None)
        ):
            ended = terminated if terminated and terminated.get("exitCode") not in (0, None) else last
            reason, what = INIT_CONTAINERS.get(name, ("InitContainerFailed", "an init container"))
            return Diagnosis(
                reason,
                f"pod {_name(pod)}: init container {name} ({what}) failed "
                f"{_termination_text(ended)} after {status.get('restartCount', 0)} restart(s)",
                f"see `kubectl logs {_name(pod)} -c {name}`; check the source, the registry or mirror "
                "settings and that egress to it is open (spec.network.allowEgress)",
            )
    return None


def _first_waiting(
    pod: Mapping[str, Any], reasons: tuple[str, ...]
) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """The first container (init containers first) waiting for one of ``reasons``, and its state."""
    for kind in ("initContainerStatuses", "containerStatuses"):
        for status in _statuses(pod, kind):
            waiting = _state(status, "waiting")
            if waiting.get("reason") in reasons:
                return status, waiting
    return None


def _image_pull(pod: Mapping[str, Any], tier: str | None) -> Diagnosis | None:
    found = _first_waiting(pod, IMAGE_PULL_REASONS)
    if found is None:
        return None
    status, waiting = found
    image = status.get("image") or _container_spec(pod, str(status.get("name"))).get("image", "")
    return Diagnosis(
        str(waiting["reason"]),
        f"pod {_name(pod)}: container {status.get('name')} cannot pull image {image}: "
        f"{_short(waiting.get('message'))}",
        "check the image name and tag, that the node can reach the registry, and the "
        "pull secrets (spec.imagePullSecrets, or registries.imagePullSecrets of the operator)",
    )


def _config_error(pod: Mapping[str, Any], tier: str | None) -> Diagnosis | None:
    found = _first_waiting(pod, CONFIG_REASONS)
    if found is None:
        return None
    status, waiting = found
    return Diagnosis(
        str(waiting["reason"]),
        f"pod {_name(pod)}: container {status.get('name')} cannot be created: "
        f"{_short(waiting.get('message'))}",
        "a Secret or ConfigMap the pod mounts is missing (e.g. spec.modelAccessSecretRef "
        "or spec.auth.apiKeySecretRef)",
    )


def _crash_loop(pod: Mapping[str, Any], tier: str | None) -> Diagnosis | None:
    for status in _statuses(pod, "containerStatuses"):
        if _state(status, "waiting").get("reason") != CRASH_LOOP:
            continue
        name = str(status.get("name"))
        last = _last_terminated(status)
        limit = _memory_limit(pod, name)
        message = (
            f"pod {_name(pod)}: container {name} keeps crashing {_termination_text(last)}"
            f"{f' with memory limit {limit}' if last.get('reason') == 'OOMKilled' and limit else ''}"
            f" ({status.get('restartCount', 0)} restarts)"
        )
        if last.get("reason") == "OOMKilled":
            hint = (
                "the container ran out of memory: lower spec.model.contextLength or spec.maxConcurrency, "
                "choose a smaller spec.quantization, raise spec.resources.limits.memory or pick a larger tier"
            )
        else:
            hint = f"see `kubectl logs {_name(pod)} -c {name} --previous`"
        return Diagnosis(CRASH_LOOP, message, hint)
    return None


def _unschedulable(pod: Mapping[str, Any], tier: str | None) -> Diagnosis | None:
    for condition in _status(pod).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            labels = node_label_requirements(pod)
            where = f"tier {tier}" if tier else "the pod"
            hint = (
                f"{where} needs nodes with {'; or '.join(labels)}; compare `kubectl get nodes --show-labels`"
                if labels
                else "no node has the free CPU, memory or GPUs the pod requests"
            )
            return Diagnosis(
                "Unschedulable",
                f"pod {_name(pod)} cannot be scheduled: {_short(condition.get('message'))}",
                hint,
            )
    return None


def _progress_deadline(deployment: Mapping[str, Any] | None) -> Diagnosis | None:
    if not deployment:
        return None
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
            return Diagnosis(
                "ProgressDeadlineExceeded",
                f"the rollout made no progress{f' for {deadline} s' if deadline else ''}: "
                f"{_short(condition.get('message'))}",
                "see `kubectl describe pods` for the model's pods",
            )
    return None


# --- helpers ------------------------------------------------------------------------------------


def node_label_requirements(pod: Mapping[str, Any]) -> list[str]:
    """The node labels the pod requires, one text per alternative (nodeSelector AND one
    required node-affinity term), e.g. ``nvidia.com/gpu.product=NVIDIA-L4``."""
    spec = pod.get("spec") or {}
    selector = [f"{k}={v}" for k, v in sorted((spec.get("nodeSelector") or {}).items())]
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    terms = [[_expression_text(e) for e in term.get("matchExpressions") or []] for term in required]
    if not terms:
        return [", ".join(selector)] if selector else []
    return [", ".join([*selector, *term]) for term in terms]


def _expression_text(expression: Mapping[str, Any]) -> str:
    key, operator = expression.get("key"), expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    if operator == "In" and len(values) == 1:
        return f"{key}={values[0]}"
    if operator in ("In", "NotIn"):
        return f"{key} {operator} ({', '.join(values)})"
    if operator in ("Gt", "Lt"):
        return f"{key} {'>' if operator == 'Gt' else '<'} {values[0] if values else '?'}"
    return f"{key} {operator}"


def _termination_text(terminated: Mapping[str, Any]) -> str:
    if not terminated:
        return ""
    reason = terminated.get("reason") or "Error"
    code = terminated.get("exitCode")
    text = f"({reason}, exit code {code}" if code is not None else f"({reason}"
    message = terminated.get("message")
    return f"{text}: {_short(message)})" if message else f"{text})"


def _memory_limit(pod: Mapping[str, Any], container: str) -> str:
    return str(
        ((_container_spec(pod, container).get("resources") or {}).get("limits") or {}).get("memory", "")
    )


def _container_spec(pod: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if container.get("name") == name:
            return container  # type: ignore[no-any-return]
    return {}


def _statuses(pod: Mapping[str, Any], kind: str) -> Iterator[Mapping[str, Any]]:
    yield from _status(pod).get(kind) or []


def _state(status: Mapping[str, Any], which: str) -> Mapping[str, Any]:
    return (status.get("state") or {}).get(which) or {}


def _last_terminated(status: Mapping[str, Any]) -> Mapping[str, Any]:
    return (status.get("lastState") or {}).get("terminated") or {}


def _status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("status") or {}


def _meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def _name(pod: Mapping[str, Any]) -> str:
    return str(_meta(pod).get("name", "?"))


def _created(pod: Mapping[str, Any]) -> str:
    # RFC 3339 UTC stamps of one API server sort as text.
    return str(_meta(pod).get("creationTimestamp") or "")


def _short(text: object) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= MESSAGE_LIMIT else value[: MESSAGE_LIMIT - 3] + "..."
