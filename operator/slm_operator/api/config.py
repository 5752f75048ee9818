"""The operator configuration (docs/configuration.md): tiers, catalog, images, defaults and registries.

Built-in defaults ship inside the package (``slm_operator/catalog/*.yaml``); a user's
``--config`` file (the Helm values rendered into a ConfigMap) is merged over them by
:func:`slm_operator.catalog.loader.load_config`. The planner reads nothing but this model.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from slm_operator.api.base import ApiModel, PinnedImage
from slm_operator.api.kube import Toleration
from slm_operator.api.patterns import (
    DNS1123_SUBDOMAIN,
    HF_REPO_PATTERN,
    OLLAMA_NAME_PATTERN,
    OLLAMA_TAG_PATTERN,
    ollama_host_problem,
)
from slm_operator.api.spec import Quantization
from slm_operator.contract.runtime import Engine


class _Config(ApiModel):
    """camelCase on the wire, like the spec; fields in GiB carry an explicit alias ("memoryGiB"),
    because the generated one would read "memoryGib" (gibibits)."""


class Accelerator(StrEnum):
    NONE = "none"
    NVIDIA = "nvidia"


class SlidingWindow(_Config):
    """Interleaved local/global attention (Gemma 3: 5 sliding-window layers per global layer)."""

    window: int = Field(gt=0, description="Tokens kept by a local (sliding-window) layer.")
    global_layers: int = Field(ge=1, description="Layers with full (global) attention.")


class Variant(_Config):
    """One servable form of a model: a runtime plus an exact HF repo id or Ollama tag."""

    runtime: Engine
    ref: str = Field(description="The exact Hugging Face repo id (vLLM) or Ollama tag (Ollama).")
    quantization: Quantization = Field(description="The weight format (never auto).")
    bits: Literal[16, 8, 4] = Field(description="Bits per weight, for quality ranking.")
    weight_bytes: int = Field(gt=0, description="Size of the weights in bytes (resident memory).")
    min_compute_capability: float | None = Field(
        default=None, ge=3.0, le=12.0, description="Lowest NVIDIA compute capability vLLM runs it on."
    )
    native_compute_capability: float | None = Field(
        default=None,
        description="Compute capability from which the format runs natively (e.g. FP8 W8A8 from 8.9).",
    )
    vllm_args: list[str] = Field(
        default_factory=list,
        description="Extra vLLM arguments this variant needs (e.g. online --quantization fp8).",
    )
    verified: bool = Field(default=True, description="False where the source marks a fact UNVERIFIED.")
    note: str = Field(default="", description="Why it is unverified, or other caveats.")
    source: str = Field(default="", description="Where the repo id/tag and size come from.")

    @model_validator(mode="after")
    def _ref_matches_runtime(self) -> Variant:
        pattern = HF_REPO_PATTERN if self.runtime == Engine.VLLM else OLLAMA_TAG_PATTERN
        if not re.fullmatch(pattern, self.ref):
            raise ValueError(f"ref {self.ref!r} is not a valid {self.runtime} reference")
        if self.quantization == Quantization.AUTO:
            raise ValueError("a variant's quantization cannot be auto")
        return self


class Architecture(_Config):
    """The rest of a model's config.json: enough to recount its parameters and size its checkpoints.

    The catalog check (``make check-catalog``, scripts/check_catalog.py) recomputes the parameter
    count from these fields and compares it with ``parameters``; the Ollama overhead estimate
    reads the hidden size, vocabulary and GGUF architecture name.
    """

    hidden_size: int = Field(gt=0, description="config.json hidden_size.")
    intermediate_size: int = Field(gt=0, description="MLP width (per expert: moe_intermediate_size).")
    vocab_size: int = Field(gt=0)
    tied_embeddings: bool = Field(description="tie_word_embeddings: lm_head shares the embedding.")
    attention_bias: bool = Field(default=False, description="q/k/v projections carry a bias (Qwen2.5).")
    qk_norm: bool = Field(default=False, description="RMSNorm over q and k per head (Qwen3, Gemma 3).")
    norms_per_layer: int = Field(default=2, ge=1, description="RMSNorm vectors per layer (Gemma 3: 4).")
    experts: int | None = Field(default=None, gt=0, description="Routed experts of a mixture of experts.")
    vision_parameters: int = Field(
        default=0, ge=0, description="Parameters outside the text decoder (a vision tower), resident too."
    )
    gguf_architecture: str = Field(
        description="general.architecture of the model's GGUF (Ollama's estimator keys on it)."
    )

    def text_parameters(self, *, layers: int, attention_heads: int, kv_heads: int, head_dim: int) -> int:
        """Parameters of the text decoder (embeddings, attention, MLP or experts, norms, lm_head)."""
        hidden = self.hidden_size
        q_width, kv_width = attention_heads * head_dim, kv_heads * head_dim
        attention = hidden * q_width + 2 * hidden * kv_width + q_width * hidden
        if self.attention_bias:
            attention += q_width + 2 * kv_width
        if self.qk_norm:
            attention += 2 * head_dim
        mlp = 3 * hidden * self.intermediate_size
        if self.experts is not None:
            mlp = self.experts * mlp + hidden * self.experts  # experts + router
        per_layer = attention + mlp + self.norms_per_layer * hidden
        embeddings = self.vocab_size * hidden * (1 if self.tied_embeddings else 2)
        return embeddings + layers * per_layer + hidden


class CatalogModel(_Config):
    """A model family member with its architecture facts (for the KV-cache math)."""

    display_name: str
    family: str
    parameters: int = Field(gt=0, description="Exact parameter count.")
    layers: int = Field(gt=0)
    attention_heads: int = Field(gt=0, description="Query heads (tensor parallel must divide them).")
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    sliding_window: SlidingWindow | None = None
    architecture: Architecture | None = Field(
        default=None, description="config.json fields beyond the KV-cache ones (sizes, Ollama overhead)."
    )
    max_context: int = Field(gt=0, description="Longest supported context in tokens.")
    license: str
    gated: bool = Field(description="True when Hugging Face requires an accepted licence and a token.")
    verified: bool = Field(
        default=True, description="False where an architecture/licence fact is unverified."
    )
    note: str = ""
    sources: list[str] = Field(default_factory=list)
    variants: list[Variant] = Field(min_length=1)

    @property
    def global_layers(self) -> int:
        """Layers that keep K and V for the whole context (all of them without a sliding window)."""
        return self.layers if self.sliding_window is None else self.sliding_window.global_layers

    @property
    def local_layers(self) -> int:
        """Sliding-window layers, which keep K and V for the last ``window`` tokens only."""
        return self.layers - self.global_layers

    @model_validator(mode="after")
    def _layers_add_up(self) -> CatalogModel:
        if self.sliding_window is not None and self.sliding_window.global_layers > self.layers:
            raise ValueError("slidingWindow.globalLayers cannot exceed layers")
        return self


class NodeSelectorRequirement(_Config):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] = Field(default_factory=list)


class NodeSelectorTerm(_Config):
    """Match expressions that are ANDed; a tier's terms are ORed (as in core/v1 NodeSelector)."""

    match_expressions: list[NodeSelectorRequirement] = Field(min_length=1)


