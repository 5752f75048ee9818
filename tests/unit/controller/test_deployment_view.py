"""Ready means the Deployment controller saw the latest spec and enough replicas are available."""

from __future__ import annotations

from typing import Any

import pytest

from slm_operator.controller.observed import deployment_view


def deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int | None = 2,
    available: int = 2,
    updated: int = 2,
    condition: str | None = "True",
) -> dict[str, Any]:
    spec = {} if replicas is None else {"replicas": replicas}
    status: dict[str, Any] = {
        "observedGeneration": observed,
        "replicas": available,
        "readyReplicas": available,
        "availableReplicas": available,
        "updatedReplicas": updated,
    }
    if condition is not None:
        status["conditions"] = [{"type": "Available", "status": condition}]
    return {"metadata": {"generation": generation}, "spec": spec, "status": status}


def test_absent() -> None:
    view = deployment_view(None)
    assert (view.exists, view.available, view.replicas) == (False, False, 0)


def test_available_and_current() -> None:
    view = deployment_view(deployment())
    assert view.available
    assert view.ready_replicas == 2
    assert view.message == "2/2 replicas available"


@pytest.mark.parametrize(
    "changes",
    [
        {"observed": 1},  # the controller has not seen the latest spec
        {"available": 1},  # not enough replicas
        {"updated": 1},  # the rollout is still going
        {"condition": "False"},
    ],
)
def test_not_available(changes: dict[str, Any]) -> None:
    assert not deployment_view(deployment(**changes)).available


def test_replicas_default_to_one_when_unset() -> None:
    assert deployment_view(deployment(replicas=None, available=1, updated=1)).available
