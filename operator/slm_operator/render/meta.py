"""Object metadata shared by every child of a model: name, namespace and the common labels."""

from __future__ import annotations

from typing import Any

from slm_operator.api.plan import Plan
from slm_operator.contract.names import common_labels, selector_labels


def child_metadata(plan: Plan, name: str, *, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """``metadata`` of a child object: its name, the model's namespace and the common labels.

    No ownerReferences: the operator adds them when it applies the object, so ``slmctl render``
    prints what a GitOps repository could hold.
    """
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": plan.namespace,
        "labels": common_labels(plan.name, str(plan.runtime)),
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def label_selector(plan: Plan) -> dict[str, Any]:
    """A ``matchLabels`` selector for the model's pods."""
    return {"matchLabels": selector_labels(plan.name)}