class Tier(_Config):
    """A hardware tier: what the planner may assume and how pods are scheduled onto it."""

    description: str = ""
    accelerator: Accelerator = Accelerator.NONE
    runtime: Engine = Field(description="Default runtime for runtime: auto.")
    gpus: int = Field(default=0, ge=0, le=16, description="GPUs per replica (0 on CPU tiers).")
    gpu_memory_gib: float | None = Field(
        default=None, gt=0, alias="gpuMemoryGiB", description="Usable memory per GPU in GiB."
    )
    compute_capability: float | None = Field(default=None, ge=3.0, le=12.0)
    gpu_memory_utilization: float = Field(default=0.9, gt=0.1, le=0.98)
    memory_gib: float = Field(
        gt=0, alias="memoryGiB", description="Container memory limit in GiB (the budget on CPU tiers)."
    )
    cpu: str = Field(default="2", description="CPU request.")
    cpu_limit: str | None = Field(default=None, description="CPU limit (unset: no CPU limit).")
    node_selector: dict[str, str] = Field(default_factory=dict)
    node_affinity: list[NodeSelectorTerm] = Field(
        default_factory=list,
        description="Required node-affinity terms (ORed; expressions within a term ANDed).",
    )
    tolerations: list[Toleration] = Field(default_factory=list)
    verified: bool = True
    note: str = ""

    @model_validator(mode="after")
    def _gpu_fields(self) -> Tier:
        if self.accelerator == Accelerator.NVIDIA:
            if self.gpus < 1 or self.gpu_memory_gib is None or self.compute_capability is None:
                raise ValueError("GPU tiers need gpus >= 1, gpuMemoryGiB and computeCapability")
        elif self.gpus:
            raise ValueError("tiers without an accelerator must have gpus: 0")
        return self


