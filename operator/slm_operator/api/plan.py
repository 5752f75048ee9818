"""The planner's output: every choice the operator made for one model, with its reasons.

A :class:`Plan` is the only input the renderer needs besides the spec and config; its public part
(:class:`PlanStatus`, from :meth:`Plan.public_view`) is what ``slmctl plan`` prints and what
``status.plan`` records. Every choice about the pod (which Secret holds the API key, whether a
Modelfile is built, how weights are pulled, the autoscaler, the rollout strategy ...) is made
here once; the renderer reads the spec only for settings it copies as given (network peers and
egress, the monitoring modes). The fields after ``lora`` are such pod decisions; they are not
part of the public view.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_serializer
from pydantic.alias_generators import to_camel

from slm_operator.api.config import Accelerator, NodeSelectorTerm
from slm_operator.api.kube import SecretKeyRef, Toleration
from slm_operator.api.runtime_options import Adapter, Modelfile
from slm_operator.api.sections import AutoscalingEngine, Storage
from slm_operator.api.spec import Quantization
from slm_operator.contract.runtime import Engine

# The extended resource GPUs are requested under, in Plan.resources.
GPU_RESOURCE = "nvidia.com/gpu"
# Where a pvc:// source's claim is mounted read-only in the pod; Plan.model_ref points below it.
MODELS_DIR = "/models"


class SourceKind(StrEnum):
    """Where the served weights come from: the scheme of ``spec.model.source`` (or the catalog's)."""

    HF = "hf"
    OLLAMA = "ollama"
    PVC = "pvc"


class PullPolicy(StrEnum):
    """When an init container fetches weights or adapters (its ``PULL_POLICY`` variable)."""

    ALWAYS = "always"  # on every start, falling back to the cached copy
    IF_MISSING = "if-missing"  # only when the cache has none (egress is closed)
    NEVER = "never"  # the files are on a claim


class RolloutStrategy(StrEnum):
    """The Deployment's ``strategy.type``."""

    ROLLING_UPDATE = "RollingUpdate"
    RECREATE = "Recreate"


class _PlanModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")


def _gib(name: str, description: str) -> Any:
    # The public contract (docs/api.md, `slmctl plan -o json`, status.plan) spells these
    # "weightsGiB", not the "weightsGib" the camelCase alias generator would give.
    return Field(default=None, alias=f"{name}GiB", description=description)


class MemoryPlan(_PlanModel):
    """The planner's memory math in GiB; null where unknown (e.g. a source outside the catalog)."""

    weights_gib: float | None = _gib("weights", "Resident weights.")
    kv_cache_gib: float | None = _gib("kvCache", "KV cache for contextLength x maxConcurrency.")
    overhead_gib: float | None = _gib("overhead", "Runtime overhead (CUDA context, buffers).")
    required_gib: float | None = _gib("required", "weights + kvCache + overhead.")
    available_gib: float | None = _gib("available", "What the tier offers.")
    load_peak_gib: float | None = _gib(
        "loadPeak", "Per-GPU memory while vLLM loads 16-bit weights it quantizes online (else null)."
    )
    full_length_requests: int | None = Field(
        default=None,
        ge=0,
        description="How many requests of contextLength tokens the KV room holds (at least maxConcurrency).",
    )
    lora_gib: float | None = _gib("lora", "LoRA adapter slots (included in overhead).")


class PlanStatus(_PlanModel):
    """The public part of the plan (:meth:`Plan.public_view`): what the operator chose and why.

    ``status.plan`` holds it and ``slmctl plan`` prints it. Every field is optional so that a
    status written by another version of the operator still parses.
    """

    name: str | None = Field(default=None, description="The model's metadata.name.")
    namespace: str | None = Field(default=None, description="The model's namespace.")
    runtime: Engine | None = Field(default=None, description="The runtime chosen: vllm or ollama.")
    image: str | None = Field(default=None, description="The runtime image deployed.")
    model_ref: str | None = Field(
        default=None, description="The HF repo id, Ollama tag or path actually served."
    )
    quantization: str | None = Field(default=None, description="The weight format served.")
    dtype: str | None = Field(default=None, description="bfloat16/float16 on vLLM; the GGUF type on Ollama.")
    tier: str | None = Field(default=None, description="The hardware tier.")
    gpus: int | None = Field(default=None, ge=0, description="GPUs per replica (0 on CPU tiers).")
    context_length: int | None = Field(default=None, ge=0, description="Tokens per sequence served.")
    max_concurrency: int | None = Field(default=None, ge=0, description="Concurrent sequences per replica.")
    memory: MemoryPlan | None = Field(default=None, description="Memory needed and available, in GiB.")
    fits: bool | None = Field(default=None, description="Whether the model fits the tier; null when unknown.")
    reasons: list[str] = Field(default_factory=list, description="Why each choice was made.")
    warnings: list[str] = Field(default_factory=list, description="Choices worth a second look.")

    @field_serializer("memory", mode="wrap")
    def _known_figures(self, memory: MemoryPlan | None, handler: SerializerFunctionWrapHandler) -> Any:
        # Unknown figures are left out rather than null: a merge patch deletes null keys, so a
        # status carrying them would never equal the one stored and would be rewritten on every
        # reconcile.
        dumped = handler(memory)
        if isinstance(dumped, dict):
            return {key: value for key, value in dumped.items() if value is not None}
        return dumped


class LoraPlan(_PlanModel):
    """vLLM's LoRA settings: adapters usable in one batch and the largest rank."""

    max_loras: int
    max_rank: int
    adapters: list[Adapter] = Field(default_factory=list, description="The adapters served, in spec order.")
    pull_policy: PullPolicy = Field(
        default=PullPolicy.ALWAYS, description="How the Hub adapters are fetched before vLLM starts."
    )


class AutoscalingPlan(_PlanModel):
    """What scales the Deployment, within which bounds, on the signals that can drive this tier."""

    engine: AutoscalingEngine
    min_replicas: int
    max_replicas: int
    target_in_flight_requests: int | None = None
    target_cpu_utilization_percentage: int | None = Field(
        default=None, description="Only on CPU tiers: CPU use says nothing about a GPU-bound engine."
    )


class Scheduling(_PlanModel):
    """Tier scheduling merged with the user's (the renderer turns this into a pod spec)."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    node_affinity: list[NodeSelectorTerm] = Field(default_factory=list)
    tolerations: list[Toleration] = Field(default_factory=list)
    extra_affinity: dict[str, Any] = Field(default_factory=dict)
    priority_class_name: str = ""


class Plan(_PlanModel):
    """Every decision for one model; pure data."""

    name: str
    namespace: str
    runtime: Engine
    image: str
    model_ref: str = Field(description="The HF repo id, Ollama tag or local path actually served.")
    source_kind: SourceKind
    source_claim: str | None = Field(
        default=None, description="For pvc:// sources: the claim mounted read-only at /models."
    )
    served_name: str
    revision: str | None = None
    quantization: Quantization = Field(
        description="The weight format served; auto for a source outside the catalog (the checkpoint's own)."
    )
    dtype: str = Field(description="bfloat16 / float16 on vLLM; the GGUF type on Ollama.")
    kv_cache_dtype: str = Field(default="auto")
    tier: str
    gpus: int
    gpu_memory_utilization: float | None = None
    context_length: int
    max_concurrency: int
    engine_args: list[str] = Field(
        default_factory=list,
        description=(
            "vLLM args beyond the renderer's own: the variant's (e.g. online fp8), then the user's extraArgs."
        ),
    )
    accelerator: Accelerator = Field(
        default=Accelerator.NONE, description="The tier's accelerator: none | nvidia."
    )
    gated: bool = False
    memory: MemoryPlan
    fits: bool | None
    reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    resources: dict[str, dict[str, str]] = Field(default_factory=dict)
    lora: LoraPlan | None = Field(default=None, description="LoRA settings when the model has adapters.")
    api_key: SecretKeyRef | None = Field(
        default=None, description="The Secret and key the gateway reads API keys from; None when auth is off."
    )
    generate_api_key: bool = Field(
        default=False, description="The operator creates that Secret (auth on without apiKeySecretRef)."
    )
    hf_token: SecretKeyRef | None = Field(
        default=None, description="The Hugging Face token vLLM and the adapter fetch read (vLLM only)."
    )
    modelfile: Modelfile | None = Field(
        default=None,
        description="The Modelfile Ollama builds the served model from; None when the tag is copied.",
    )
    pull_policy: PullPolicy = Field(
        default=PullPolicy.ALWAYS, description="How Ollama's init container pulls the weights."
    )
    hub_offline: bool = Field(
        default=False, description="huggingface_hub uses only its cache (egress to the Hub is closed)."
    )
    image_pull_secrets: list[str] = Field(default_factory=list, description="Pull secrets, each once.")
    autoscaling: AutoscalingPlan | None = Field(default=None, description="None when autoscaling is off.")
    replicas: int | None = Field(
        default=1, description="The Deployment's replicas; None while an autoscaler owns the count."
    )
    min_replicas: int = Field(default=1, description="The fewest replicas the model runs with.")
    storage: Storage | None = Field(default=None, description="The model-cache claim; None for an emptyDir.")
    rollout: RolloutStrategy = RolloutStrategy.ROLLING_UPDATE

    def public_view(self) -> PlanStatus:
        """The plan as users see it: what ``status.plan`` holds and ``slmctl plan`` prints."""
        return PlanStatus(
            name=self.name,
            namespace=self.namespace,
            runtime=self.runtime,
            image=self.image,
            model_ref=self.model_ref,
            quantization=str(self.quantization),
            dtype=self.dtype,
            tier=self.tier,
            gpus=self.gpus,
            context_length=self.context_length,
            max_concurrency=self.max_concurrency,
            memory=self.memory,
            fits=self.fits,
            reasons=list(self.reasons),
            warnings=list(self.warnings),
        )

    def public(self) -> dict[str, Any]:
        """:meth:`public_view` as JSON (``slmctl plan -o json``; equal to ``status.plan``)."""
        dumped: dict[str, Any] = self.public_view().model_dump(by_alias=True, mode="json")
        return dumped
