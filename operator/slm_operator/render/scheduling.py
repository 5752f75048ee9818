"""Pod scheduling: the tier's node constraints merged with the user's.

The tier's required node-affinity terms and the user's are both ORed lists of ANDed
expressions; a pod must satisfy both lists, so the result is their cross product with each
pair's expressions concatenated ((a | b) & (c | d) = ac | ad | bc | bd).
"""

from __future__ import annotations

import copy
from typing import Any

from slm_operator.api.config import NodeSelectorTerm
from slm_operator.api.plan import Plan

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def _tier_term(term: NodeSelectorTerm) -> dict[str, Any]:
    expressions: list[dict[str, Any]] = []
    for requirement in term.match_expressions:
        expression: dict[str, Any] = {"key": requirement.key, "operator": requirement.operator}
        if requirement.values:  # Exists/DoesNotExist must not carry values
            expression["values"] = list(requirement.values)
        expressions.append(expression)
    return {"matchExpressions": expressions}


def _and_terms(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    combined: dict[str, Any] = {}
    for field in ("matchExpressions", "matchFields"):
        items = [*left.get(field, []), *right.get(field, [])]
        if items:
            combined[field] = copy.deepcopy(items)
    return combined


def combine_required_terms(tier: list[dict[str, Any]], user: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Terms that hold exactly when one tier term and one user term both hold."""
    if not tier:
        return copy.deepcopy(user)
    if not user:
        return copy.deepcopy(tier)
    return [_and_terms(t, u) for t in tier for u in user]


def render_affinity(plan: Plan) -> dict[str, Any]:
    """The pod's ``affinity``: required node terms combined; everything else the user gave, as given."""
    affinity = copy.deepcopy(plan.scheduling.extra_affinity)
    node_affinity: dict[str, Any] = affinity.get("nodeAffinity") or {}
    user_required: dict[str, Any] = node_affinity.get(REQUIRED) or {}
    terms = combine_required_terms(
        [_tier_term(term) for term in plan.scheduling.node_affinity],
        list(user_required.get("nodeSelectorTerms") or []),
    )
    if terms:
        node_affinity[REQUIRED] = {**user_required, "nodeSelectorTerms": terms}
    if node_affinity:
        affinity["nodeAffinity"] = node_affinity
    else:
        affinity.pop("nodeAffinity", None)
    return affinity


def render_tolerations(plan: Plan) -> list[dict[str, Any]]:
    """The tier's and the user's tolerations, each once, in their first-seen order."""
    tolerations: list[dict[str, Any]] = []
    for toleration in plan.scheduling.tolerations:
        dumped = toleration.model_dump(by_alias=True, exclude_none=True, mode="json")
        if dumped not in tolerations:
            tolerations.append(dumped)
    return tolerations


def scheduling_fields(plan: Plan) -> dict[str, Any]:
    """The pod spec's nodeSelector, affinity, tolerations and priorityClassName (only those set)."""
    fields: dict[str, Any] = {}
    if plan.scheduling.node_selector:
        fields["nodeSelector"] = dict(sorted(plan.scheduling.node_selector.items()))
    affinity = render_affinity(plan)
    if affinity:
        fields["affinity"] = affinity
    tolerations = render_tolerations(plan)
    if tolerations:
        fields["tolerations"] = tolerations
    if plan.scheduling.priority_class_name:
        fields["priorityClassName"] = plan.scheduling.priority_class_name
    return fields
