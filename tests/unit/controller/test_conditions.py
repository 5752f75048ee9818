"""set_condition keeps lastTransitionTime unless the status flips; derive_phase summarises."""

from __future__ import annotations

import pytest

from slm_operator.api.status import Condition, ConditionType, Phase
from slm_operator.controller.conditions import derive_phase, get_condition, parse_conditions, set_condition

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"
READY, SPEC_VALID = ConditionType.READY, ConditionType.SPEC_VALID


def test_a_new_condition_is_appended_with_the_clock_and_generation() -> None:
    result = set_condition([], READY, "False", "Unavailable", "0/1", 3, T0)
    assert [c.model_dump(by_alias=True, mode="json", exclude_unset=True) for c in result] == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "Unavailable",
            "message": "0/1",
            "lastTransitionTime": T0,
            "observedGeneration": 3,
        }
    ]


def test_same_status_keeps_the_transition_time_but_updates_reason_message_generation() -> None:
    first = set_condition([], READY, "False", "Unavailable", "0/1", 1, T0)
    second = set_condition(first, READY, "False", "NotCreated", "none yet", 2, T1)
    assert second[0].last_transition_time == T0
    assert (second[0].reason, second[0].message, second[0].observed_generation) == (
        "NotCreated",
        "none yet",
        2,
    )


def test_a_flip_moves_the_transition_time() -> None:
    first = set_condition([], READY, "False", "Unavailable", "", 1, T0)
    second = set_condition(first, READY, "True", "Available", "", 1, T1)
    assert second[0].last_transition_time == T1


def test_other_conditions_are_untouched_and_order_is_kept() -> None:
    conditions = set_condition([], SPEC_VALID, "True", "Valid", "", 1, T0)
    conditions = set_condition(conditions, READY, "False", "Unavailable", "", 1, T0)
    updated = set_condition(conditions, SPEC_VALID, "False", "InvalidSpec", "x", 2, T1)
    assert [c.type for c in updated] == ["SpecValid", "Ready"]
    assert updated[1] == conditions[1]
    assert conditions[0].status == "True"  # the input is not changed
    assert get_condition(updated, SPEC_VALID) == updated[0]
    assert get_condition(updated, ConditionType.FITS) is None


def test_stored_conditions_parse_in_order_and_one_the_schema_refuses_is_left_out() -> None:
    theirs = {"type": "example.com/Scanned", "status": "True", "reason": "Clean", "lastTransitionTime": T0}
    broken = {"type": "Ready", "status": "Yes", "reason": "Available", "lastTransitionTime": T0}
    ours = {
        "type": "Fits",
        "status": "True",
        "reason": "Fits",
        "lastTransitionTime": T0,
        "observedGeneration": 1,
    }
    parsed = parse_conditions([theirs, broken, ours])
    assert parsed == [Condition.model_validate(theirs), Condition.model_validate(ours)]
    # Carried as stored: keys that were absent stay absent.
    assert parsed[0].model_dump(by_alias=True, mode="json", exclude_unset=True) == theirs
    assert parse_conditions(None) == []


@pytest.mark.parametrize(
    ("spec_ok", "exists", "available", "degraded", "phase"),
    [
        (True, False, False, False, Phase.PENDING),
        (True, True, False, False, Phase.DEPLOYING),
        (True, True, True, False, Phase.READY),
        (True, True, True, True, Phase.DEGRADED),
        (True, False, False, True, Phase.DEGRADED),
        (False, False, False, False, Phase.FAILED),
        (False, True, True, False, Phase.READY),  # still serving the last good configuration
        (False, True, False, False, Phase.DEGRADED),
    ],
)
def test_phase_table(spec_ok: bool, exists: bool, available: bool, degraded: bool, phase: Phase) -> None:
    assert (
        derive_phase(spec_ok=spec_ok, deployment_exists=exists, available=available, degraded=degraded)
        is phase
    )
