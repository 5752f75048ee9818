"""The typed model of a SmallLanguageModel's ``spec`` (ARCHITECTURE §2).

This module is the single source of truth for the API: the CRD's OpenAPI schema is generated
from these classes (see :mod:`slm_operator.api.crd`), and the operator, ``slmctl plan`` and
``slmctl render`` all parse user input through :func:`parse_spec`, whose errors name the
offending field path (``spec.model.contextLength``) so users know what to change.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from slm_operator.api.errors import SpecError, SpecProblem

API_GROUP = "slm.dev"
API_VERSION = "v1alpha1"
KIND = "SmallLanguageModel"
PLURAL = "smalllanguagemodels"
SINGULAR = "smalllanguagemodel"
SHORT_NAMES = ("slm", "slms")

# Children are named "<name>", "<name>-api-key", "<name>-modelfile", "<name>-cache"; Services
# and most object names must be DNS-1035 labels of at most 63 characters, so the longest
# suffix ("-modelfile", 10 characters) bounds the model's own name.
MAX_NAME_LENGTH = 53
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

# Sources are passed to runtimes as argv or env, never through a shell; these patterns are
# strict on purpose (KubeAI's Ollama command-injection bug came from a loose model name).
HF_REPO_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
OLLAMA_TAG_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}(/[a-z0-9][a-z0-9._-]{0,63})?(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?"
PVC_PATTERN = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(/[A-Za-z0-9._-]+)*"
SOURCE_PATTERN = rf"^(hf://{HF_REPO_PATTERN}|ollama://{OLLAMA_TAG_PATTERN}|pvc://{PVC_PATTERN})$"
REVISION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$"
SERVED_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
# Kubernetes resource quantity (a simplified form of the apimachinery regexp).
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$"
# A pinned image: an explicit tag or a digest (RE2 has no look-ahead, so ":latest" is refused
# separately: by a validator here and a CEL rule in the CRD).
IMAGE_PATTERN = (
    r"^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._/-]*[a-z0-9])?)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$"
)
LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"


class _Model(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected (a typo is an error, not a no-op)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
    )


class Runtime(StrEnum):
    AUTO = "auto"
    VLLM = "vllm"
    OLLAMA = "ollama"


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


class MonitoringMode(StrEnum):
    AUTO = "auto"
    ENABLED = "enabled"
    DISABLED = "disabled"


class AccessMode(StrEnum):
    RWO = "ReadWriteOnce"
    RWX = "ReadWriteMany"
    RWOP = "ReadWriteOncePod"


def _no_latest(value: str) -> str:
    if value.endswith(":latest"):
        raise ValueError("images must be pinned to an exact tag or digest, never ':latest'")
    return value


PinnedImage = Annotated[str, Field(pattern=IMAGE_PATTERN), AfterValidator(_no_latest)]


class ModelRef(_Model):
    """Which model to serve: a catalog id, or an explicit source."""

    catalog: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$",
        description="A catalog id (see `slmctl catalog`), e.g. phi-4-mini. Exactly one of catalog and source.",
    )
    source: str | None = Field(
        default=None,
        pattern=SOURCE_PATTERN,
        max_length=300,
        description=(
            "An explicit model source instead of a catalog id: hf://org/repo, ollama://name:tag or "
            "pvc://claim/path. Exactly one of catalog and source."
        ),
    )
    parameters_billions: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="Parameter count in billions for sources outside the catalog; without it the memory fit is unchecked.",
    )
    revision: str | None = Field(
        default=None,
        pattern=REVISION_PATTERN,
        description="Hugging Face revision (branch, tag or commit) to serve; default the repository's main.",
    )
    served_name: str | None = Field(
        default=None,
        pattern=SERVED_NAME_PATTERN,
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


class Hardware(_Model):
    """The hardware tier the model runs on."""

    tier: str = Field(
        default="cpu",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="A tier name from the operator configuration (see `slmctl tiers`); default cpu.",
    )
    gpus: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="Override of the tier's GPU count per replica (tensor parallel size on vLLM).",
    )


class Autoscaling(_Model):
    """HorizontalPodAutoscaler settings; when enabled the HPA owns the replica count."""

    enabled: bool = Field(default=False, description="Create an autoscaling/v2 HorizontalPodAutoscaler.")
    min_replicas: int = Field(default=1, ge=1, le=100, description="Lower bound of replicas.")
    max_replicas: int = Field(default=4, ge=1, le=100, description="Upper bound of replicas.")
    target_cpu_utilization_percentage: int | None = Field(
        default=70, ge=1, le=100, description="Average CPU utilisation target (used on CPU tiers)."
    )
    target_in_flight_requests: int | None = Field(
        default=4,
        ge=1,
        le=10_000,
        description=(
            "Average in-flight requests per replica, from the gateway metric "
            "slm_gateway_in_flight_requests (needs prometheus-adapter or KEDA to serve it)."
        ),
    )

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})"
            )
        return self


class SecretKeyRef(_Model):
    """A key in a Secret of the model's namespace."""

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", description="The Secret's name."
    )
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]{1,253}$", description="The key within the Secret.")


