"""Status conditions and the phase, as pure functions (the clock is a parameter).

Modelled on the habit of replacing a condition by type, keeping ``lastTransitionTime`` unless
the status flips, and stamping the generation it describes. Conditions are the typed
:class:`~slm_operator.api.status.Condition` of the status model; types, phases and reasons are
the enums of :mod:`slm_operator.api.status`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from slm_operator.api.status import Condition, ConditionStatus, ConditionType, Phase


def parse_conditions(raw: object) -> list[Condition]:
    """The conditions of a stored status, in order.

    An entry the status schema would refuse (the API server does not store one, but a status
    written before a schema change is not revalidated) is left out: if it is one of ours it is
    computed afresh, and a status patch carrying it would be refused anyway.
    """
    conditions: list[Condition] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            conditions.append(Condition.model_validate(item))
        except ValidationError:
            continue
    return conditions


def set_condition(
    conditions: Sequence[Condition],
    type_: ConditionType,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> list[Condition]:
    """A new list with the condition ``type_`` replaced (or appended), others untouched.

    ``lastTransitionTime`` moves to ``now`` only when the status differs from the old one, so
    a repeated reconcile with the same outcome changes nothing.
    """
    result: list[Condition] = []
    found = False
    for old in conditions:
        if old.type != type_:
            result.append(old)
            continue
        found = True
        flipped = old.status != status
        result.append(
            _condition(
                type_, status, reason, message, now if flipped else old.last_transition_time, generation
            )
        )
    if not found:
        result.append(_condition(type_, status, reason, message, now, generation))
    return result


def _condition(
    type_: ConditionType, status: ConditionStatus, reason: str, message: str, since: str, generation: int
) -> Condition:
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def get_condition(conditions: Sequence[Condition], type_: ConditionType) -> Condition | None:
    """The condition of that type, if any."""
    for condition in conditions:
        if condition.type == type_:
            return condition
    return None


def is_true(conditions: Sequence[Condition], type_: ConditionType) -> bool:
    condition = get_condition(conditions, type_)
    return condition is not None and condition.status == "True"


def derive_phase(
    *,
    spec_ok: bool,
    deployment_exists: bool,
    available: bool,
    degraded: bool,
) -> Phase:
    """The one-word summary of the conditions.

    A rejected spec with nothing deployed is ``Failed``; a rejected spec on a model that still
    serves its last good configuration keeps the phase of what serves (``Ready``/``Degraded``),
    and the conditions say why the new spec was not applied.
    """
    if not spec_ok:
        if not deployment_exists:
            return Phase.FAILED
        return Phase.READY if available and not degraded else Phase.DEGRADED
    if degraded:
        return Phase.DEGRADED
    if not deployment_exists:
        return Phase.PENDING
    return Phase.READY if available else Phase.DEPLOYING
