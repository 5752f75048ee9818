"""The model's NetworkPolicy: default deny, with the few doors the service needs."""

from __future__ import annotations

from typing import Any

from slm_operator.api.config import OperatorConfig
from slm_operator.api.kube import NetworkPeer
from slm_operator.api.plan import Plan
from slm_operator.api.spec import SmallLanguageModel
from slm_operator.contract.kinds import NETWORK_POLICY
from slm_operator.contract.names import GATEWAY_PORT_NAME, METRICS_PORT_NAME
from slm_operator.render.meta import child_metadata, label_selector

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace since Kubernetes 1.22


def _peer(peer: NetworkPeer) -> dict[str, Any]:
    # The spec's camelCase aliases are exactly core/v1 NetworkPolicyPeer's field names
    # (ipBlock.except included), so a JSON dump by alias is the peer.
    dumped: dict[str, Any] = peer.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


def render_network_policy(model: SmallLanguageModel, plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """NetworkPolicy ``<name>`` for the model's pods.

    Ingress: the API port from the model's namespace and every ``network.allowFrom`` peer; the
    metrics port from the monitoring namespace. Egress: DNS always, HTTPS anywhere only while
    ``allowEgress`` (model download from Hugging Face or the Ollama registry).
    """
    network = model.spec.network
    api_peers: list[dict[str, Any]] = [{"podSelector": {}}]
    api_peers.extend(_peer(peer) for peer in network.allow_from)
    ingress = [
        {"from": api_peers, "ports": [{"protocol": "TCP", "port": GATEWAY_PORT_NAME}]},
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {NAMESPACE_NAME_LABEL: config.defaults.monitoring_namespace}
                    }
                }
            ],
            "ports": [{"protocol": "TCP", "port": METRICS_PORT_NAME}],
        },
    ]
    egress: list[dict[str, Any]] = [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    ]
    if network.allow_egress:
        egress.append({"ports": [{"protocol": "TCP", "port": 443}]})
    return {
        "apiVersion": NETWORK_POLICY.api_version,
        "kind": NETWORK_POLICY.kind,
        "metadata": child_metadata(plan, plan.name),
        "spec": {
            "podSelector": label_selector(plan),
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
