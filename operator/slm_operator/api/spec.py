"""The typed model of a SmallLanguageModel's ``spec`` (reference: docs/api.md).

This module and the sections it assembles (:mod:`~slm_operator.api.sections`,
:mod:`~slm_operator.api.runtime_options`, :mod:`~slm_operator.api.kube`) are the single source of
truth for the API: the CRD's OpenAPI schema is generated from these classes (see
:mod:`slm_operator.api.crd`), and the operator, ``slmctl plan`` and ``slmctl render`` all parse
user input through :mod:`slm_operator.api.parse`, whose errors name the offending field path
(``spec.model.contextLength``) so users know what to change. The patterns the fields must match
are in :mod:`slm_operator.api.patterns`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator

from slm_operator.api.base import ApiModel, cel_rules, located_errors, no_dot_segments, no_latest
from slm_operator.api.kube import LocalObjectReference, ResourceRequirements, SecretKeyRef
from slm_operator.api.patterns import (
    CATALOG_ID_PATTERN,
    DOT_SEGMENT,
    IMAGE_PATTERN,
    REVISION_PATTERN,
    SERVED_NAME_PATTERN,
    SOURCE_PATTERN,
    ollama_host_problem,
)
from slm_operator.api.runtime_options import MAX_ADAPTERS, Adapter, Lora, OllamaOptions, VllmOptions
from slm_operator.api.sections import (
    AccessMode,
    Auth,
    Autoscaling,
    Hardware,
    Monitoring,
    Network,
    Scheduling,
    Storage,
)
from slm_operator.contract.runtime import Engine

API_GROUP = "slm.dev"
API_VERSION = "v1alpha1"
KIND = "SmallLanguageModel"
PLURAL = "smalllanguagemodels"
SINGULAR = "smalllanguagemodel"
SHORT_NAMES = ("slm", "slms")
# The apiVersion of a SmallLanguageModel document.
API_GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"


class Runtime(StrEnum):
    """``spec.runtime``: a concrete :class:`~slm_operator.contract.runtime.Engine`, or ``auto``.

    A type of its own because only a request may say ``auto`` (the planner resolves it); the
    concrete members take their values from ``Engine``, so the two cannot drift apart.
    """

    AUTO = "auto"
    VLLM = Engine.VLLM.value
    OLLAMA = Engine.OLLAMA.value


class Quantization(StrEnum):
    """Weight formats a user may ask for; ``auto`` lets the planner choose.

    ``none`` is the original (bf16/fp16) checkpoint; ``fp8``/``int8``/``int4``/``awq``/``gptq``
    are vLLM checkpoint formats; ``q8_0``/``q4_k_m``/``q4_0`` are Ollama GGUF quantizations.
    """

    AUTO = "auto"
    NONE = "none"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"
    AWQ = "awq"
    GPTQ = "gptq"
    Q8_0 = "q8_0"
    Q4_K_M = "q4_k_m"
    Q4_0 = "q4_0"


def _ollama_registry_host(value: Any) -> Any:
    """An ``ollama://host/namespace/model:tag`` source names its registry host clearly when bad.

    Runs before the pattern, so a bad host is reported as such rather than as a pattern mismatch.
    """
    if isinstance(value, str) and value.startswith("ollama://"):
        parts = value.removeprefix("ollama://").split("/")
        if len(parts) > 3:
            raise ValueError(
                "an Ollama source is ollama://[host/][namespace/]model[:tag], at most three parts"
            )
        if len(parts) == 3 and (problem := ollama_host_problem(parts[0])) is not None:
            raise ValueError(problem)
    return value


class ModelRef(ApiModel):
    """Which model to serve: a catalog id, or an explicit source."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "has(self.catalog) != has(self.source)",
                "spec.model: exactly one of catalog and source must be set",
            )
        )
    )

    catalog: str | None = Field(
        default=None,
        pattern=rf"^{CATALOG_ID_PATTERN}$",
        max_length=63,
        description="A catalog id (see `slmctl catalog`), e.g. phi-4-mini. Exactly one of catalog and "
        "source.",
    )
    source: (
        Annotated[
            str,
            Field(pattern=SOURCE_PATTERN, max_length=300),
            BeforeValidator(_ollama_registry_host),
            AfterValidator(no_dot_segments),
        ]
        | None
    ) = Field(
        default=None,
        json_schema_extra=cel_rules(
            (
                f"!self.matches('{DOT_SEGMENT}')",
                "spec.model.source: a path may not contain '.' or '..' segments",
            )
        ),
        description=(
            "An explicit model source instead of a catalog id: hf://org/repo, ollama://name:tag "
            "(or ollama://host/namespace/name:tag from another registry) or pvc://claim/path. Exactly "
            "one of catalog and source."
        ),
    )
    parameters_billions: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="Parameter count in billions for sources outside the catalog; without it the memory "
        "fit is unchecked.",
    )
    revision: str | None = Field(
        default=None,
        pattern=REVISION_PATTERN,
        max_length=128,
        description="Hugging Face revision (branch, tag or commit) to serve; default the repository's main.",
    )
    served_name: str | None = Field(
        default=None,
        pattern=SERVED_NAME_PATTERN,
        max_length=128,
        description="The OpenAI 'model' name clients send; default metadata.name.",
    )
    context_length: int | None = Field(
        default=None,
        ge=256,
        le=1_048_576,
        description="Maximum tokens per sequence served; default min(model maximum, 8192).",
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelRef:
        if (self.catalog is None) == (self.source is None):
            raise ValueError("exactly one of catalog and source must be set")
        return self


# Parenthesised: CEL's ?: binds looser than ||, so the rule embedding it needs the brackets.
_ONE_REPLICA_AT_MOST = (
    "((has(self.autoscaling) && has(self.autoscaling.enabled) && self.autoscaling.enabled) "
    "? (has(self.autoscaling.maxReplicas) ? self.autoscaling.maxReplicas : 4) <= 1 "
    ": (has(self.replicas) ? self.replicas : 1) <= 1)"
)


class SmallLanguageModelSpec(ApiModel):
    """The desired state of one small-language-model inference service."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "!has(self.storage) || (has(self.storage.accessMode) && self.storage.accessMode == "
                f"'ReadWriteMany') || {_ONE_REPLICA_AT_MOST}",
                "spec.storage.accessMode: ReadWriteOnce attaches to one node only; use ReadWriteMany or "
                "one replica",
            ),
            (
                "!(has(self.runtime) && self.runtime == 'ollama' && has(self.vllm) "
                "&& has(self.vllm.extraArgs) && size(self.vllm.extraArgs) > 0)",
                "spec.vllm.extraArgs: only used by vLLM, but spec.runtime is ollama",
            ),
            (
                "!(has(self.runtime) && self.runtime == 'vllm' && has(self.ollama) "
                "&& has(self.ollama.modelfile))",
                "spec.ollama.modelfile: only used by Ollama, but spec.runtime is vllm",
            ),
            (
                "!(has(self.runtime) && self.runtime == 'ollama' && has(self.adapters) "
                "&& size(self.adapters) > 0)",
                "spec.adapters: LoRA adapters are served by vLLM only, but spec.runtime is ollama",
            ),
            (
                "!has(self.adapters) || self.adapters.all(a, self.adapters.exists_one(b, b.name == a.name))",
                "spec.adapters: adapter names must be unique",
            ),
            (
                "!has(self.lora) || (has(self.adapters) && size(self.adapters) > 0)",
                "spec.lora: only used with spec.adapters",
            ),
        )
    )

    model: ModelRef = Field(description="The model to serve.")
    hardware: Hardware = Field(default_factory=Hardware, description="The hardware tier.")
    runtime: Runtime = Field(
        default=Runtime.AUTO, description="auto | vllm | ollama (auto: vLLM on GPU tiers, Ollama otherwise)."
    )
    quantization: Quantization = Field(
        default=Quantization.AUTO,
        description="auto picks the highest-quality variant that fits the tier; otherwise a specific format.",
    )
    max_concurrency: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="Concurrent sequences per replica (KV-cache math, --max-num-seqs, OLLAMA_NUM_PARALLEL).",
    )
    replicas: int = Field(
        default=1, ge=0, le=100, description="Replicas; ignored while autoscaling is enabled."
    )
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Autoscaling.")
    auth: Auth = Field(default_factory=Auth, description="API-key authentication.")
    model_access_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Hugging Face token for gated models (Gemma, Llama, Mistral)."
    )
    network: Network = Field(default_factory=Network, description="NetworkPolicy settings.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="Prometheus Operator objects.")
    storage: Storage | None = Field(default=None, description="A PersistentVolumeClaim for the model cache.")
    ollama: OllamaOptions = Field(default_factory=OllamaOptions, description="Ollama-specific options.")
    vllm: VllmOptions = Field(default_factory=VllmOptions, description="vLLM-specific options.")
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements, description="Override of the tier's requests/limits."
    )
    scheduling: Scheduling = Field(
        default_factory=Scheduling, description="Scheduling merged over the tier's."
    )
    adapters: list[Adapter] = Field(
        default_factory=list,
        max_length=MAX_ADAPTERS,
        description="LoRA adapters served next to the base model (vLLM only), each under its own name.",
    )
    lora: Lora | None = Field(
        default=None, description="LoRA slots and rank (with spec.adapters); memory is planned for them."
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list,
        max_length=16,
        description="Secrets for pulling the model pod's images from a private registry (added to the "
        "operator's default list).",
    )
    image: Annotated[str, AfterValidator(no_latest)] = Field(
        default="",
        pattern=rf"^$|^{IMAGE_PATTERN[1:]}",
        max_length=512,
        json_schema_extra=cel_rules(
            ("!self.endsWith(':latest')", "spec.image: pin a tag or digest, never ':latest'")
        ),
        description="Override of the runtime image, pinned by tag or digest (never :latest).",
    )

    @model_validator(mode="after")
    def _cross_field(self) -> SmallLanguageModelSpec:
        errors: list[tuple[tuple[int | str, ...], str, Any]] = []
        if self.storage is not None and self.storage.access_mode != AccessMode.RWX:
            most = self.autoscaling.max_replicas if self.autoscaling.enabled else self.replicas
            if most > 1:
                errors.append(
                    (
                        ("storage", "accessMode"),
                        f"{self.storage.access_mode} attaches to one node only, but up to {most} replicas "
                        "may run; use ReadWriteMany or one replica",
                        self.storage.access_mode,
                    )
                )
        if self.runtime == Runtime.OLLAMA and self.vllm.extra_args:
            errors.append((("vllm", "extraArgs"), "only used by vLLM, but spec.runtime is ollama", None))
        if self.runtime == Runtime.VLLM and self.ollama.modelfile is not None:
            errors.append((("ollama", "modelfile"), "only used by Ollama, but spec.runtime is vllm", None))
        if self.runtime == Runtime.OLLAMA and self.adapters:
            errors.append(
                (("adapters",), "LoRA adapters are served by vLLM only, but spec.runtime is ollama", None)
            )
        seen: set[str] = set()
        for index, adapter in enumerate(self.adapters):
            if adapter.name in seen:
                errors.append(
                    (
                        ("adapters", index, "name"),
                        f"{adapter.name!r} is used by an earlier adapter",
                        adapter.name,
                    )
                )
            seen.add(adapter.name)
        if self.lora is not None and not self.adapters:
            errors.append((("lora",), "only used with spec.adapters", None))
        modelfile = self.ollama.modelfile
        num_ctx = modelfile.parameters.get("num_ctx") if modelfile is not None else None
        if (
            isinstance(num_ctx, int)
            and self.model.context_length is not None
            and num_ctx > self.model.context_length
        ):
            # The memory plan sizes the KV cache for contextLength; a larger num_ctx would overrun it.
            errors.append(
                (
                    ("ollama", "modelfile", "parameters", "num_ctx"),
                    f"{num_ctx} exceeds spec.model.contextLength ({self.model.context_length}), "
                    "for which memory is planned; raise contextLength instead",
                    num_ctx,
                )
            )
        if errors:
            raise located_errors("spec", errors)
        return self


class SmallLanguageModel(ApiModel):
    """A whole SmallLanguageModel document (as in a YAML file or from the API)."""

    # Literal types need the literal text: the same values as API_GROUP_VERSION and KIND.
    api_version: Literal["slm.dev/v1alpha1"] = Field(description=API_GROUP_VERSION)
    kind: Literal["SmallLanguageModel"] = Field(description=KIND)
    name: str
    namespace: str
    spec: SmallLanguageModelSpec
