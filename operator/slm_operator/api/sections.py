"""The spec's sections around the model: hardware, autoscaling, auth, network, monitoring,
storage and scheduling.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from slm_operator.api.base import ApiModel, cel_rules
from slm_operator.api.kube import NetworkPeer, SecretKeyRef, Toleration
from slm_operator.api.patterns import DNS1123_SUBDOMAIN, QUANTITY_PATTERN, TIER_NAME_PATTERN


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


class Hardware(ApiModel):
    """The hardware tier the model runs on."""

    tier: str = Field(
        default="cpu",
        pattern=rf"^{TIER_NAME_PATTERN}$",
        description="A tier name from the operator configuration (see `slmctl tiers`); default cpu.",
    )
    gpus: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="Override of the tier's GPU count per replica (tensor parallel size on vLLM).",
    )


class Autoscaling(ApiModel):
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


class Auth(ApiModel):
    """API-key authentication at the gateway sidecar."""

    enabled: bool = Field(default=True, description="Require an API key on /v1/* (default true).")
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="An existing Secret holding the key(s), one per line; else the operator creates "
        "<name>-api-key once.",
    )


class Network(ApiModel):
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


class Monitoring(ApiModel):
    """Prometheus Operator objects."""

    service_monitor: MonitoringMode = Field(
        default=MonitoringMode.AUTO,
        description="auto creates a ServiceMonitor only when the monitoring.coreos.com CRDs exist.",
    )
    prometheus_rule: MonitoringMode = Field(
        default=MonitoringMode.AUTO,
        description="auto creates a PrometheusRule (alerts) only when the monitoring.coreos.com CRDs exist.",
    )


class Storage(ApiModel):
    """A PersistentVolumeClaim for the model cache (default: an emptyDir with a size limit)."""

    size: str = Field(default="20Gi", pattern=QUANTITY_PATTERN, description="Requested capacity.")
    storage_class_name: str | None = Field(
        default=None, pattern=rf"^{DNS1123_SUBDOMAIN}$", description="StorageClass to use."
    )
    access_mode: AccessMode = Field(
        default=AccessMode.RWO,
        description="ReadWriteMany shares the cache across replicas; ReadWriteOnce only with one replica.",
    )


class Scheduling(ApiModel):
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
        default="", pattern=rf"^({DNS1123_SUBDOMAIN})?$", description="PriorityClass."
    )
