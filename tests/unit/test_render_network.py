"""Service and NetworkPolicy."""

from __future__ import annotations

from typing import Any

from render_cases import builtin_config, case

from slm_operator.render.networkpolicy import render_network_policy
from slm_operator.render.service import render_service


def policy_of(case_id: str) -> dict[str, Any]:
    model, plan = case(case_id).build()
    return render_network_policy(model, plan, builtin_config())


def test_service_exposes_api_and_metrics_of_the_gateway() -> None:
    _, plan = case("vllm-gpu-small").build()
    service = render_service(plan)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"slm.dev/model": "m1"}
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"http": (8000, "http"), "metrics": (9090, "metrics")}


def test_policy_is_default_deny_both_ways() -> None:
    spec = policy_of("vllm-gpu-small")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"] == {"matchLabels": {"slm.dev/model": "m1"}}


def test_api_port_open_to_the_namespace_only_by_default() -> None:
    api, metrics = policy_of("vllm-gpu-small")["spec"]["ingress"]
    assert api == {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": "http"}]}
    assert metrics == {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"protocol": "TCP", "port": "metrics"}],
    }


def test_allow_from_peers_use_core_field_names() -> None:
    api = policy_of("vllm-autoscaling-rwx")["spec"]["ingress"][0]
    assert api["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"team": "web"}}},
        {"podSelector": {"matchExpressions": [{"key": "role", "operator": "In", "values": ["api"]}]}},
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
    ]


def test_egress_dns_always_https_only_when_allowed() -> None:
    dns = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    assert policy_of("vllm-gpu-small")["spec"]["egress"] == [
        dns,
        {"ports": [{"protocol": "TCP", "port": 443}]},
    ]
    assert policy_of("vllm-no-auth-no-egress")["spec"]["egress"] == [dns]
