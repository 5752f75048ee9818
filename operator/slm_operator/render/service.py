"""The model's ClusterIP Service: the gateway's API port and its metrics port."""

from __future__ import annotations

from typing import Any

from slm_operator.api.plan import Plan
from slm_operator.contract.kinds import SERVICE
from slm_operator.contract.names import (
    GATEWAY_PORT,
    GATEWAY_PORT_NAME,
    METRICS_PORT,
    METRICS_PORT_NAME,
    selector_labels,
)
from slm_operator.render.meta import child_metadata


def render_service(plan: Plan) -> dict[str, Any]:
    """Service ``<name>``: ``http`` 8000 and ``metrics`` 9090, both to the gateway sidecar."""
    return {
        "apiVersion": SERVICE.api_version,
        "kind": SERVICE.kind,
        "metadata": child_metadata(plan, plan.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(plan.name),
            "ports": [
                {
                    "name": GATEWAY_PORT_NAME,
                    "port": GATEWAY_PORT,
                    "targetPort": GATEWAY_PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
                {
                    "name": METRICS_PORT_NAME,
                    "port": METRICS_PORT,
                    "targetPort": METRICS_PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
            ],
        },
    }
