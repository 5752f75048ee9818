"""Status conditions and the phase, as pure functions (the clock is a parameter).

Modelled on the habit of replacing a condition by type, keeping ``lastTransitionTime`` unless
the status flips, and stamping the generation it describes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]

SPEC_VALID = "SpecValid"
FITS = "Fits"
PROGRESSING = "Progressing"
READY = "Ready"
DEGRADED = "Degraded"
CONDITION_TYPES = (SPEC_VALID, FITS, PROGRESSING, READY, DEGRADED)

PENDING = "Pending"
DEPLOYING = "Deploying"
PHASE_READY = "Ready"
PHASE_DEGRADED = "Degraded"
FAILED = "Failed"


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """A new list with the condition ``type_`` replaced (or appended), others untouched.

    ``lastTransitionTime`` moves to ``now`` only when the status differs from the old one, so
    a repeated reconcile with the same outcome changes nothing.
    """
    result: list[dict[str, Any]] = []
    found = False
    for old in conditions:
        if old.get("type") != type_:
            result.append(dict(old))
            continue
        found = True
        flipped = old.get("status") != status
        result.append(
            {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now if flipped else old.get("lastTransitionTime", now),
                "observedGeneration": generation,
            }
        )
    if not found:
        result.append(
            {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
                "observedGeneration": generation,
            }
        )
    return result


def get_condition(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    """The condition of that type, if any."""
    for condition in conditions:
        if condition.get("type") == type_:
            return condition
    return None


def is_true(conditions: Sequence[Mapping[str, Any]], type_: str) -> bool:
    condition = get_condition(conditions, type_)
    return condition is not None and condition.get("status") == "True"


def derive_phase(
    *,
    spec_ok: bool,
    deployment_exists: bool,
    available: bool,
    degraded: bool,
) -> str:
    """The one-word summary of the conditions.

    A rejected spec with nothing deployed is ``Failed``; a rejected spec on a model that still
    serves its last good configuration keeps the phase of what serves (``Ready``/``Degraded``),
    and the conditions say why the new spec was not applied.
    """
    if not spec_ok:
        if not deployment_exists:
            return FAILED
        return PHASE_READY if available and not degraded else PHASE_DEGRADED
    if degraded:
        return PHASE_DEGRADED
    if not deployment_exists:
        return PENDING
    return PHASE_READY if available else DEPLOYING