class Images(_Config):
    """Pinned container images (exact tags or digests; never :latest)."""

    vllm: PinnedImage = Field(description="vLLM OpenAI server image (GPU).")
    ollama: PinnedImage = Field(description="Ollama image (CPU and GPU).")
    gateway: PinnedImage = Field(description="The operator's own image, which runs `slmctl gateway`.")


class Overheads(_Config):
    """Runtime memory beyond weights and KV cache (CUDA context, activations, graphs, buffers).

    Ollama's compute graph is computed per model by the planner (docs/planner.md, "Ollama's
    overhead"); ``ollama_fraction_of_weights`` is an extra margin on top, 0 by default.
    """

    vllm_gib: float = Field(default=1.5, ge=0, alias="vllmGiB")
    vllm_fraction_of_weights: float = Field(default=0.05, ge=0, le=1)
    ollama_gib: float = Field(default=0.5, ge=0, alias="ollamaGiB")
    ollama_fraction_of_weights: float = Field(default=0.0, ge=0, le=1)


class Defaults(_Config):
    context_length: int = Field(default=8192, ge=256)
    ollama_keep_alive: str = Field(default="-1", description="OLLAMA_KEEP_ALIVE; -1 keeps the model loaded.")
    cache_size_limit: str = Field(default="30Gi", description="emptyDir sizeLimit for the model cache.")
    monitoring_namespace: str = Field(
        default="monitoring", description="Namespace allowed to scrape metrics."
    )
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="Prometheus that KEDA queries for spec.autoscaling.engine: keda.",
    )
    overheads: Overheads = Field(default_factory=Overheads)


class Registries(_Config):
    """Where model pods pull images and weights from: private registries, mirrors, air gaps."""

    image_pull_secrets: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Secrets (in each model's namespace) added to every model pod's imagePullSecrets.",
    )
    hugging_face_endpoint: str | None = Field(
        default=None,
        max_length=253,
        description="A Hugging Face Hub mirror (HF_ENDPOINT of vLLM pods), e.g. https://hf-mirror.example.com.",
    )
    ollama: str | None = Field(
        default=None,
        max_length=253,
        description="An Ollama registry other than registry.ollama.ai: host[:port] or host[:port]/namespace; "
        "catalog tags are pulled from it.",
    )

    @field_validator("image_pull_secrets")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(DNS1123_SUBDOMAIN, name):
                raise ValueError(f"{name!r} is not a Secret name (a lower-case DNS subdomain)")
        return value

    @field_validator("hugging_face_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not an http(s) URL such as https://hf-mirror.example.com")
        if any(c.isspace() for c in value):
            raise ValueError("must not contain white space")
        return value.rstrip("/")

    @field_validator("ollama")
    @classmethod
    def _ollama_registry(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, namespace = value.partition("/")
        if (problem := ollama_host_problem(host)) is not None:
            raise ValueError(problem)
        if namespace and not re.fullmatch(OLLAMA_NAME_PATTERN, namespace):
            raise ValueError(f"namespace {namespace!r} is not an Ollama namespace (lower-case, one segment)")
        return value


class OperatorConfig(_Config):
    """The merged configuration the planner and renderer read."""

    tiers: dict[str, Tier]
    catalog: dict[str, CatalogModel]
    images: Images
    defaults: Defaults = Field(default_factory=Defaults)
    registries: Registries = Field(default_factory=Registries)


def dump_config(config: OperatorConfig) -> dict[str, Any]:
    """The configuration as plain camelCase data (for `slmctl tiers/catalog -o json`)."""
    return config.model_dump(by_alias=True, mode="json", exclude_none=True)
