"""The containers of a model pod: the runtime (vLLM or Ollama), Ollama's pull init container,
and the gateway sidecar that is the pod's only door.

Every value reaches a runtime as an argv element or an environment variable; nothing is ever
spliced into a shell string (the init container's script is a constant).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from slm_operator.api.config import Engine, OperatorConfig
from slm_operator.api.plan import LoraPlan, Plan, SourceKind
from slm_operator.render.modelfile import MODELFILE_MOUNT_DIR, MODELFILE_PATH
from slm_operator.render.names import (
    API_KEY_FILE_KEY,
    API_KEY_MOUNT_DIR,
    GATEWAY_PORT,
    GATEWAY_PORT_NAME,
    METRICS_PORT,
    METRICS_PORT_NAME,
    OLLAMA_PORT,
    VLLM_PORT,
)

LOCALHOST = "127.0.0.1"
# Writable mounts (the root filesystem is read-only).
TMP_DIR = "/tmp"  # noqa: S108 - an emptyDir of the pod's own, not the node's /tmp
HOME_DIR = "/home/slm"
CACHE_DIR = "/var/cache/slm"
HF_HOME = f"{CACHE_DIR}/huggingface"
OLLAMA_MODELS = f"{CACHE_DIR}/ollama"
SHM_DIR = "/dev/shm"  # noqa: S108 - a memory emptyDir of the pod's own
MODELS_DIR = "/models"
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

GATEWAY_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}

# Probes go to the gateway, which reports /readyz only once the runtime lists the served model.
# The startup budget covers the first download of the weights: 180 x 10 s = 30 minutes before
# the kubelet gives up and restarts the pod (liveness and readiness only start after it).
STARTUP_PERIOD_SECONDS = 10
STARTUP_FAILURE_THRESHOLD = 180

# The init container's script: a constant. Values arrive as environment variables, which the
# shell expands as single words inside double quotes, so no value can become shell syntax.
# `ollama pull` talks to a running server, hence the temporary background `ollama serve`.
PULL_SCRIPT = """\
set -eu
log="${TMPDIR:-/tmp}/ollama-pull-serve.log"
ollama serve >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
waited=0
until ollama list >/dev/null 2>&1; do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "ollama serve exited early:" >&2
    cat "$log" >&2
    exit 1
  fi
  if [ "$waited" -ge "$SERVER_START_TIMEOUT" ]; then
    echo "ollama serve did not answer within $SERVER_START_TIMEOUT s" >&2
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
case "$PULL_POLICY" in
  always) ollama pull "$MODEL_TAG" || ollama show "$MODEL_TAG" >/dev/null ;;
  if-missing) ollama show "$MODEL_TAG" >/dev/null 2>&1 || ollama pull "$MODEL_TAG" ;;
  never) ;;
  *) echo "unknown PULL_POLICY" >&2; exit 2 ;;
esac
if [ -n "${MODELFILE:-}" ]; then
  ollama create "$SERVED_NAME" -f "$MODELFILE"
elif [ "$SERVED_NAME" != "$MODEL_TAG" ]; then
  ollama cp "$MODEL_TAG" "$SERVED_NAME"
fi
kill "$server"
wait "$server" || true
"""
SERVER_START_TIMEOUT_SECONDS = 120

# The fetch-adapters init container's program: a constant; the adapters arrive as JSON in the
# environment. huggingface_hub's snapshot_download reads HF_ENDPOINT, HF_TOKEN_PATH and
# HF_HUB_OFFLINE itself (https://huggingface.co/docs/huggingface_hub/package_reference/environment_variables).
# While egress is open every start re-checks the pinned revision (files already in local_dir are
# not downloaded again) and falls back to the cached copy if the Hub cannot be reached; once it
# is closed a cached adapter is used as is.
FETCH_ADAPTERS_SCRIPT = """\
import json, os, sys
from huggingface_hub import snapshot_download
policy = os.environ["PULL_POLICY"]
for adapter in json.loads(os.environ["ADAPTERS"]):
    name, repo, revision = adapter["name"], adapter["repo"], adapter["revision"]
    target = os.path.join(os.environ["ADAPTERS_DIR"], name)
    cached = os.path.isfile(os.path.join(target, "adapter_config.json"))
    if cached and policy == "if-missing":
        print(f"adapter {name}: using the cached copy", flush=True)
        continue
    print(f"adapter {name}: {repo} at {revision or 'the default branch'}", flush=True)
    try:
        snapshot_download(repo_id=repo, revision=revision, local_dir=target)
    except Exception as error:
        if not cached:
            sys.exit(f"adapter {name}: cannot download {repo}: {error}")
        print(f"adapter {name}: download failed ({error}); using the cached copy", flush=True)
