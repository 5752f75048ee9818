"""The planner's output: every choice the operator made for one model, with its reasons.

A :class:`Plan` is what ``slmctl plan`` prints, what ``status.plan`` records (its public part,
:meth:`Plan.public`), and the only input the renderer needs besides the spec and config.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from slm_operator.api.config import Accelerator, NodeSelectorTerm
from slm_operator.api.kube import Toleration
from slm_operator.api.spec import Quantization, SourceKind
from slm_operator.contract.runtime import Engine


class _PlanModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")


class MemoryPlan(_PlanModel):
    """Memory math in GiB (rounded to 2 decimals); ``None`` where unknown (left out of ``public()``)."""

    weights_gib: float | None = Field(default=None, alias="weightsGiB", description="Resident weights.")
    kv_cache_gib: float | None = Field(
        default=None, alias="kvCacheGiB", description="KV cache for contextLength x maxConcurrency."
    )
    overhead_gib: float | None = Field(
        default=None, alias="overheadGiB", description="Runtime overhead (CUDA context, buffers)."
    )
    required_gib: float | None = Field(
        default=None, alias="requiredGiB", description="weights + kvCache + overhead."
    )
    available_gib: float | None = Field(
        default=None, alias="availableGiB", description="What the tier offers."
    )
    load_peak_gib: float | None = Field(
        default=None,
        alias="loadPeakGiB",
        description="Per-GPU memory while vLLM loads 16-bit weights it quantizes online (else null).",
    )
    full_length_requests: int | None = Field(
        default=None,
        description="How many requests of contextLength tokens the KV room holds (at least maxConcurrency).",
    )
    lora_gib: float | None = Field(
        default=None,
        alias="loraGiB",
        description="LoRA adapter slots (included in overhead); null without adapters or when unknown.",
    )


class LoraPlan(_PlanModel):
    """vLLM's LoRA settings: adapters usable in one batch and the largest rank."""

    max_loras: int
    max_rank: int


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
    source_kind: SourceKind = Field(description="hf | ollama | pvc")
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

    def public(self) -> dict[str, Any]:
        """The plan as users see it (``slmctl plan -o json`` and ``status.plan``)."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "runtime": str(self.runtime),
            "image": self.image,
            "modelRef": self.model_ref,
            "quantization": str(self.quantization),
            "dtype": self.dtype,
            "tier": self.tier,
            "gpus": self.gpus,
            "contextLength": self.context_length,
            "maxConcurrency": self.max_concurrency,
            # Unknown figures are left out rather than null: a merge patch deletes null keys, so a
            # status carrying them would never equal the one stored and would be rewritten on
            # every reconcile.
            "memory": self.memory.model_dump(by_alias=True, mode="json", exclude_none=True),
            "fits": self.fits,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
        }
