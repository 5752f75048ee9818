"""The typed model of a SmallLanguageModel's ``status`` (reference: docs/api.md).

The CRD's status schema is generated from these classes, so every key the operator writes
must exist here: the API server prunes unknown status fields, and a pruned field would make
a level-based reconcile see a difference on every pass. ``status.plan`` is the plan's own public
view (:class:`slm_operator.api.plan.PlanStatus`), so the two cannot drift apart.

The operator builds its status as a :class:`SmallLanguageModelStatus` and serializes it once,
with :meth:`SmallLanguageModelStatus.to_json`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from slm_operator.api.plan import PlanStatus

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


class Reason(StrEnum):
    """The reasons of the operator's own conditions (CamelCase, as automation matches on them).

    ``Ready=False`` may also carry a reason from the pod diagnosis
    (:data:`slm_operator.diagnosis.DIAGNOSED_REASONS`), so :attr:`Condition.reason` stays a string.
    """

    # SpecValid
    VALID = "Valid"
    INVALID_SPEC = "InvalidSpec"
    # Fits
    FITS = "Fits"
    FIT_UNCHECKED = "FitUnchecked"
    DOES_NOT_FIT = "DoesNotFit"
    SPEC_INVALID = "SpecInvalid"  # not checked: the spec must be valid first
    # Ready and Progressing
    AVAILABLE = "Available"
    UNAVAILABLE = "Unavailable"
    NOT_CREATED = "NotCreated"
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLING_OUT = "RollingOut"
    # Degraded
    AS_EXPECTED = "AsExpected"
    FOREIGN_OBJECT = "ForeignObject"
    FORBIDDEN = "Forbidden"  # a child refused with HTTP 403
    NOT_FOUND = "NotFound"  # 404
    INVALID = "Invalid"  # 422
    APPLY_FAILED = "ApplyFailed"  # any other refusal, or refusals with different reasons


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(_Status):
    """One condition, shaped like metav1.Condition."""

    type: str = Field(
        pattern=CONDITION_TYPE_PATTERN,
        max_length=316,
        description="Condition type: Ready, Progressing, Degraded, SpecValid or Fits.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
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


class SmallLanguageModelStatus(_Status):
    """The observed state of a SmallLanguageModel, written only by the operator."""

    # kopf may keep its own bookkeeping in status; ignoring unknown keys lets a live status parse
    # without failing on them (the CRD schema prunes them anyway).
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

    def to_json(self) -> dict[str, Any]:
        """The status as the operator writes it: camelCase keys, JSON values.

        A field never set is left out, so a merge patch keeps what is stored (a rejected spec
        keeps the last good endpoint and plan); a field set to ``None`` is written as null,
        which removes the stored key (``apiKeySecret`` once auth is turned off).
        """
        dumped: dict[str, Any] = self.model_dump(by_alias=True, mode="json", exclude_unset=True)
        return dumped