class Auth(_Model):
    """API-key authentication at the gateway sidecar."""

    enabled: bool = Field(default=True, description="Require an API key on /v1/* (default true).")
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="An existing Secret holding the key(s), one per line; else the operator creates <name>-api-key once.",
    )


class LabelSelectorRequirement(_Model):
    key: str = Field(pattern=LABEL_KEY_PATTERN, description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="The set operator.")
    values: list[str] | None = Field(default=None, description="Values for In and NotIn.")


class LabelSelector(_Model):
    match_labels: dict[str, str] | None = Field(default=None, description="Exact label matches.")
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, description="Set-based label requirements."
    )


class IPBlock(_Model):
    cidr: str = Field(description="An allowed CIDR, e.g. 10.0.0.0/16.")
    except_: list[str] | None = Field(default=None, alias="except", description="CIDRs excluded from cidr.")


class NetworkPeer(_Model):
    """A NetworkPolicy peer allowed to call the model's API."""

    namespace_selector: LabelSelector | None = Field(default=None, description="Namespaces allowed.")
    pod_selector: LabelSelector | None = Field(default=None, description="Pods allowed.")
    ip_block: IPBlock | None = Field(default=None, description="An address range allowed.")

    @model_validator(mode="after")
    def _not_empty(self) -> NetworkPeer:
        if self.namespace_selector is None and self.pod_selector is None and self.ip_block is None:
            raise ValueError("a peer needs namespaceSelector, podSelector or ipBlock")
        if self.ip_block is not None and (self.namespace_selector or self.pod_selector):
            raise ValueError("ipBlock cannot be combined with namespaceSelector or podSelector")
        return self


class Network(_Model):
    """NetworkPolicy settings (a default-deny policy is always created)."""

    allow_from: list[NetworkPeer] = Field(
        default_factory=list,
        max_length=32,
        description="Extra peers allowed to call the API port; the model's own namespace is always allowed.",
    )
    allow_egress: bool = Field(
        default=True,
        description="Allow egress on 443 (model download); false once the model is cached. DNS is always allowed.",
    )


class Monitoring(_Model):
    """Prometheus Operator objects."""

    service_monitor: MonitoringMode = Field(
        default=MonitoringMode.AUTO,
        description="auto creates a ServiceMonitor only when the monitoring.coreos.com CRDs exist.",
    )
    prometheus_rule: MonitoringMode = Field(
        default=MonitoringMode.AUTO,
        description="auto creates a PrometheusRule (alerts) only when the monitoring.coreos.com CRDs exist.",
    )


class Storage(_Model):
    """A PersistentVolumeClaim for the model cache (default: an emptyDir with a size limit)."""

    size: str = Field(default="20Gi", pattern=QUANTITY_PATTERN, description="Requested capacity.")
    storage_class_name: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", description="StorageClass to use."
    )
    access_mode: AccessMode = Field(
        default=AccessMode.RWO,
        description="ReadWriteMany shares the cache across replicas; ReadWriteOnce only with one replica.",
    )


class ModelfileMessage(_Model):
    role: Literal["system", "user", "assistant"] = Field(description="Message role.")
    content: str = Field(max_length=16_384, description="Message text.")


class Modelfile(_Model):
    """Ollama Modelfile customisation; every instruction is validated."""

    system: str | None = Field(default=None, max_length=16_384, description="SYSTEM prompt.")
    template: str | None = Field(default=None, max_length=16_384, description="TEMPLATE (Go template).")
    parameters: dict[str, float | int | str | list[str]] = Field(
        default_factory=dict,
        description="PARAMETER instructions, e.g. {temperature: 0.3, num_ctx: 8192}; names are checked.",
    )
    messages: list[ModelfileMessage] = Field(
        default_factory=list, max_length=64, description="MESSAGE instructions (example turns)."
    )


class OllamaOptions(_Model):
    modelfile: Modelfile | None = Field(default=None, description="Optional Modelfile customisation.")


class VllmOptions(_Model):
    extra_args: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Extra vLLM flags, validated against an allow-list of known flags.",
    )


class ResourceRequirements(_Model):
    requests: dict[str, Annotated[str, Field(pattern=QUANTITY_PATTERN)]] | None = Field(
        default=None, description="Resource requests that override the tier's."
    )
    limits: dict[str, Annotated[str, Field(pattern=QUANTITY_PATTERN)]] | None = Field(
        default=None, description="Resource limits that override the tier's."
    )


class Toleration(_Model):
    key: str | None = Field(default=None, description="Taint key.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal.")
    value: str | None = Field(default=None, description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect."
    )
    toleration_seconds: int | None = Field(default=None, description="For NoExecute.")


