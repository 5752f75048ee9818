"""The plan's pod decisions: secrets, Modelfile, pulling, replicas, cache and rollout.

Each function decides one thing from the spec (and the runtime and source the planner chose);
the renderer only translates the answers (render/deployment.py and render/containers/).
"""

from __future__ import annotations

from slm_operator.api.config import Engine, OperatorConfig
from slm_operator.api.plan import PullPolicy, RolloutStrategy, SourceKind
from slm_operator.api.spec import (
    AccessMode,
    Modelfile,
    SecretKeyRef,
    SmallLanguageModel,
    SmallLanguageModelSpec,
    Storage,
)
from slm_operator.render.names import API_KEY_FILE_KEY, api_key_secret_name


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
