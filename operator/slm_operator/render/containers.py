"""What every container of a model pod shares: paths, volume and container names, the security
context, environment and mount entries, resources, and the runtimes' exec probes.

One module per container builds on it, as one pod builder per engine: ``vllm.py`` (the vLLM
runtime and its fetch-adapters init container), ``ollama.py`` (the Ollama runtime and its
pull-model init container) and ``gateway_sidecar.py`` (the gateway, the pod's only door).
Every value reaches a runtime as an argv element or an environment variable; nothing is ever
spliced into a shell string (the init containers' scripts are constants).
"""

from __future__ import annotations

from typing import Any

from slm_operator.api.plan import GPU_RESOURCE, MODELS_DIR, Plan

LOCALHOST = "127.0.0.1"
# Writable mounts (the root filesystem is read-only).
TMP_DIR = "/tmp"  # noqa: S108 - an emptyDir of the pod's own, not the node's /tmp
HOME_DIR = "/home/slm"
CACHE_DIR = "/var/cache/slm"
HF_HOME = f"{CACHE_DIR}/huggingface"
OLLAMA_MODELS = f"{CACHE_DIR}/ollama"
SHM_DIR = "/dev/shm"  # noqa: S108 - a memory emptyDir of the pod's own
# LoRA adapters from claims: each claim is mounted read-only at /adapters/<claim>.
ADAPTERS_DIR = "/adapters"
# LoRA adapters from the Hub: downloaded by the fetch-adapters init container into the cache.
ADAPTER_CACHE_DIR = f"{CACHE_DIR}/adapters"

# Volume names (see deployment.py).
TMP_VOLUME = "tmp"
HOME_VOLUME = "home"
CACHE_VOLUME = "cache"
SHM_VOLUME = "dshm"
API_KEY_VOLUME = "api-key"
HF_TOKEN_VOLUME = "hf-token"  # noqa: S105 - a volume name, not a secret
# The Hugging Face token is a file, not an environment variable (which any process in the
# container can read from /proc/<pid>/environ): huggingface_hub reads the file named by
# HF_TOKEN_PATH (its "Environment variables" reference), and so does vLLM's download path.
HF_TOKEN_DIR = "/var/run/slm/hf-token"  # noqa: S105 - a mount path
HF_TOKEN_FILE = "token"  # noqa: S105 - a file name
MODELFILE_VOLUME = "modelfile"
MODELS_VOLUME = "models"
GATEWAY_TMP_VOLUME = "gateway-tmp"

RUNTIME_CONTAINER = "runtime"
GATEWAY_CONTAINER = "gateway"
PULL_CONTAINER = "pull-model"
FETCH_ADAPTERS_CONTAINER = "fetch-adapters"

# Probes go to the gateway, which reports /readyz only once the runtime lists the served model.
# The startup budget covers the first download of the weights: 180 x 10 s = 30 minutes before
# the kubelet gives up and restarts the pod (liveness and readiness only start after it).
STARTUP_PERIOD_SECONDS = 10
STARTUP_FAILURE_THRESHOLD = 180


def security_context() -> dict[str, Any]:
    """The restricted-PSS container security context every container of the pod carries."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def env_var(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def mount(name: str, path: str, *, read_only: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        entry["readOnly"] = True
    return entry


def runtime_mounts(plan: Plan) -> list[dict[str, Any]]:
    mounts = [mount(TMP_VOLUME, TMP_DIR), mount(HOME_VOLUME, HOME_DIR), mount(CACHE_VOLUME, CACHE_DIR)]
    if plan.source_claim:
        mounts.append(mount(MODELS_VOLUME, MODELS_DIR, read_only=True))
    return mounts


def container_resources(
    resources: dict[str, dict[str, str]], *, drop: tuple[str, ...] = ()
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in ("requests", "limits"):
        values = {k: v for k, v in sorted(resources.get(section, {}).items()) if k not in drop}
        if values:
            out[section] = values
    return out


# The runtime listens on 127.0.0.1 only, out of the kubelet's HTTP reach, so its own liveness
# is an exec probe with a constant command (no user input; each runtime module names its own).
# A hung runtime is then restarted, not just marked unready by the gateway's /readyz. The
# startup probe holds liveness back while vLLM downloads and loads the weights.
def _exec_probe(command: list[str], *, period: int, failures: int) -> dict[str, Any]:
    return {
        "exec": {"command": list(command)},
        "periodSeconds": period,
        "timeoutSeconds": 10,
        "failureThreshold": failures,
    }


def runtime_probes(command: list[str]) -> dict[str, Any]:
    """startupProbe (the download budget) and livenessProbe for a runtime container."""
    return {
        "startupProbe": _exec_probe(
            command, period=STARTUP_PERIOD_SECONDS, failures=STARTUP_FAILURE_THRESHOLD
        ),
        "livenessProbe": _exec_probe(command, period=30, failures=4),
    }


def runtime_container(
    plan: Plan,
    *,
    args: list[str],
    env: list[dict[str, Any]],
    health_command: list[str],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``runtime`` container: the plan's image and resources, exec probes, hardened; the
    engine module gives its arguments, environment, health command and mounts."""
    return {
        "name": RUNTIME_CONTAINER,
        "image": plan.image,
        "args": args,
        "env": env,
        **runtime_probes(health_command),
        "resources": container_resources(plan.resources),
        "securityContext": security_context(),
        "volumeMounts": mounts,
    }


def init_container(
    plan: Plan,
    name: str,
    *,
    command: list[str],
    env: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """An init container running ``command`` in the runtime's image (a constant script)."""
    return {
        "name": name,
        "image": plan.image,
        "command": command,
        "env": env,
        # Downloading or creating a model needs memory, not the GPU: the accelerator stays with
        # the runtime.
        "resources": container_resources(plan.resources, drop=(GPU_RESOURCE,)),
        "securityContext": security_context(),
        "volumeMounts": mounts,
    }
