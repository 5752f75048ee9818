"""The model's Deployment: runtime container + gateway sidecar in a hardened pod."""

from __future__ import annotations

from typing import Any

from slm_operator.api.config import OperatorConfig
from slm_operator.api.kube import SecretKeyRef
from slm_operator.api.plan import Plan, RolloutStrategy
from slm_operator.contract.kinds import DEPLOYMENT
from slm_operator.contract.names import (
    API_KEY_FILE_KEY,
    cache_pvc_name,
    common_labels,
    modelfile_configmap_name,
)
from slm_operator.contract.runtime import Engine
from slm_operator.render import containers as c
from slm_operator.render.gateway_sidecar import gateway_container
from slm_operator.render.meta import child_metadata, label_selector
from slm_operator.render.modelfile import MODELFILE_KEY
from slm_operator.render.ollama import ollama_container, pull_init_container
from slm_operator.render.scheduling import scheduling_fields
from slm_operator.render.vllm import (
    adapter_claims,
    adapter_volume_name,
    fetch_adapters_container,
    hub_adapters,
    vllm_container,
)

# One fixed non-root identity for the whole pod: the gateway image's own user (Dockerfile:
# USER 65532). The vLLM and Ollama images run as root by default, but neither needs it: their
# programs and libraries are world-readable, and everything they write (HOME, the HF/Ollama
# cache, /tmp, /dev/shm) is an emptyDir or the cache claim, which fsGroup makes writable.
RUN_AS_ID = 65532
SHM_SIZE_PER_GPU = 2  # GiB of /dev/shm per GPU (NCCL and the engine's worker processes use it)
TMP_SIZE_LIMIT = "1Gi"
HOME_SIZE_LIMIT = "4Gi"  # torch/triton compile caches land under HOME
GATEWAY_TMP_SIZE_LIMIT = "64Mi"
SECRET_FILE_MODE = 0o440  # owner and group (fsGroup) may read the key; nobody else
# The startup budget (30 minutes, see containers.py) plus slack: a first rollout that is
# still downloading weights must not be reported as failed progress.
PROGRESS_DEADLINE_SECONDS = 2400


def pod_security_context() -> dict[str, Any]:
    """Restricted-PSS pod security context with a fixed non-root UID/GID."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
        "runAsGroup": RUN_AS_ID,
        "fsGroup": RUN_AS_ID,
        # A model cache holds many large files: chown them only when the volume root is wrong,
        # not on every mount.
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _cache_volume(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    if plan.storage is not None:
        return {"name": c.CACHE_VOLUME, "persistentVolumeClaim": {"claimName": cache_pvc_name(plan.name)}}
    return {"name": c.CACHE_VOLUME, "emptyDir": {"sizeLimit": config.defaults.cache_size_limit}}


def _api_key_volume(api_key: SecretKeyRef) -> dict[str, Any]:
    return {
        "name": c.API_KEY_VOLUME,
        "secret": {
            "secretName": api_key.name,
            "items": [{"key": api_key.key, "path": API_KEY_FILE_KEY}],
            "defaultMode": SECRET_FILE_MODE,
        },
    }


def render_volumes(plan: Plan, config: OperatorConfig) -> list[dict[str, Any]]:
    """Every volume of the pod; the root filesystem stays read-only."""
    volumes: list[dict[str, Any]] = [
        {"name": c.TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
        {"name": c.HOME_VOLUME, "emptyDir": {"sizeLimit": HOME_SIZE_LIMIT}},
        _cache_volume(plan, config),
    ]
    if plan.runtime is Engine.VLLM:
        shm = f"{SHM_SIZE_PER_GPU * max(plan.gpus, 1)}Gi"
        volumes.append({"name": c.SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm}})
    if plan.api_key is not None:
        volumes.append(_api_key_volume(plan.api_key))
    token_ref = plan.hf_token
    if token_ref is not None:
        volumes.append(
            {
                "name": c.HF_TOKEN_VOLUME,
                "secret": {
                    "secretName": token_ref.name,
                    "items": [{"key": token_ref.key, "path": c.HF_TOKEN_FILE}],
                    "defaultMode": SECRET_FILE_MODE,
                },
            }
        )
    if plan.modelfile is not None:
        volumes.append(
            {
                "name": c.MODELFILE_VOLUME,
                "configMap": {
                    "name": modelfile_configmap_name(plan.name),
                    "items": [{"key": MODELFILE_KEY, "path": MODELFILE_KEY}],
                },
            }
        )
    if plan.source_claim:
        volumes.append(
            {
                "name": c.MODELS_VOLUME,
                "persistentVolumeClaim": {"claimName": plan.source_claim, "readOnly": True},
            }
        )
    if plan.lora is not None:
        volumes += [
            {
                "name": adapter_volume_name(index),
                "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
            }
            for index, claim in enumerate(adapter_claims(plan))
        ]
    volumes.append({"name": c.GATEWAY_TMP_VOLUME, "emptyDir": {"sizeLimit": GATEWAY_TMP_SIZE_LIMIT}})
    return volumes


def _strategy(plan: Plan) -> dict[str, Any]:
    """The rollout strategy the plan chose (planning/pod.py says why)."""
    if plan.rollout is RolloutStrategy.RECREATE:
        return {"type": str(plan.rollout)}
    return {"type": str(plan.rollout), "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def render_pod_spec(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """The pod template's spec."""
    pod: dict[str, Any] = {
        # The pod never talks to the Kubernetes API, so it gets no token to leak.
        "automountServiceAccountToken": False,
        # Service environment variables would leak the namespace's topology into the runtime.
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
    }
    if plan.runtime is Engine.VLLM:
        runtime = vllm_container(plan, config)
        if plan.lora is not None and hub_adapters(plan.lora):
            pod["initContainers"] = [fetch_adapters_container(plan, plan.lora, config)]
    else:
        pod["initContainers"] = [pull_init_container(plan, config)]
        runtime = ollama_container(plan, config)
    pod["containers"] = [runtime, gateway_container(plan, config)]
    pod["volumes"] = render_volumes(plan, config)
    if plan.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in plan.image_pull_secrets]
    pod.update(scheduling_fields(plan))
    return pod


def render_deployment(plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """Deployment ``<name>``; ``replicas`` is left out while an HPA owns the count."""
    spec: dict[str, Any] = {}
    if plan.replicas is not None:
        spec["replicas"] = plan.replicas
    spec.update(
        {
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
            "selector": label_selector(plan),
            "strategy": _strategy(plan),
            "template": {
                "metadata": {"labels": common_labels(plan.name, str(plan.runtime))},
                "spec": render_pod_spec(plan, config),
            },
        }
    )
    return {
        "apiVersion": DEPLOYMENT.api_version,
        "kind": DEPLOYMENT.kind,
        "metadata": child_metadata(plan, plan.name),
        "spec": spec,
    }