class Scheduling(_Model):
    """Scheduling constraints merged over the tier's."""

    node_selector: dict[str, str] = Field(default_factory=dict, description="Extra node labels required.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Extra tolerations.")
    affinity: dict[str, Any] = Field(
        default_factory=dict,
        description="A core/v1 Affinity; its nodeAffinity terms are combined with the tier's.",
    )
    priority_class_name: str = Field(
        default="", pattern=r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$", description="PriorityClass."
    )


class SmallLanguageModelSpec(_Model):
    """The desired state of one small-language-model inference service."""

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
    replicas: int = Field(default=1, ge=0, le=100, description="Replicas; ignored while autoscaling is enabled.")
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
    scheduling: Scheduling = Field(default_factory=Scheduling, description="Scheduling merged over the tier's.")
    image: Annotated[str, AfterValidator(_no_latest)] = Field(
        default="",
        pattern=rf"^$|^{IMAGE_PATTERN[1:]}",
        description="Override of the runtime image, pinned by tag or digest (never :latest).",
    )

    @model_validator(mode="after")
    def _storage_access(self) -> SmallLanguageModelSpec:
        if self.storage is not None and self.storage.access_mode != AccessMode.RWX:
            most = self.autoscaling.max_replicas if self.autoscaling.enabled else self.replicas
            if most > 1:
                raise ValueError(
                    f"storage.accessMode {self.storage.access_mode} can attach to one node only, "
                    f"but up to {most} replicas may run; use ReadWriteMany or one replica"
                )
        return self


class SmallLanguageModel(_Model):
    """A whole SmallLanguageModel document (as in a YAML file or from the API)."""

    api_version: Literal["slm.dev/v1alpha1"] = Field(description="slm.dev/v1alpha1")
    kind: Literal["SmallLanguageModel"] = Field(description="SmallLanguageModel")
    name: str
    namespace: str
    spec: SmallLanguageModelSpec


def _field_path(loc: tuple[int | str, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            if parts:
                parts[-1] = f"{parts[-1]}[{item}]"
            else:
                parts.append(f"[{item}]")
        elif "[" in str(item) or item in {"function-after", "function-before"}:
            # pydantic's internal validator labels; not part of the user's path
            continue
        else:
            parts.append(str(item))
    return ".".join(parts)


def problems_from_validation_error(exc: ValidationError, prefix: str) -> list[SpecProblem]:
    """Translate pydantic errors into problems that name the user's field path."""
    problems: list[SpecProblem] = []
    for err in exc.errors():
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see `kubectl explain slm.spec`)"
        elif err["type"] == "missing":
            message = "required field is missing"
        problems.append(SpecProblem(field=_field_path(tuple(err["loc"]), prefix), message=message))
    return problems


def parse_spec(raw: Any, *, prefix: str = "spec") -> SmallLanguageModelSpec:
    """Validate a raw ``spec`` mapping, raising :class:`SpecError` with named field paths."""
    if not isinstance(raw, dict):
        raise SpecError([SpecProblem(field=prefix, message="must be a mapping")])
    try:
        return SmallLanguageModelSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(problems_from_validation_error(exc, prefix)) from None


def parse_document(doc: Any) -> SmallLanguageModel:
    """Validate a whole SmallLanguageModel document (apiVersion, kind, metadata, spec)."""
    if not isinstance(doc, dict):
        raise SpecError([SpecProblem(field="(document)", message="must be a mapping")])
    problems: list[SpecProblem] = []
    if doc.get("apiVersion") != f"{API_GROUP}/{API_VERSION}":
        problems.append(
            SpecProblem(field="apiVersion", message=f"must be {API_GROUP}/{API_VERSION}, got {doc.get('apiVersion')!r}")
        )
    if doc.get("kind") != KIND:
        problems.append(SpecProblem(field="kind", message=f"must be {KIND}, got {doc.get('kind')!r}"))
    metadata = doc.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, dict) else None
    namespace = (metadata.get("namespace") if isinstance(metadata, dict) else None) or "default"
    if not isinstance(name, str) or not name:
        problems.append(SpecProblem(field="metadata.name", message="required field is missing"))
        name = ""
    else:
        problems.extend(validate_name(name))
    spec: SmallLanguageModelSpec | None = None
    try:
        spec = parse_spec(doc.get("spec"), prefix="spec")
    except SpecError as exc:
        problems.extend(exc.problems)
    if problems or spec is None:
        raise SpecError(problems)
    return SmallLanguageModel(
        api_version="slm.dev/v1alpha1", kind="SmallLanguageModel", name=name, namespace=namespace, spec=spec
    )


def validate_name(name: str) -> list[SpecProblem]:
    """The model's name becomes Service and Secret names: a DNS-1035 label of <= 53 characters."""
    problems: list[SpecProblem] = []
    if len(name) > MAX_NAME_LENGTH:
        problems.append(
            SpecProblem(
                field="metadata.name",
                message=f"is {len(name)} characters; at most {MAX_NAME_LENGTH} (child names add suffixes up to 10)",
            )
        )
    if not re.fullmatch(DNS1035_LABEL, name):
        problems.append(
            SpecProblem(
                field="metadata.name",
                message="must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter",
            )
        )
    return problems
