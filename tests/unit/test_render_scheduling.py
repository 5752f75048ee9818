"""Scheduling: tier and user node constraints merged into the pod spec."""

from __future__ import annotations

from typing import Any

import pytest
from render_cases import USER_AFFINITY, builtin_config, case, make_model, make_plan

from slm_operator.render.deployment import render_deployment
from slm_operator.render.scheduling import combine_required_terms

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def expr(key: str, op: str = "Exists", *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


def term(*expressions: dict[str, Any]) -> dict[str, Any]:
    return {"matchExpressions": list(expressions)}


@pytest.mark.parametrize(
    ("tier", "user", "expected"),
    [
        ([], [], []),
        ([term(expr("a"))], [], [term(expr("a"))]),
        ([], [term(expr("u"))], [term(expr("u"))]),
        (
            [term(expr("a")), term(expr("b"))],
            [term(expr("c")), term(expr("d"))],
            [
                term(expr("a"), expr("c")),
                term(expr("a"), expr("d")),
                term(expr("b"), expr("c")),
                term(expr("b"), expr("d")),
            ],
        ),
        (
            [term(expr("a"))],
            [{"matchFields": [expr("metadata.name", "In", "n1")]}],
            [{"matchExpressions": [expr("a")], "matchFields": [expr("metadata.name", "In", "n1")]}],
        ),
    ],
)
def test_required_terms_are_a_cross_product(
    tier: list[dict[str, Any]], user: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> None:
    assert combine_required_terms(tier, user) == expected


def pod_of(case_id: str) -> dict[str, Any]:
    _model, plan = case(case_id).build()
    pod: dict[str, Any] = render_deployment(plan, builtin_config())["spec"]["template"]["spec"]
    return pod


def test_tier_terms_and_user_terms_must_both_hold() -> None:
    pod = pod_of("vllm-user-scheduling")
    tier_terms = builtin_config().tiers["gpu-small"].node_affinity
    user_terms = USER_AFFINITY["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    terms = pod["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    assert len(terms) == len(tier_terms) * len(user_terms) == 4
    # every combined term contains one tier term's expressions and one user term's selectors
    first = terms[0]
    assert [e["key"] for e in first["matchExpressions"]] == [
        "nvidia.com/gpu.memory",
        "nvidia.com/gpu.compute.major",
        "topology.kubernetes.io/zone",
    ]
    assert terms[1]["matchFields"] == [{"key": "metadata.name", "operator": "In", "values": ["node-7"]}]


def test_users_preferred_terms_and_pod_anti_affinity_are_kept_as_given() -> None:
    affinity = pod_of("vllm-user-scheduling")["affinity"]
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    assert affinity["nodeAffinity"][preferred] == USER_AFFINITY["nodeAffinity"][preferred]
    assert affinity["podAntiAffinity"] == USER_AFFINITY["podAntiAffinity"]


def test_tier_only_affinity_and_no_affinity_on_cpu() -> None:
    gpu = pod_of("vllm-gpu-small")
    terms = gpu["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    assert len(terms) == len(builtin_config().tiers["gpu-small"].node_affinity)
    assert "affinity" not in pod_of("ollama-cpu")
    assert "tolerations" not in pod_of("ollama-cpu")
    assert "nodeSelector" not in pod_of("ollama-cpu")


def test_exists_requirements_carry_no_values() -> None:
    model = make_model(hardware={"tier": "cpu"})
    config = builtin_config()
    plan = make_plan(model)
    plan = plan.model_copy(
        update={
            "scheduling": plan.scheduling.model_copy(
                update={"node_affinity": [config.tiers["gpu-small"].node_affinity[0].model_copy()]}
            )
        }
    )
    pod = render_deployment(plan, config)["spec"]["template"]["spec"]
    for requirement in pod["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"][0]["matchExpressions"]:
        assert requirement["values"], requirement


def test_tolerations_are_deduplicated_and_node_selector_merged() -> None:
    pod = pod_of("vllm-user-scheduling")
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "dedicated",
            "operator": "Equal",
            "value": "ml",
            "effect": "NoExecute",
            "tolerationSeconds": 60,
        },
    ]
    assert pod["nodeSelector"] == {"pool": "inference"}
    assert pod["priorityClassName"] == "inference-high"


def test_tier_node_selector_is_used() -> None:
    model = make_model(hardware={"tier": "nvidia-l4"}, scheduling={"nodeSelector": {"pool": "a"}})
    pod = render_deployment(make_plan(model), builtin_config())["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4", "pool": "a"}
