"""The PodDisruptionBudget: at most one model pod drained at a time when there are several."""

from __future__ import annotations

from typing import Any

from slm_operator.api.plan import Plan
from slm_operator.contract.kinds import PDB
from slm_operator.render.meta import child_metadata, label_selector


def render_pdb(plan: Plan) -> dict[str, Any] | None:
    """PDB ``<name>`` with ``maxUnavailable: 1`` when more than one replica runs; else ``None``.

    With a single replica a PDB would either block node drains forever (maxUnavailable 0) or
    protect nothing, so none is created.
    """
    if plan.min_replicas <= 1:
        return None
    return {
        "apiVersion": PDB.api_version,
        "kind": PDB.kind,
        "metadata": child_metadata(plan, plan.name),
        "spec": {"maxUnavailable": 1, "selector": label_selector(plan)},
    }
