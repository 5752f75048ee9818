"""spec → plan → desired child objects, in one pure call (the operator's and the CLI's core)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slm_operator.api.config import OperatorConfig
from slm_operator.api.plan import Plan
from slm_operator.api.spec import SmallLanguageModel
from slm_operator.planning.planner import plan_model
from slm_operator.render import render_children


@dataclass(frozen=True)
class DesiredState:
    """The plan and the objects that realise it (plain dicts, deterministic order)."""

    plan: Plan
    objects: list[dict[str, Any]]


def desired_state(
    model: SmallLanguageModel,
    config: OperatorConfig,
    *,
    monitoring_available: bool,
    keda_available: bool = False,
) -> DesiredState:
    """Plan and render one model; raises SpecError/FitError naming the field when it cannot be served.

    ``monitoring_available``/``keda_available``: whether the cluster serves the Prometheus
    Operator's and KEDA's APIs (optional kinds are rendered only then).
    """
    plan = plan_model(model, config)
    objects = render_children(
        model, plan, config, monitoring_available=monitoring_available, keda_available=keda_available
    )
    return DesiredState(plan=plan, objects=objects)
