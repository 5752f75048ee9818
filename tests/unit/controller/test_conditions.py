"""set_condition keeps lastTransitionTime unless the status flips; derive_phase summarises."""

from __future__ import annotations

import pytest

from slm_operator.controller.conditions import derive_phase, get_condition, set_condition

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def test_a_new_condition_is_appended_with_the_clock_and_generation() -> None:
    result = set_condition([], "Ready", "False", "Unavailable", "0/1", 3, T0)
    assert result == [
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
    first = set_condition([], "Ready", "False", "Unavailable", "0/1", 1, T0)
    second = set_condition(first, "Ready", "False", "NotCreated", "none yet", 2, T1)
    assert second[0]["lastTransitionTime"] == T0
    assert (second[0]["reason"], second[0]["message"], second[0]["observedGeneration"]) == (
        "NotCreated",
        "none yet",
        2,
    )


def test_a_flip_moves_the_transition_time() -> None:
    first = set_condition([], "Ready", "False", "Unavailable", "", 1, T0)
    second = set_condition(first, "Ready", "True", "Available", "", 1, T1)
    assert second[0]["lastTransitionTime"] == T1


def test_other_conditions_are_untouched_and_order_is_kept() -> None:
    conditions = set_condition([], "SpecValid", "True", "Valid", "", 1, T0)
    conditions = set_condition(conditions, "Ready", "False", "Unavailable", "", 1, T0)
    updated = set_condition(conditions, "SpecValid", "False", "InvalidSpec", "x", 2, T1)
    assert [c["type"] for c in updated] == ["SpecValid", "Ready"]
    assert updated[1] == conditions[1]
    assert conditions[0]["status"] == "True"  # the input is not mutated
    assert get_condition(updated, "SpecValid") == updated[0]
    assert get_condition(updated, "Fits") is None


@pytest.mark.parametrize(
    ("spec_ok", "exists", "available", "degraded", "phase"),
    [
        (True, False, False, False, "Pending"),
        (True, True, False, False, "Deploying"),
        (True, True, True, False, "Ready"),
        (True, True, True, True, "Degraded"),
        (True, False, False, True, "Degraded"),
        (False, False, False, False, "Failed"),
        (False, True, True, False, "Ready"),  # still serving the last good configuration
        (False, True, False, False, "Degraded"),
    ],
)
def test_phase_table(spec_ok: bool, exists: bool, available: bool, degraded: bool, phase: str) -> None:
    assert (
        derive_phase(spec_ok=spec_ok, deployment_exists=exists, available=available, degraded=degraded)
        == phase
    )
