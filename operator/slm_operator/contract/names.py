"""Names, labels, ports and paths shared by the renderer, the operator and the gateway.

Every child of a model is found by these labels and named by these functions, so the operator
can tell its own objects from same-named foreign ones (docs/operator.md, docs/architecture.md).
"""

from __future__ import annotations

MANAGED_BY = "slm-operator"
MODEL_LABEL = "slm.dev/model"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
FIELD_MANAGER = "slm-operator"
# Annotation on objects the operator created that must never be rewritten (the API-key Secret).
GENERATED_ANNOTATION = "slm.dev/generated"

# Ports. The gateway is the only door; runtimes bind to localhost (docs/security.md).
GATEWAY_PORT = 8000
GATEWAY_PORT_NAME = "http"
METRICS_PORT = 9090
METRICS_PORT_NAME = "metrics"
VLLM_PORT = 8001  # not vLLM's default 8000: the gateway owns 8000 in the shared pod network
OLLAMA_PORT = 11434

API_KEY_MOUNT_DIR = "/var/run/slm/api-key"
API_KEY_FILE_KEY = "api-key"  # key in the generated Secret


def selector_labels(name: str) -> dict[str, str]:
    """The labels that select a model's pods (also ``status.selector``)."""
    return {MODEL_LABEL: name}


def common_labels(name: str, runtime: str) -> dict[str, str]:
    """Labels on every child object."""
    return {
        "app.kubernetes.io/name": runtime,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "inference",
        MANAGED_BY_LABEL: MANAGED_BY,
        MODEL_LABEL: name,
    }


def selector_string(name: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector_labels(name).items())


def api_key_secret_name(name: str) -> str:
    return f"{name}-api-key"


def modelfile_configmap_name(name: str) -> str:
    return f"{name}-modelfile"


def cache_pvc_name(name: str) -> str:
    return f"{name}-cache"


def endpoint_url(name: str, namespace: str) -> str:
    return f"http://{name}.{namespace}.svc.cluster.local:{GATEWAY_PORT}/v1"
