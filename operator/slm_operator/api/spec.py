"""The typed model of a SmallLanguageModel's ``spec`` (reference: docs/api.md).

This module is the single source of truth for the API: the CRD's OpenAPI schema is generated
from these classes (see :mod:`slm_operator.api.crd`), and the operator, ``slmctl plan`` and
``slmctl render`` all parse user input through :func:`parse_spec`, whose errors name the
offending field path (``spec.model.contextLength``) so users know what to change.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from slm_operator.api.errors import SpecError, SpecProblem
from slm_operator.api.fields import did_you_mean, known_fields
from slm_operator.api.modelfile_params import MODELFILE_TEXT_LIMIT, modelfile_parameter_problems, text_problem
from slm_operator.api.vllm_args import parse_vllm_args
from slm_operator.contract.runtime import Engine

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
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

# Sources are passed to runtimes as argv or env, never through a shell; these patterns are
# strict on purpose (KubeAI's Ollama command-injection bug came from a loose model name).
HF_REPO_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
OLLAMA_TAG_PATTERN = (
    r"[a-z0-9][a-z0-9._-]{0,63}(/[a-z0-9][a-z0-9._-]{0,63})?(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?"
)
# An Ollama registry other than the default: Ollama names models host/namespace/model:tag
# (https://github.com/ollama/ollama/blob/v0.12.6/types/model/name.go). The host is a DNS name
# with at least one dot, or any DNS name with a port, so that "namespace/model" is never read
# as "host/model".
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
OLLAMA_HOST_PATTERN = rf"({_DNS_LABEL}(\.{_DNS_LABEL})+(:{_PORT})?|{_DNS_LABEL}:{_PORT})"
OLLAMA_NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
OLLAMA_REMOTE_TAG_PATTERN = (
    rf"{OLLAMA_HOST_PATTERN}/{OLLAMA_NAME_PATTERN}/{OLLAMA_NAME_PATTERN}"
    r"(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?"
)
PVC_PATTERN = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(/[A-Za-z0-9._-]+)*"
SOURCE_PATTERN = (
    rf"^(hf://{HF_REPO_PATTERN}|ollama://{OLLAMA_TAG_PATTERN}|ollama://{OLLAMA_REMOTE_TAG_PATTERN}"
    rf"|pvc://{PVC_PATTERN})$"
)
# LoRA adapters come from the Hugging Face Hub (optionally pinned: hf://org/repo@revision) or
# from a claim (never from Ollama).
ADAPTER_SOURCE_PATTERN = (
    rf"^(hf://{HF_REPO_PATTERN}(@[A-Za-z0-9][A-Za-z0-9._/-]{{0,127}})?|pvc://{PVC_PATTERN})$"
)
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
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
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


class SourceKind(StrEnum):
    """Where the served weights come from: the scheme of ``spec.model.source`` (``hf://``,
    ``ollama://``, ``pvc://``); a catalog model is ``hf`` on vLLM and ``ollama`` on Ollama."""

    HF = "hf"
    OLLAMA = "ollama"
    PVC = "pvc"


class MonitoringMode(StrEnum):
    AUTO = "auto"
    ENABLED = "enabled"
    DISABLED = "disabled"


class AutoscalingEngine(StrEnum):
    """What scales the Deployment: an HPA (needs a custom-metrics adapter for the in-flight metric)
    or a KEDA ScaledObject (KEDA queries Prometheus itself)."""

    HPA = "hpa"
    KEDA = "keda"


class AccessMode(StrEnum):
    RWO = "ReadWriteOnce"
    RWX = "ReadWriteMany"
    RWOP = "ReadWriteOncePod"


def cel_rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """JSON-schema extras carrying CEL ``x-kubernetes-validations`` (rule, message) for the CRD.

    Each rule mirrors a pydantic validator next to it, so ``kubectl apply`` and the operator
    reject the same specs; the messages name the field like the operator's errors do.
    """
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


# A pvc:// path is joined under the claim's mount point; "." and ".." segments could leave it.
DOT_SEGMENT = r"/[.][.]?(/|$)"


def _no_dot_segments(value: str) -> str:
    if re.search(DOT_SEGMENT, value):
        raise ValueError("a path may not contain '.' or '..' segments")
    return value


def _no_latest(value: str) -> str:
    if value.endswith(":latest"):
        raise ValueError("images must be pinned to an exact tag or digest, never ':latest'")
    return value


PinnedImage = Annotated[str, Field(pattern=IMAGE_PATTERN), AfterValidator(_no_latest)]


def ollama_host_problem(host: str) -> str | None:
    """Why ``host`` cannot be an Ollama registry host, or None when it can."""
    port = host.partition(":")[2]
    if port.isdigit() and not 1 <= int(port) <= 65535:
        return f"registry host {host!r} has port {port}, outside 1-65535"
    if not re.fullmatch(OLLAMA_HOST_PATTERN, host):
        return (
            f"registry host {host!r} is not a lower-case DNS name with a dot or a port "
            "(e.g. registry.example.com or registry:5000)"
        )
    return None


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


class ModelRef(_Model):
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
        pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$",
        max_length=63,
        description="A catalog id (see `slmctl catalog`), e.g. phi-4-mini. Exactly one of catalog and "
        "source.",
    )
    source: (
        Annotated[
            str,
            Field(pattern=SOURCE_PATTERN, max_length=300),
            BeforeValidator(_ollama_registry_host),
            AfterValidator(_no_dot_segments),
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
    """Autoscaling settings; when enabled the HPA (or KEDA) owns the replica count."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "(has(self.minReplicas) ? self.minReplicas : 1) <= "
                "(has(self.maxReplicas) ? self.maxReplicas : 4)",
                "spec.autoscaling: minReplicas must not exceed maxReplicas",
            )
        )
    )

    enabled: bool = Field(
        default=False, description="Scale the Deployment (an HPA, or a KEDA ScaledObject with engine keda)."
    )
    engine: AutoscalingEngine = Field(
        default=AutoscalingEngine.HPA,
        description=(
            "hpa: an autoscaling/v2 HorizontalPodAutoscaler; keda: a KEDA ScaledObject with a Prometheus "
            "trigger on the same metric (needs KEDA's keda.sh/v1alpha1 API in the cluster)."
        ),
    )
    min_replicas: int = Field(default=1, ge=1, le=100, description="Lower bound of replicas.")
    max_replicas: int = Field(default=4, ge=1, le=100, description="Upper bound of replicas.")
    # The contract spells it like the HPA v1 field (CPU in capitals), not as camelCase would.
    target_cpu_utilization_percentage: int | None = Field(
        default=70,
        ge=1,
        le=100,
        alias="targetCPUUtilizationPercentage",
        description="Average CPU utilisation target (used on CPU tiers).",
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

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", description="The Secret's name.")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]{1,253}$", description="The key within the Secret.")


class Auth(_Model):
    """API-key authentication at the gateway sidecar."""

    enabled: bool = Field(default=True, description="Require an API key on /v1/* (default true).")
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="An existing Secret holding the key(s), one per line; else the operator creates "
        "<name>-api-key once.",
    )


class LabelSelectorRequirement(_Model):
    """A set-based label requirement (as in core/v1 LabelSelector)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) "
                ": (!has(self.values) || size(self.values) == 0)",
                "matchExpressions: values are required for In and NotIn and must be empty for Exists "
                "and DoesNotExist",
            )
        )
    )

    key: str = Field(pattern=LABEL_KEY_PATTERN, max_length=317, description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="The set operator: In, NotIn, Exists or DoesNotExist."
    )
    values: list[Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]] | None = Field(
        default=None, max_length=64, description="Values for In and NotIn; empty for Exists and DoesNotExist."
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"values are required when operator is {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"values must be empty when operator is {self.operator}")
        return self


class LabelSelector(_Model):
    """A core/v1 label selector; an empty selector matches everything."""

    match_labels: dict[str, str] | None = Field(
        default=None, max_length=64, description="Exact label matches."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=32, description="Set-based label requirements (all must hold)."
    )


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR such as 10.0.0.0/16 or fd00::/8") from None
    if "/" not in value:
        raise ValueError(f"{value!r} needs a prefix length, e.g. {value}/32")
    return value


Cidr = Annotated[str, Field(max_length=43), AfterValidator(_cidr)]


class IPBlock(_Model):
    """An address range (NetworkPolicy ipBlock)."""

    cidr: Cidr = Field(description="An allowed CIDR, e.g. 10.0.0.0/16.")
    except_: list[Cidr] | None = Field(
        default=None, alias="except", max_length=32, description="CIDRs excluded from cidr."
    )


class NetworkPeer(_Model):
    """A NetworkPolicy peer allowed to call the model's API."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "has(self.namespaceSelector) || has(self.podSelector) || has(self.ipBlock)",
                "spec.network.allowFrom: a peer needs namespaceSelector, podSelector or ipBlock",
            ),
            (
                "!has(self.ipBlock) || !(has(self.namespaceSelector) || has(self.podSelector))",
                "spec.network.allowFrom: ipBlock cannot be combined with namespaceSelector or podSelector",
            ),
        )
    )

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
        description="Allow egress on 443 (model download); false once the model is cached. DNS is always "
        "allowed.",
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


def _located_errors(title: str, errors: Sequence[tuple[tuple[int | str, ...], str, Any]]) -> ValidationError:
    """A ValidationError whose errors sit at sub-locations (list indexes, map keys) of the field.

    pydantic prefixes the locations with the field's own path, so problems name
    ``spec.vllm.extraArgs[3]`` rather than the whole list.
    """
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("slm_spec", "{detail}", {"detail": message}), loc=loc, input=value
            )
            for loc, message, value in errors
        ],
    )


class ModelfileMessage(_Model):
    """One MESSAGE instruction: an example turn the model sees before the conversation."""

    role: Literal["system", "user", "assistant"] = Field(
        description="Message role: system, user or assistant."
    )
    content: str = Field(
        max_length=MODELFILE_TEXT_LIMIT, description="Message text (no NUL, no triple quotes)."
    )

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        if (problem := text_problem(value)) is not None:
            raise ValueError(problem)
        return value


class Modelfile(_Model):
    """Ollama Modelfile customisation; every instruction is validated before it is rendered."""

    system: str | None = Field(
        default=None,
        max_length=MODELFILE_TEXT_LIMIT,
        description="SYSTEM instruction: the system prompt (no NUL, no triple quotes).",
    )
    template: str | None = Field(
        default=None,
        max_length=MODELFILE_TEXT_LIMIT,
        description="TEMPLATE instruction: the full prompt template in Go template syntax.",
    )
    parameters: dict[str, float | int | str | list[str]] = Field(
        default_factory=dict,
        max_length=32,
        description=(
            "PARAMETER instructions, e.g. {temperature: 0.3, num_ctx: 8192}. Names and value types follow "
            "Ollama's Modelfile reference: num_ctx, repeat_last_n, repeat_penalty, temperature, seed, stop, "
            "num_predict, top_k, top_p, min_p."
        ),
    )
    messages: list[ModelfileMessage] = Field(
        default_factory=list, max_length=64, description="MESSAGE instructions (example turns), in order."
    )

    @field_validator("system", "template")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and (problem := text_problem(value)) is not None:
            raise ValueError(problem)
        return value

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters(cls, value: Any) -> Any:
        if isinstance(value, dict):
            problems = modelfile_parameter_problems(value)
            if problems:
                raise _located_errors(
                    "parameters", [((name,), message, value.get(name)) for name, message in problems]
                )
        return value


class OllamaOptions(_Model):
    """Options that apply only when the model runs on Ollama."""

    modelfile: Modelfile | None = Field(default=None, description="Optional Modelfile customisation.")


class VllmOptions(_Model):
    """Options that apply only when the model runs on vLLM."""

    extra_args: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra=cel_rules(
            (
                "!self.exists(a, a.startsWith('--trust-remote-code'))",
                "spec.vllm.extraArgs: --trust-remote-code is refused (it runs code from the model "
                "repository)",
            ),
            (
                "!self.exists(a, a == '--enable-auto-tool-choice') || "
                "self.exists(a, a.startsWith('--tool-call-parser'))",
                "spec.vllm.extraArgs: --enable-auto-tool-choice needs --tool-call-parser as well",
            ),
        ),
        description=(
            "Extra vLLM flags (--flag=value or --flag value), validated against an allow-list of tuning "
            "flags; flags the operator derives from the spec (--max-model-len, --max-num-seqs, ...) and "
            "--trust-remote-code are refused."
        ),
    )

    @field_validator("extra_args")
    @classmethod
    def _allowed_flags(cls, value: list[str]) -> list[str]:
        _, problems = parse_vllm_args(value)
        if problems:
            raise _located_errors("extraArgs", [((i,), message, value[i]) for i, message in problems])
        return value


class ResourceRequirements(_Model):
    requests: dict[str, Annotated[str, Field(pattern=QUANTITY_PATTERN)]] | None = Field(
        default=None, description="Resource requests that override the tier's."
    )
    limits: dict[str, Annotated[str, Field(pattern=QUANTITY_PATTERN)]] | None = Field(
        default=None, description="Resource limits that override the tier's."
    )


class Toleration(_Model):
    """A core/v1 toleration."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "tolerations: value must be empty when operator is Exists",
            ),
            (
                "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                "tolerations: tolerationSeconds is only valid with effect NoExecute",
            ),
        )
    )

    key: str | None = Field(default=None, max_length=317, description="Taint key; empty matches all keys.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default)."
    )
    value: str | None = Field(default=None, max_length=63, description="Taint value (with Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated before eviction."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("value must be empty when operator is Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds is only valid with effect NoExecute")
        return self


class Scheduling(_Model):
    """Scheduling constraints merged over the tier's."""

    node_selector: dict[str, str] = Field(default_factory=dict, description="Extra node labels required.")
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Extra tolerations."
    )
    affinity: dict[str, Any] = Field(
        default_factory=dict,
        description="A core/v1 Affinity; its nodeAffinity terms are combined with the tier's.",
    )
    priority_class_name: str = Field(
        default="", pattern=r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$", description="PriorityClass."
    )


