"""The gateway sidecar: API-key check, metrics, health and the streaming proxy to the runtime."""

from __future__ import annotations

import copy
from typing import Any

from slm_operator.api.config import OperatorConfig
from slm_operator.api.plan import Plan
from slm_operator.contract.names import (
    API_KEY_FILE_KEY,
    API_KEY_MOUNT_DIR,
    GATEWAY_PORT,
    GATEWAY_PORT_NAME,
    METRICS_PORT,
    METRICS_PORT_NAME,
    OLLAMA_PORT,
    VLLM_PORT,
)
from slm_operator.contract.runtime import Engine
from slm_operator.render.containers import (
    API_KEY_VOLUME,
    GATEWAY_CONTAINER,
    GATEWAY_TMP_VOLUME,
    LOCALHOST,
    STARTUP_FAILURE_THRESHOLD,
    STARTUP_PERIOD_SECONDS,
    TMP_DIR,
    mount,
    security_context,
)

GATEWAY_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}


def gateway_args(plan: Plan) -> list[str]:
    """``slmctl gateway`` arguments (the image's ENTRYPOINT is ``slmctl``)."""
    upstream_port = VLLM_PORT if plan.runtime is Engine.VLLM else OLLAMA_PORT
    args = [
        "gateway",
        "--upstream",
        f"http://{LOCALHOST}:{upstream_port}",
        "--runtime",
        str(plan.runtime),
        "--model",
        plan.served_name,
        "--listen",
        f"0.0.0.0:{GATEWAY_PORT}",
        "--metrics-listen",
        f"0.0.0.0:{METRICS_PORT}",
    ]
    # The model names clients may ask for: the base model's and, on vLLM, each adapter's.
    adapters = plan.lora.adapters if plan.lora is not None else []
    for name in [plan.served_name, *(a.name for a in adapters)]:
        args += ["--allow-model", name]
    if plan.api_key is not None:
        args += ["--api-key-file", f"{API_KEY_MOUNT_DIR}/{API_KEY_FILE_KEY}"]
    else:
        args.append("--no-auth")
    return args


def _http_probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": GATEWAY_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def gateway_container(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """The gateway sidecar: API key check, metrics, health, streaming proxy to the runtime."""
    mounts = [mount(GATEWAY_TMP_VOLUME, TMP_DIR)]
    if plan.api_key is not None:
        mounts.append(mount(API_KEY_VOLUME, API_KEY_MOUNT_DIR, read_only=True))
    return {
        "name": GATEWAY_CONTAINER,
        "image": config.images.gateway,
        "args": gateway_args(plan),
        "ports": [
            {"name": GATEWAY_PORT_NAME, "containerPort": GATEWAY_PORT, "protocol": "TCP"},
            {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "startupProbe": _http_probe(
            "/readyz", period=STARTUP_PERIOD_SECONDS, failures=STARTUP_FAILURE_THRESHOLD
        ),
        "readinessProbe": _http_probe("/readyz", period=10, failures=3),
        "livenessProbe": _http_probe("/healthz", period=20, failures=3),
        "resources": copy.deepcopy(GATEWAY_RESOURCES),
        "securityContext": security_context(),
        "volumeMounts": mounts,
    }
