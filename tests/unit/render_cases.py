"""Hand-built inputs for renderer tests: a SmallLanguageModel, the built-in config and a Plan.

Plans are written here rather than produced by the planner so that renderer tests pin what
the renderer does with each decision, whatever the planner decides today.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from slm_operator.api.config import OperatorConfig
from slm_operator.api.kube import SecretKeyRef
from slm_operator.api.parse import parse_document
from slm_operator.api.plan import (
    AutoscalingPlan,
    MemoryPlan,
    Plan,
    PullPolicy,
    RolloutStrategy,
    Scheduling,
    SourceKind,
)
from slm_operator.api.runtime_options import Modelfile
from slm_operator.api.sections import AccessMode
from slm_operator.api.spec import SmallLanguageModel
from slm_operator.catalog.loader import load_config
from slm_operator.contract.runtime import Engine

NAMESPACE = "ai"


@cache
def builtin_config() -> OperatorConfig:
    """The built-in operator configuration (tiers, images, defaults)."""
    return load_config(None)


def make_model(name: str = "m1", namespace: str = NAMESPACE, **spec: Any) -> SmallLanguageModel:
    """A validated SmallLanguageModel; ``spec`` is camelCase as in a YAML file."""
    spec.setdefault("model", {"catalog": "phi-4-mini"})
    doc = {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return parse_document(doc)


def make_plan(model: SmallLanguageModel, config: OperatorConfig | None = None, **overrides: Any) -> Plan:
    """A plausible plan for ``model`` on its tier; ``overrides`` replace any field."""
    config = config or builtin_config()
    tier_name = model.spec.hardware.tier
    tier = config.tiers[tier_name]
    runtime = Engine(tier.runtime)
    gpus = model.spec.hardware.gpus or tier.gpus
    limits = {"memory": f"{int(tier.memory_gib)}Gi"}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    tolerations = [*tier.tolerations, *model.spec.scheduling.tolerations]
    values: dict[str, Any] = {
        "name": model.name,
        "namespace": model.namespace,
        "runtime": runtime,
        "image": config.images.vllm if runtime == Engine.VLLM else config.images.ollama,
        "model_ref": "microsoft/Phi-4-mini-instruct" if runtime == Engine.VLLM else "phi4-mini:3.8b-q4_K_M",
        "source_kind": "hf" if runtime == Engine.VLLM else "ollama",
        "served_name": model.spec.model.served_name or model.name,
        "revision": model.spec.model.revision,
        "quantization": "none" if runtime == Engine.VLLM else "q4_k_m",
        "dtype": "bfloat16" if runtime == Engine.VLLM else "Q4_K_M",
        "tier": tier_name,
        "gpus": gpus,
        "gpu_memory_utilization": tier.gpu_memory_utilization if gpus else None,
        "context_length": model.spec.model.context_length or 8192,
        "max_concurrency": model.spec.max_concurrency,
        "engine_args": list(model.spec.vllm.extra_args),
        "accelerator": str(tier.accelerator),
        "memory": MemoryPlan(),
        "fits": True,
        "scheduling": Scheduling(
            node_selector={**tier.node_selector, **model.spec.scheduling.node_selector},
            node_affinity=list(tier.node_affinity),
            tolerations=tolerations,
            extra_affinity=dict(model.spec.scheduling.affinity),
            priority_class_name=model.spec.scheduling.priority_class_name,
        ),
        "resources": {"requests": {"cpu": tier.cpu, "memory": limits["memory"]}, "limits": limits},
    }
    values.update(overrides)
    for field_name, value in _pod_decisions(model, config, values).items():
        values.setdefault(field_name, value)
    return Plan(**values)


def _pod_decisions(model: SmallLanguageModel, config: OperatorConfig, plan: dict[str, Any]) -> dict[str, Any]:
    """The plan's pod decisions for ``model`` as planning/pod.py makes them,
    written out here so that renderer tests do not depend on planning code."""
    spec = model.spec
    runtime, source_kind = Engine(plan["runtime"]), SourceKind(plan["source_kind"])
    auth = spec.auth
    api_key = None
    if auth.enabled:
        api_key = auth.api_key_secret_ref or SecretKeyRef(name=f"{model.name}-api-key", key="api-key")
    download = PullPolicy.ALWAYS if spec.network.allow_egress else PullPolicy.IF_MISSING
    modelfile = None
    if runtime == Engine.OLLAMA and (spec.ollama.modelfile is not None or source_kind == SourceKind.PVC):
        modelfile = spec.ollama.modelfile or Modelfile()
    pull_secrets = [*config.registries.image_pull_secrets, *(r.name for r in spec.image_pull_secrets)]
    single_attach = spec.storage is not None and spec.storage.access_mode != AccessMode.RWX
    asked = spec.autoscaling
    autoscaling = None
    if asked.enabled:
        cpu_target = asked.target_cpu_utilization_percentage if plan["accelerator"] == "none" else None
        autoscaling = AutoscalingPlan(
            engine=asked.engine,
            min_replicas=asked.min_replicas,
            max_replicas=asked.max_replicas,
            target_in_flight_requests=asked.target_in_flight_requests,
            target_cpu_utilization_percentage=cpu_target,
        )
    return {
        "api_key": api_key,
        "generate_api_key": auth.enabled and auth.api_key_secret_ref is None,
        "hf_token": spec.model_access_secret_ref if runtime == Engine.VLLM else None,
        "modelfile": modelfile,
        "pull_policy": PullPolicy.NEVER if source_kind == SourceKind.PVC else download,
        "hub_offline": not spec.network.allow_egress,
        "image_pull_secrets": list(dict.fromkeys(pull_secrets)),
        "autoscaling": autoscaling,
        "replicas": None if spec.autoscaling.enabled else spec.replicas,
        "min_replicas": spec.autoscaling.min_replicas if spec.autoscaling.enabled else spec.replicas,
        "storage": spec.storage,
        "rollout": RolloutStrategy.RECREATE if single_attach else RolloutStrategy.ROLLING_UPDATE,
    }


@dataclass(frozen=True)
class Case:
    """One renderer input: a model spec plus plan overrides."""

    id: str
    spec: dict[str, Any]
    plan: dict[str, Any] = field(default_factory=dict)
    name: str = "m1"

    def model(self) -> SmallLanguageModel:
        return make_model(self.name, **self.spec)

    def build(self) -> tuple[SmallLanguageModel, Plan]:
        model = self.model()
        return model, make_plan(model, **self.plan)


USER_AFFINITY: dict[str, Any] = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
                    ]
                },
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-7"]}]},
            ]
        },
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]}}
        ],
    },
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 50,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"slm.dev/model": "m1"}},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    },
}

# The renderer's input matrix: every branch of every object kind at least once. The contract
# tests validate all of these against the Kubernetes and Prometheus Operator schemas.
CASES: tuple[Case, ...] = (
    Case("vllm-gpu-small", {"hardware": {"tier": "gpu-small"}}),
    Case(
        "vllm-gated",
        {
            "model": {"catalog": "gemma-3-4b"},
            "hardware": {"tier": "gpu-medium"},
            "modelAccessSecretRef": {"name": "hf-token", "key": "token"},
        },
        {"gated": True, "model_ref": "google/gemma-3-4b-it"},
    ),
    Case(
        "vllm-autoscaling-rwx",
        {
            "hardware": {"tier": "nvidia-l4"},
            "model": {"catalog": "phi-4-mini", "servedName": "phi"},
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5, "targetInFlightRequests": 6},
            "storage": {"size": "40Gi", "accessMode": "ReadWriteMany", "storageClassName": "nfs"},
            "network": {
                "allowFrom": [
                    {"namespaceSelector": {"matchLabels": {"team": "web"}}},
                    {
                        "podSelector": {
                            "matchExpressions": [{"key": "role", "operator": "In", "values": ["api"]}]
                        }
                    },
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                ]
            },
        },
    ),
    Case(
        "vllm-pvc-source",
        {"model": {"source": "pvc://weights/phi-4-mini"}, "hardware": {"tier": "gpu-small"}},
        {"source_kind": "pvc", "model_ref": "/models/phi-4-mini", "source_claim": "weights"},
    ),
    Case(
        "vllm-no-auth-no-egress",
        {"hardware": {"tier": "gpu-small"}, "auth": {"enabled": False}, "network": {"allowEgress": False}},
    ),
    Case(
        "vllm-external-key",
        {
            "hardware": {"tier": "gpu-small"},
            "auth": {"apiKeySecretRef": {"name": "keys", "key": "team-keys"}},
        },
    ),
    Case(
        "vllm-tp2-fp8kv-revision",
        {
            "model": {"catalog": "qwen3-8b", "revision": "v1.0"},
            "hardware": {"tier": "gpu-large", "gpus": 2},
            "vllm": {"extraArgs": ["--enable-prefix-caching"]},
            "replicas": 3,
        },
        {"kv_cache_dtype": "fp8", "engine_args": ["--quantization", "fp8", "--enable-prefix-caching"]},
    ),
    Case(
        "vllm-user-scheduling",
        {
            "hardware": {"tier": "gpu-small"},
            "scheduling": {
                "nodeSelector": {"pool": "inference"},
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    {
                        "key": "dedicated",
                        "operator": "Equal",
                        "value": "ml",
                        "effect": "NoExecute",
                        "tolerationSeconds": 60,
                    },
                ],
                "affinity": USER_AFFINITY,
                "priorityClassName": "inference-high",
            },
        },
    ),
    Case("ollama-cpu", {"hardware": {"tier": "cpu"}}),
    Case(
        "ollama-edge-modelfile",
        {
            "hardware": {"tier": "edge"},
            "model": {"catalog": "smollm2-135m", "servedName": "tech"},
            "ollama": {
                "modelfile": {
                    "system": "Be brief.",
                    "template": "{{ .Prompt }}",
                    "parameters": {"temperature": 0.3, "stop": ["<|im_end|>", "<|user|>"]},
                    "messages": [
                        {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello."},
                    ],
                }
            },
            "monitoring": {"serviceMonitor": "disabled", "prometheusRule": "disabled"},
        },
        {"context_length": 4096},
    ),
    Case(
        "ollama-rwo-storage",
        {"hardware": {"tier": "cpu"}, "storage": {"size": "10Gi"}, "network": {"allowEgress": False}},
    ),
    Case(
        "ollama-autoscaling-cpu",
        {
            "hardware": {"tier": "cpu"},
            "autoscaling": {
                "enabled": True,
                "minReplicas": 1,
                "maxReplicas": 3,
                "targetCPUUtilizationPercentage": 60,
                "targetInFlightRequests": None,
            },
        },
    ),
    Case(
        "vllm-autoscaling-keda",
        {
            "hardware": {"tier": "nvidia-l4"},
            "model": {"catalog": "phi-4-mini", "servedName": "phi"},
            "autoscaling": {"enabled": True, "engine": "keda", "minReplicas": 1, "maxReplicas": 4},
        },
    ),
    Case(
        "ollama-autoscaling-keda-cpu",
        {
            "hardware": {"tier": "cpu"},
            "autoscaling": {"enabled": True, "engine": "keda", "maxReplicas": 3, "targetInFlightRequests": 2},
        },
    ),
    Case(
        "ollama-pvc-source",
        {"model": {"source": "pvc://gguf/smollm2.gguf"}, "hardware": {"tier": "edge"}},
        {"source_kind": "pvc", "model_ref": "/models/smollm2.gguf", "source_claim": "gguf"},
    ),
    Case(
        "ollama-forced-monitoring-replicas",
        {
            "hardware": {"tier": "cpu"},
            "replicas": 2,
            "monitoring": {"serviceMonitor": "enabled", "prometheusRule": "enabled"},
        },
    ),
)


def case(case_id: str) -> Case:
    """The case named ``case_id``."""
    return next(c for c in CASES if c.id == case_id)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rendered objects keyed by kind (each kind appears at most once per model)."""
    out: dict[str, dict[str, Any]] = {}
    for obj in objects:
        assert obj["kind"] not in out, f"two {obj['kind']} objects"
        out[obj["kind"]] = obj
    return out


def containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container of a Deployment (init containers too), keyed by name."""
    pod = deployment["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*pod.get("initContainers", []), *pod["containers"]]}