# vLLM accepts these --max-lora-rank values only (MaxLoRARanks in vllm/config/lora.py,
# https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/config/lora.py).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
MAX_ADAPTERS = 16
MAX_LORAS = 16


def _adapter_source(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(ADAPTER_SOURCE_PATTERN, value):
        raise ValueError(
            f"{value[:80]!r} is not an adapter source: use hf://org/repo[@revision] or pvc://claim/path "
            "(adapters are served by vLLM, which cannot read ollama:// sources)"
        )
    return value


class Adapter(_Model):
    """A LoRA adapter served next to the base model (vLLM only) under its own model name."""

    name: str = Field(
        pattern=DNS1123_LABEL,
        max_length=63,
        description="The adapter's model name in requests and /v1/models (a DNS label, unique in the "
        "model, different from the base model's served name).",
    )
    source: Annotated[
        str,
        Field(pattern=ADAPTER_SOURCE_PATTERN, max_length=300),
        BeforeValidator(_adapter_source),
        AfterValidator(_no_dot_segments),
    ] = Field(
        json_schema_extra=cel_rules(
            (
                f"!self.matches('{DOT_SEGMENT}')",
                "spec.adapters.source: a path may not contain '.' or '..' segments",
            )
        ),
        description="hf://org/repo or hf://org/repo@revision (downloaded before vLLM starts, with the "
        "model's token if gated) or pvc://claim/path (mounted read-only).",
    )


class Lora(_Model):
    """How much room vLLM reserves for LoRA adapters (memory is planned for it)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                f"!has(self.maxRank) || self.maxRank in {list(LORA_RANKS)}",
                f"spec.lora.maxRank: must be one of {', '.join(map(str, LORA_RANKS))} (vLLM's ranks)",
            )
        )
    )

    max_rank: int = Field(
        default=16,
        ge=1,
        le=LORA_RANKS[-1],
        description=f"--max-lora-rank: the largest adapter rank served; one of "
        f"{', '.join(map(str, LORA_RANKS))} (default 16).",
    )
    max_loras: int | None = Field(
        default=None,
        ge=1,
        le=MAX_LORAS,
        description="--max-loras: adapters usable in one batch (GPU slots); default the number of adapters.",
    )

    @field_validator("max_rank")
    @classmethod
    def _vllm_rank(cls, value: int) -> int:
        if value not in LORA_RANKS:
            raise ValueError(
                f"{value} is not a rank vLLM accepts; use one of {', '.join(map(str, LORA_RANKS))}"
            )
        return value


class LocalObjectReference(_Model):
    """A Secret in the model's namespace, by name."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", description="The Secret's name.")


# Parenthesised: CEL's ?: binds looser than ||, so the rule embedding it needs the brackets.
_ONE_REPLICA_AT_MOST = (
    "((has(self.autoscaling) && has(self.autoscaling.enabled) && self.autoscaling.enabled) "
    "? (has(self.autoscaling.maxReplicas) ? self.autoscaling.maxReplicas : 4) <= 1 "
    ": (has(self.replicas) ? self.replicas : 1) <= 1)"
)


class SmallLanguageModelSpec(_Model):
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
    image: Annotated[str, AfterValidator(_no_latest)] = Field(
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
            raise _located_errors("spec", errors)
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
            loc = tuple(err["loc"])
            hint = did_you_mean(str(loc[-1]), known_fields(SmallLanguageModelSpec, loc)) if loc else ""
            message = f"unknown field{hint} (check the spelling; see `kubectl explain slm.spec`)"
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
            SpecProblem(
                field="apiVersion",
                message=f"must be {API_GROUP}/{API_VERSION}, got {doc.get('apiVersion')!r}",
            )
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
                message=f"is {len(name)} characters; at most {MAX_NAME_LENGTH} "
                "(child names add suffixes up to 10)",
            )
        )
    if not re.fullmatch(DNS1035_LABEL, name):
        problems.append(
            SpecProblem(
                field="metadata.name",
                message="must be a DNS-1035 label: lower-case letters, digits and '-', starting with a "
                "letter",
            )
        )
    return problems
