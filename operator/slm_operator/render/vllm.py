"""The vLLM runtime container, its LoRA flags, and the ``fetch-adapters`` init container."""

from __future__ import annotations

import json
from typing import Any

from slm_operator.api.config import OperatorConfig
from slm_operator.api.plan import MODELS_DIR, LoraPlan, Plan, SourceKind
from slm_operator.contract.names import VLLM_PORT
from slm_operator.render.containers import (
    ADAPTER_CACHE_DIR,
    ADAPTERS_DIR,
    FETCH_ADAPTERS_CONTAINER,
    HF_HOME,
    HF_TOKEN_DIR,
    HF_TOKEN_FILE,
    HF_TOKEN_VOLUME,
    HOME_DIR,
    LOCALHOST,
    SHM_DIR,
    SHM_VOLUME,
    env_var,
    init_container,
    mount,
    runtime_container,
    runtime_mounts,
)

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


# vLLM's /health through the image's Python (the vllm/vllm-openai images ship python3 on PATH:
# images derived from them start the server with `python3 -m vllm.entrypoints.openai.api_server`).
VLLM_HEALTH_COMMAND = [
    "python3",
    "-c",
    f"import urllib.request; urllib.request.urlopen('http://{LOCALHOST}:{VLLM_PORT}/health', timeout=8)",
]


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
        env_var("HOME", HOME_DIR),
        env_var("XDG_CACHE_HOME", f"{HOME_DIR}/.cache"),
        env_var("HF_HOME", HF_HOME),
        *(env_var(name, "1") for name in quiet),
    ]
    endpoint = config.registries.hugging_face_endpoint
    if endpoint:
        # huggingface_hub (which vLLM downloads with) reads the Hub's address from HF_ENDPOINT.
        env.append(env_var("HF_ENDPOINT", endpoint))
    if plan.hub_offline:
        # The NetworkPolicy blocks the Hub: use the cached files instead of waiting for timeouts.
        env.append(env_var("HF_HUB_OFFLINE", "1"))
    return env


def _hub_token(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The Hugging Face token file (environment and mount) of a gated model, if any."""
    if plan.hf_token is None:
        return [], []
    return (
        [env_var("HF_TOKEN_PATH", f"{HF_TOKEN_DIR}/{HF_TOKEN_FILE}")],
        [mount(HF_TOKEN_VOLUME, HF_TOKEN_DIR, read_only=True)],
    )


def vllm_container(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """The vLLM runtime container, bound to localhost; exec probes (the kubelet cannot reach it)."""
    env = _hub_env(plan, config, quiet=("VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"))
    mounts = [*runtime_mounts(plan), mount(SHM_VOLUME, SHM_DIR)]
    mounts += [
        mount(adapter_volume_name(i), f"{ADAPTERS_DIR}/{claim}", read_only=True)
        for i, claim in enumerate(adapter_claims(plan))
    ]
    token_env, token_mounts = _hub_token(plan)
    return runtime_container(
        plan,
        args=[*vllm_args(plan), *lora_args(plan)],
        env=[*env, *token_env],
        health_command=VLLM_HEALTH_COMMAND,
        mounts=[*mounts, *token_mounts],
    )


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
        env_var("ADAPTERS", json.dumps(hub_adapters(lora), separators=(",", ":"))),
        env_var("ADAPTERS_DIR", ADAPTER_CACHE_DIR),
        env_var("PULL_POLICY", str(lora.pull_policy)),
    ]
    token_env, token_mounts = _hub_token(plan)
    return init_container(
        plan,
        FETCH_ADAPTERS_CONTAINER,
        command=["python3", "-c", FETCH_ADAPTERS_SCRIPT],
        env=[*env, *token_env],
        mounts=[*runtime_mounts(plan), *token_mounts],
    )
