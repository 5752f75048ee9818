"""What a reconcile pass observes and reports: serving state, conditions and Events.

Pure functions over what the API returned (the Deployment, the report of the children's pass)
and the conditions stored before; :mod:`slm_operator.controller.reconcile` puts them together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from slm_operator.api.status import Condition, ConditionStatus, ConditionType, Reason
from slm_operator.controller import conditions as cond
from slm_operator.controller.children import ApplyReport, ChildFailure
from slm_operator.diagnosis import DIAGNOSED_REASONS, Diagnosis


class EventReason(StrEnum):
    """Reasons of the Normal Events (a Warning carries the reason of the condition it reports)."""

    PLANNED = "Planned"  # the plan changed (with the children written for it)
    APPLIED = "Applied"  # children written or deleted for an unchanged plan
    READY = "Ready"  # the model became Ready


@dataclass(frozen=True)
class EventNote:
    """An Event to post on the model (type Normal/Warning, CamelCase reason)."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class DeploymentView:
    """What the Deployment tells us about serving."""

    exists: bool
    available: bool
    replicas: int
    ready_replicas: int
    message: str


# Degraded reasons for children the API server refuses for good, by HTTP status.
FAILURE_REASONS = {403: Reason.FORBIDDEN, 404: Reason.NOT_FOUND, 422: Reason.INVALID}


def deployment_view(live: Mapping[str, Any] | None) -> DeploymentView:
    """Serving state from a Deployment: available only when its controller saw the latest spec."""
    if live is None:
        return DeploymentView(False, False, 0, 0, "the Deployment does not exist yet")
    spec = live.get("spec") or {}
    status = live.get("status") or {}
    meta = live.get("metadata") or {}
    wanted = int(spec.get("replicas", 1))
    current = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    available_replicas = int(status.get("availableReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available_condition = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Available"), None
    )
    condition_ok = available_condition is None or available_condition.get("status") == "True"
    available = current and condition_ok and available_replicas >= wanted and updated >= wanted
    message = f"{available_replicas}/{wanted} replicas available"
    if not current:
        message = "the Deployment controller has not observed the latest spec yet"
    return DeploymentView(
        exists=True,
        available=available,
        replicas=int(status.get("replicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        message=message,
    )


def serving_conditions(
    conditions: Sequence[Condition],
    deployment: DeploymentView,
    generation: int,
    now: str,
    why: Diagnosis | None = None,
) -> list[Condition]:
    if deployment.available:
        result = cond.set_condition(
            conditions, ConditionType.READY, "True", Reason.AVAILABLE, deployment.message, generation, now
        )
        return cond.set_condition(
            result,
            ConditionType.PROGRESSING,
            "False",
            Reason.ROLLOUT_COMPLETE,
            deployment.message,
            generation,
            now,
        )
    reason: str = Reason.UNAVAILABLE if deployment.exists else Reason.NOT_CREATED
    message = deployment.message
    if why is not None:  # what the scheduler or the kubelet says, and what to do about it
        reason, message = why.reason, f"{deployment.message}: {why.condition_message}"
    result = cond.set_condition(conditions, ConditionType.READY, "False", reason, message, generation, now)
    progressing: ConditionStatus = "True" if deployment.exists else "False"
    progress_reason = Reason.ROLLING_OUT if deployment.exists else Reason.NOT_CREATED
    return cond.set_condition(
        result, ConditionType.PROGRESSING, progressing, progress_reason, deployment.message, generation, now
    )


def degradation(report: ApplyReport) -> tuple[Reason | None, str]:
    if report.foreign:
        names = ", ".join(report.foreign)
        return (
            Reason.FOREIGN_OBJECT,
            f"not owned by this model, left untouched: {names}; rename or remove them",
        )
    if report.failed:
        return _failure_reason(report.failed), "; ".join(str(f) for f in report.failed)
    return None, ""


def _failure_reason(failures: Sequence[ChildFailure]) -> Reason:
    """One CamelCase reason for the refusals: the common one, else ``ApplyFailed``."""
    reasons = {FAILURE_REASONS.get(f.status, Reason.APPLY_FAILED) for f in failures}
    return reasons.pop() if len(reasons) == 1 else Reason.APPLY_FAILED


def transition_events(
    old_conditions: Sequence[Condition],
    old_plan: object,
    new_conditions: Sequence[Condition],
    new_plan: Mapping[str, Any] | None,
    report: ApplyReport,
) -> list[EventNote]:
    """Events for what changed since the last status: never one per reconcile.

    The plans are compared as written (JSON), so a plan stored by another version of the
    operator that differs in any key counts as a new plan. ``new_plan`` is ``None`` when the
    status is kept as it is.
    """
    events: list[EventNote] = []
    parts: list[str] = []
    planned = bool(new_plan) and new_plan != old_plan
    if new_plan and planned:
        parts.append(
            f"{new_plan.get('runtime')} serving {new_plan.get('modelRef')} ({new_plan.get('quantization')}, "
            f"{new_plan.get('dtype')}) on tier {new_plan.get('tier')}"
        )
    if report.written:
        applied = [w.label for w in report.written if not w.deleted]
        deleted = [w.label for w in report.written if w.deleted]
        parts += (["applied " + ", ".join(applied)] if applied else []) + (
            ["deleted " + ", ".join(deleted)] if deleted else []
        )
    if parts:
        # A new plan and the writes that realise it make one Event, not two.
        events.append(
            EventNote("Normal", EventReason.PLANNED if planned else EventReason.APPLIED, "; ".join(parts))
        )
    new_degraded = cond.get_condition(new_conditions, ConditionType.DEGRADED)
    old_degraded = cond.get_condition(old_conditions, ConditionType.DEGRADED)
    if (
        new_degraded is not None
        and new_degraded.status == "True"
        and (
            old_degraded is None
            or old_degraded.status != "True"
            or old_degraded.message != new_degraded.message
        )
    ):
        events.append(EventNote("Warning", new_degraded.reason, new_degraded.message))
    new_ready = cond.get_condition(new_conditions, ConditionType.READY)
    old_ready = cond.get_condition(old_conditions, ConditionType.READY)
    if (
        new_ready is not None
        and new_ready.reason in DIAGNOSED_REASONS
        and (old_ready is None or new_ready.reason != old_ready.reason)
    ):
        # Why it is not running, once per new reason (not on every pass while it lasts).
        events.append(EventNote("Warning", new_ready.reason, new_ready.message))
    if (
        new_ready is not None
        and new_ready.status == "True"
        and not cond.is_true(old_conditions, ConditionType.READY)
    ):
        events.append(EventNote("Normal", EventReason.READY, new_ready.message))
    return events
