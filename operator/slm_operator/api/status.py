"""The typed model of a SmallLanguageModel's ``status`` (reference: docs/api.md).

The CRD's status schema is generated from these classes, so every key the operator writes
must exist here: the API server prunes unknown status fields, and a pruned field would make
a level-based reconcile see a difference on every pass. ``status.plan`` therefore mirrors
:meth:`slm_operator.api.plan.Plan.public` key for key.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from slm_operator.contract.runtime import Engine

# Condition reasons are CamelCase, as in the apimachinery Condition type.
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


class _Status(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, use_enum_values=True
    )


class Phase(StrEnum):
    """A one-word summary of the conditions, for humans; automation reads the conditions."""

    PENDING = "Pending"
    DEPLOYING = "Deploying"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class ConditionType(StrEnum):
    """The condition types the operator sets."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SPEC_VALID = "SpecValid"
    FITS = "Fits"


class Condition(_Status):
    """One condition, shaped like metav1.Condition."""

    type: str = Field(
        pattern=CONDITION_TYPE_PATTERN,
        max_length=316,
        description="Condition type: Ready, Progressing, Degraded, SpecValid or Fits.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        pattern=CONDITION_REASON_PATTERN,
        max_length=1024,
        description="A CamelCase reason for the last transition, e.g. ModelLoaded or DoesNotFit.",
    )
    message: str = Field(default="", max_length=32_768, description="Human-readable details.")
    last_transition_time: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When the status last changed (RFC 3339).",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this condition was computed from."
    )

    @field_validator("last_transition_time")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an RFC 3339 time such as 2026-01-02T03:04:05Z") from None
        if stamp.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone; use Z for UTC")
        return value


def _gib(name: str, description: str) -> Any:
    # The public contract (docs/api.md, `slmctl plan -o json`) spells these "weightsGiB", as
    # Plan.public() does.
    return Field(default=None, alias=f"{name}GiB", description=description)


class MemoryStatus(_Status):
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


class PlanStatus(_Status):
    """The public part of the plan (``Plan.public()``): what the operator chose and why."""

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
    memory: MemoryStatus | None = Field(default=None, description="Memory needed and available, in GiB.")
    fits: bool | None = Field(default=None, description="Whether the model fits the tier; null when unknown.")
    reasons: list[str] = Field(default_factory=list, description="Why each choice was made.")
    warnings: list[str] = Field(default_factory=list, description="Choices worth a second look.")


class SmallLanguageModelStatus(_Status):
    """The observed state of a SmallLanguageModel, written only by the operator."""

    # kopf may keep its own bookkeeping in status; ignoring unknown keys lets the operator parse
    # a live status without failing on them (the CRD schema prunes them anyway).
    model_config = ConfigDict(extra="ignore")

    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the operator last acted on."
    )
    phase: Phase | None = Field(
        default=None,
        description="Pending, Deploying, Ready, Degraded or Failed (a summary of the conditions).",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description="Ready, Progressing, Degraded, SpecValid and Fits, one entry per type.",
    )
    replicas: int | None = Field(default=None, ge=0, description="Pods of the current Deployment.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Pods ready to serve.")
    selector: str | None = Field(
        default=None, description="Label selector of the model's pods (for the scale subresource)."
    )
    endpoint: str | None = Field(
        default=None,
        description="The in-cluster OpenAI base URL, e.g. http://name.ns.svc.cluster.local:8000/v1.",
    )
    api_key_secret: str | None = Field(default=None, description="The Secret holding the API key(s).")
    plan: PlanStatus | None = Field(default=None, description="What the operator chose and why.")


def parse_status(raw: object) -> SmallLanguageModelStatus:
    """Validate a raw ``status`` mapping (an empty or missing status is the empty status)."""
    return SmallLanguageModelStatus.model_validate(raw or {})