"""


def security_context() -> dict[str, Any]:
    """The restricted-PSS container security context every container of the pod carries."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _mount(name: str, path: str, *, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    return mount


def _runtime_mounts(plan: Plan) -> list[dict[str, Any]]:
    mounts = [_mount(TMP_VOLUME, TMP_DIR), _mount(HOME_VOLUME, HOME_DIR), _mount(CACHE_VOLUME, CACHE_DIR)]
    if plan.source_claim:
        mounts.append(_mount(MODELS_VOLUME, MODELS_DIR, read_only=True))
    return mounts


def _resources(resources: dict[str, dict[str, str]], *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in ("requests", "limits"):
        values = {k: v for k, v in sorted(resources.get(section, {}).items()) if k not in drop}
        if values:
            out[section] = values
    return out


def adapter_claims(plan: Plan) -> list[str]:
    """The claims holding pvc:// adapters, each once, in the order they first appear; the
    model's own claim is already mounted at /models and is not mounted twice."""
    claims: list[str] = []
    for adapter in plan.lora.adapters if plan.lora is not None else []:
        scheme, _, rest = adapter.source.partition("://")
        claim = rest.partition("/")[0]
        if scheme == SourceKind.PVC and claim not in claims and claim != plan.source_claim:
            claims.append(claim)
    return claims


def adapter_volume_name(index: int) -> str:
    return f"adapters-{index}"


def adapter_path(name: str, source: str, plan: Plan) -> str:
    """Where vLLM loads an adapter from: the directory the fetch-adapters init container filled
    (Hub adapters), or the adapter's directory on its read-only claim."""
    scheme, _, rest = source.partition("://")
    if scheme == SourceKind.HF:
        return f"{ADAPTER_CACHE_DIR}/{name}"
    claim, _, path = rest.partition("/")
    root = MODELS_DIR if claim == plan.source_claim else f"{ADAPTERS_DIR}/{claim}"
    return f"{root}/{path}" if path else root


def lora_args(plan: Plan) -> list[str]:
    """vLLM's LoRA flags: static adapters only (https://docs.vllm.ai/en/v0.11.0/features/lora.html,
    "Serving LoRA Adapters"). Each adapter is served under its own name (--lora-modules
    name=path) and listed by /v1/models; runtime loading stays off (VLLM_ALLOW_RUNTIME_LORA_UPDATING
    is never set, and the gateway forwards no /v1/load_lora_adapter route)."""
    if plan.lora is None or not plan.lora.adapters:
        return []
    adapters = plan.lora.adapters
    return [
        "--enable-lora",
        "--max-loras",
        str(plan.lora.max_loras),
        "--max-lora-rank",
        str(plan.lora.max_rank),
        # Adapters beyond the GPU slots wait in a CPU cache of this size instead of being read
        # from disk again (vLLM's default is maxLoras).
        "--max-cpu-loras",
        str(max(len(adapters), plan.lora.max_loras)),
        "--lora-modules",
        *(f"{a.name}={adapter_path(a.name, a.source, plan)}" for a in adapters),
    ]


def vllm_args(plan: Plan) -> list[str]:
    """``vllm serve`` arguments (the image's ENTRYPOINT is already ``vllm serve``)."""
    args = [
        plan.model_ref,
        "--host",
        LOCALHOST,
        "--port",
        str(VLLM_PORT),
        "--served-model-name",
        plan.served_name,
        "--max-model-len",
        str(plan.context_length),
        "--max-num-seqs",
        str(plan.max_concurrency),
    ]
    if plan.gpu_memory_utilization is not None:
        args += ["--gpu-memory-utilization", str(plan.gpu_memory_utilization)]
    args += ["--dtype", plan.dtype]
    if plan.gpus > 0:
        args += ["--tensor-parallel-size", str(plan.gpus)]
    if plan.revision:
        args += ["--revision", plan.revision]
    if plan.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", plan.kv_cache_dtype]
    # Quantization flags only come through engine_args: pre-quantized checkpoints are detected
    # from their config, and online quantization is the variant's own argument.
    return args + list(plan.engine_args)


def _hub_env(plan: Plan, config: OperatorConfig, *, quiet: tuple[str, ...]) -> list[dict[str, Any]]:
    """Where huggingface_hub (vLLM's downloader) caches, which Hub it asks, and whether it may;
    ``quiet`` names variables set to 1 to turn telemetry off."""
    env = [
        _env("HOME", HOME_DIR),
        _env("XDG_CACHE_HOME", f"{HOME_DIR}/.cache"),
        _env("HF_HOME", HF_HOME),
        *(_env(name, "1") for name in quiet),
    ]
    endpoint = config.registries.hugging_face_endpoint
    if endpoint:
        # huggingface_hub (which vLLM downloads with) reads the Hub's address from HF_ENDPOINT.
        env.append(_env("HF_ENDPOINT", endpoint))
    if plan.hub_offline:
        # The NetworkPolicy blocks the Hub: use the cached files instead of waiting for timeouts.
        env.append(_env("HF_HUB_OFFLINE", "1"))
    return env


def _hub_token(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The Hugging Face token file (environment and mount) of a gated model, if any."""
    if plan.hf_token is None:
        return [], []
    return (
        [_env("HF_TOKEN_PATH", f"{HF_TOKEN_DIR}/{HF_TOKEN_FILE}")],
        [_mount(HF_TOKEN_VOLUME, HF_TOKEN_DIR, read_only=True)],
    )


def vllm_container(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """The vLLM runtime container, bound to localhost; exec probes (the kubelet cannot reach it)."""
    env = _hub_env(plan, config, quiet=("VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"))
    mounts = [*_runtime_mounts(plan), _mount(SHM_VOLUME, SHM_DIR)]
    mounts += [
        _mount(adapter_volume_name(i), f"{ADAPTERS_DIR}/{claim}", read_only=True)
        for i, claim in enumerate(adapter_claims(plan))
    ]
    token_env, token_mounts = _hub_token(plan)
    return {
        "name": RUNTIME_CONTAINER,
        "image": plan.image,
        "args": [*vllm_args(plan), *lora_args(plan)],
        "env": [*env, *token_env],
        **runtime_probes(VLLM_HEALTH_COMMAND),
        "resources": _resources(plan.resources),
        "securityContext": security_context(),
        "volumeMounts": [*mounts, *token_mounts],
    }


def hub_adapters(lora: LoraPlan) -> list[dict[str, str | None]]:
    """The hf:// adapters as the fetch script reads them: name, repo id and revision (or None)."""
    found: list[dict[str, str | None]] = []
    for adapter in lora.adapters:
        scheme, _, rest = adapter.source.partition("://")
        if scheme == SourceKind.HF:
            repo, _, revision = rest.partition("@")
            found.append({"name": adapter.name, "repo": repo, "revision": revision or None})
    return found


def fetch_adapters_container(plan: Plan, lora: LoraPlan, config: OperatorConfig) -> dict[str, Any]:
    """vLLM's ``fetch-adapters`` init container: Hub adapters, at their pinned revisions, into the
    model cache before vLLM starts (``--lora-modules`` has no revision field, and a failed
    download then shows as a failed init container rather than a crashing runtime)."""
    env = [
        *_hub_env(plan, config, quiet=("HF_HUB_DISABLE_TELEMETRY",)),
        # JSON data read by the constant script below; never seen by a shell.
        _env("ADAPTERS", json.dumps(hub_adapters(lora), separators=(",", ":"))),
        _env("ADAPTERS_DIR", ADAPTER_CACHE_DIR),
        _env("PULL_POLICY", str(lora.pull_policy)),
    ]
    token_env, token_mounts = _hub_token(plan)
    return {
        "name": FETCH_ADAPTERS_CONTAINER,
        "image": plan.image,
        "command": ["python3", "-c", FETCH_ADAPTERS_SCRIPT],
        "env": [*env, *token_env],
        "resources": _resources(plan.resources, drop=("nvidia.com/gpu",)),
        "securityContext": security_context(),
        "volumeMounts": [*_runtime_mounts(plan), *token_mounts],
    }


def _ollama_env() -> list[dict[str, Any]]:
    return [
        _env("HOME", HOME_DIR),
        _env("OLLAMA_HOST", f"{LOCALHOST}:{OLLAMA_PORT}"),
        _env("OLLAMA_MODELS", OLLAMA_MODELS),
    ]


def ollama_container(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """The Ollama runtime container (``ollama serve`` on localhost)."""
    env = [
        *_ollama_env(),
        _env("OLLAMA_NUM_PARALLEL", str(plan.max_concurrency)),
        _env("OLLAMA_CONTEXT_LENGTH", str(plan.context_length)),
        _env("OLLAMA_KEEP_ALIVE", config.defaults.ollama_keep_alive),
        # One model per pod: the served model is the only one that may occupy memory.
        _env("OLLAMA_MAX_LOADED_MODELS", "1"),
    ]
    return {
        "name": RUNTIME_CONTAINER,
        "image": plan.image,
        "args": ["serve"],
        "env": env,
        **runtime_probes(OLLAMA_HEALTH_COMMAND),
        "resources": _resources(plan.resources),
        "securityContext": security_context(),
        "volumeMounts": _runtime_mounts(plan),
    }


def ollama_pull_ref(ref: str, registry: str | None) -> str:
    """The name ``ollama pull`` fetches: ``ref`` from the configured registry, if any.

    Ollama names models ``host/namespace/model:tag`` with registry.ollama.ai and ``library`` as
    defaults (https://github.com/ollama/ollama/blob/v0.12.6/types/model/name.go). A ref that
    already names a host is left alone; a registry given as ``host/namespace`` replaces the
    ``library`` namespace of un-namespaced tags.
    """
    if not registry or ref.count("/") >= 2:
        return ref
    host, _, namespace = registry.partition("/")
    if "/" in ref:
        return f"{host}/{ref}"
    return f"{host}/{namespace or 'library'}/{ref}"


def pull_init_container(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """Ollama's ``pull-model`` init container: pull the tag, then create or copy the served name."""
    with_modelfile = plan.modelfile is not None
    model_tag = plan.model_ref
    if plan.source_kind is SourceKind.OLLAMA:
        model_tag = ollama_pull_ref(plan.model_ref, config.registries.ollama)
    env = [
        *_ollama_env(),
        _env("MODEL_TAG", model_tag),
        _env("SERVED_NAME", plan.served_name),
        # Only set with a Modelfile: the API server drops an empty ``value`` (omitempty), so an
        # empty one would differ from the stored object forever; the script reads unset as "".
        *([_env("MODELFILE", MODELFILE_PATH)] if with_modelfile else []),
        _env("PULL_POLICY", str(plan.pull_policy)),
        _env("SERVER_START_TIMEOUT", str(SERVER_START_TIMEOUT_SECONDS)),
    ]
    mounts = _runtime_mounts(plan)
    if with_modelfile:
        mounts.append(_mount(MODELFILE_VOLUME, MODELFILE_MOUNT_DIR, read_only=True))
    return {
        "name": PULL_CONTAINER,
        "image": plan.image,
        "command": ["/bin/sh", "-c", PULL_SCRIPT],
        "env": env,
        # Creating a model needs memory, not the GPU: the accelerator stays with the runtime.
        "resources": _resources(plan.resources, drop=("nvidia.com/gpu",)),
        "securityContext": security_context(),
        "volumeMounts": mounts,
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


# The runtime listens on 127.0.0.1 only, out of the kubelet's HTTP reach, so its own liveness
# is an exec probe with a constant command (no user input): vLLM's /health through the image's
# Python, Ollama's own CLI (`ollama list` asks the local server, OLLAMA_HOST is in the env).
# A hung runtime is then restarted, not just marked unready by the gateway's /readyz. The
# startup probe holds liveness back while vLLM downloads and loads the weights. (The
# vllm/vllm-openai images ship python3 on PATH: images derived from them start the server with
# `python3 -m vllm.entrypoints.openai.api_server`; Ollama's image is its CLI.)
VLLM_HEALTH_COMMAND = [
    "python3",
    "-c",
    f"import urllib.request; urllib.request.urlopen('http://{LOCALHOST}:{VLLM_PORT}/health', timeout=8)",
]
OLLAMA_HEALTH_COMMAND = ["ollama", "list"]


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


def _http_probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": GATEWAY_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def gateway_container(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """The gateway sidecar: API key check, metrics, health, streaming proxy to the runtime."""
    mounts = [_mount(GATEWAY_TMP_VOLUME, TMP_DIR)]
    if plan.api_key is not None:
        mounts.append(_mount(API_KEY_VOLUME, API_KEY_MOUNT_DIR, read_only=True))
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
