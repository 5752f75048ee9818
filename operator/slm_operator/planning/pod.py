"""The plan's pod decisions: scheduling, resources, secrets, Modelfile, pulling, replicas, cache
and rollout.

Each function decides one thing from the spec (and the runtime and source the planner chose);
the renderer only translates the answers (render/deployment.py and the container modules).
"""

from __future__ import annotations

import math

from slm_operator.api.config import Accelerator, OperatorConfig, Tier
from slm_operator.api.kube import ResourceRequirements, SecretKeyRef
from slm_operator.api.plan import (
    GPU_RESOURCE,
    AutoscalingPlan,
    PullPolicy,
    RolloutStrategy,
    Scheduling,
    SourceKind,
)
from slm_operator.api.runtime_options import Modelfile
from slm_operator.api.sections import AccessMode, Storage
from slm_operator.api.sections import Scheduling as UserScheduling
from slm_operator.api.spec import SmallLanguageModel, SmallLanguageModelSpec
from slm_operator.contract.names import API_KEY_FILE_KEY, api_key_secret_name
from slm_operator.contract.runtime import Engine


def scheduling(tier_name: str, tier: Tier, user: UserScheduling) -> tuple[Scheduling, list[str]]:
    """The tier's scheduling with the user's merged in, and a warning for each tier node label the
    user's nodeSelector replaces."""
    warnings: list[str] = []
    node_selector = dict(tier.node_selector)
    for key, value in user.node_selector.items():
        if key in node_selector and node_selector[key] != value:
            warnings.append(
                f"spec.scheduling.nodeSelector.{key}={value} replaces tier {tier_name}'s {node_selector[key]}"
            )
        node_selector[key] = value
    tolerations = list(tier.tolerations)
    tolerations.extend(t for t in user.tolerations if t not in tolerations)
    merged = Scheduling(
        node_selector=dict(sorted(node_selector.items())),
        node_affinity=list(tier.node_affinity),
        tolerations=tolerations,
        extra_affinity=dict(user.affinity),
        priority_class_name=user.priority_class_name,
    )
    return merged, warnings


def _format_gib(value: float) -> str:
    return f"{math.ceil(value * 1024)}Mi" if value != int(value) else f"{int(value)}Gi"


def resources(tier: Tier, user: ResourceRequirements, gpus: int) -> dict[str, dict[str, str]]:
    """Tier requests/limits with the user's overrides on top; GPUs from the plan only."""
    memory = _format_gib(tier.memory_gib)
    # Memory request = limit: a model's resident set is known up front, and a pod that may be
    # OOM-killed under node pressure while serving is worse than one that waits to schedule.
    requests = {"cpu": tier.cpu, "memory": memory}
    limits = {"memory": memory}
    if tier.cpu_limit:
        limits["cpu"] = tier.cpu_limit
    if gpus:
        limits[GPU_RESOURCE] = str(gpus)
    requests.update(user.requests or {})
    limits.update(user.limits or {})
    return {"requests": dict(sorted(requests.items())), "limits": dict(sorted(limits.items()))}


def api_key(model: SmallLanguageModel) -> SecretKeyRef | None:
    """The Secret and key the gateway reads API keys from: the user's, else the generated one."""
    auth = model.spec.auth
    if not auth.enabled:
        return None
    if auth.api_key_secret_ref is not None:
        return auth.api_key_secret_ref
    return SecretKeyRef(name=api_key_secret_name(model.name), key=API_KEY_FILE_KEY)


def generates_api_key(spec: SmallLanguageModelSpec) -> bool:
    """True when auth is on and the user did not bring their own Secret."""
    return spec.auth.enabled and spec.auth.api_key_secret_ref is None


def hf_token(spec: SmallLanguageModelSpec, engine: Engine) -> SecretKeyRef | None:
    """The Hugging Face token of a gated model; only vLLM downloads from the Hub."""
    return spec.model_access_secret_ref if engine is Engine.VLLM else None


def modelfile(spec: SmallLanguageModelSpec, engine: Engine, source_kind: SourceKind) -> Modelfile | None:
    """Ollama builds the served model from a Modelfile when one is given, or when the weights are a
    GGUF file on a claim (there is no registry tag to copy)."""
    if engine is not Engine.OLLAMA:
        return None
    if spec.ollama.modelfile is not None:
        return spec.ollama.modelfile
    return Modelfile() if source_kind is SourceKind.PVC else None


def download_policy(spec: SmallLanguageModelSpec) -> PullPolicy:
    """Downloads happen on every start while egress is open (falling back to the cached copy), and
    only when missing once egress is closed."""
    return PullPolicy.ALWAYS if spec.network.allow_egress else PullPolicy.IF_MISSING


def pull_policy(spec: SmallLanguageModelSpec, source_kind: SourceKind) -> PullPolicy:
    """How the init container gets the weights: as :func:`download_policy`, never for files on a claim."""
    return PullPolicy.NEVER if source_kind is SourceKind.PVC else download_policy(spec)


def image_pull_secrets(spec: SmallLanguageModelSpec, config: OperatorConfig) -> list[str]:
    """The operator's default pull secrets, then the model's own, each once."""
    names: list[str] = []
    for name in [*config.registries.image_pull_secrets, *(ref.name for ref in spec.image_pull_secrets)]:
        if name not in names:
            names.append(name)
    return names


def autoscaling(spec: SmallLanguageModelSpec, tier: Tier) -> AutoscalingPlan | None:
    """The autoscaler the spec asks for, or None; CPU utilisation drives only CPU tiers (on a GPU
    tier the engine is GPU-bound, so its CPU use says nothing about load)."""
    asked = spec.autoscaling
    if not asked.enabled:
        return None
    cpu_tier = tier.accelerator == Accelerator.NONE
    return AutoscalingPlan(
        engine=asked.engine,
        min_replicas=asked.min_replicas,
        max_replicas=asked.max_replicas,
        target_in_flight_requests=asked.target_in_flight_requests,
        target_cpu_utilization_percentage=asked.target_cpu_utilization_percentage if cpu_tier else None,
    )


def replicas(spec: SmallLanguageModelSpec) -> int | None:
    """The Deployment's replica count; ``None`` while an autoscaler owns the count."""
    return None if spec.autoscaling.enabled else spec.replicas


def min_replicas(spec: SmallLanguageModelSpec) -> int:
    """The fewest replicas the model runs with: ``minReplicas`` under an autoscaler, else ``replicas``."""
    return spec.autoscaling.min_replicas if spec.autoscaling.enabled else spec.replicas


def rollout(storage: Storage | None) -> RolloutStrategy:
    """Roll pods one by one, unless the cache claim can only be attached once."""
    if storage is not None and storage.access_mode != AccessMode.RWX:
        # A single-attach cache claim cannot be mounted by a surge pod on another node (RWO) or
        # at all (RWOP), so a rolling update would wait forever: replace the pod instead.
        return RolloutStrategy.RECREATE
    # A new model pod must be ready (weights downloaded and loaded) before an old one goes,
    # otherwise every rollout is an outage of several minutes.
    return RolloutStrategy.ROLLING_UPDATE
