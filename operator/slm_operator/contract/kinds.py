"""The kinds of object the operator creates for a model: the one list RBAC, cleanup and the
operator's watches are derived from (a test checks the Helm chart's RBAC against it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, eq=False)
class ManagedKind:
    """One kind, defined once below: compared and hashed by identity (a kind is part of the key
    of every lookup the operator's index makes on every watch event, and a dataclass's field-wise
    ``__eq__``/``__hash__`` cost more there than the rest of the lookup)."""

    api_version: str
    kind: str
    plural: str
    optional_crd: bool = False  # only present when its CRD (Prometheus Operator, KEDA) is installed

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


DEPLOYMENT = ManagedKind("apps/v1", "Deployment", "deployments")
SERVICE = ManagedKind("v1", "Service", "services")
SECRET = ManagedKind("v1", "Secret", "secrets")
NETWORK_POLICY = ManagedKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
HPA = ManagedKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
PDB = ManagedKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
CONFIG_MAP = ManagedKind("v1", "ConfigMap", "configmaps")
PVC = ManagedKind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
SERVICE_MONITOR = ManagedKind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors", True)
PROMETHEUS_RULE = ManagedKind("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules", True)
# https://keda.sh/docs/latest/reference/scaledobject-spec/
SCALED_OBJECT = ManagedKind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects", True)

MANAGED_KINDS: tuple[ManagedKind, ...] = (
    DEPLOYMENT,
    SERVICE,
    SECRET,
    NETWORK_POLICY,
    HPA,
    PDB,
    CONFIG_MAP,
    PVC,
    SERVICE_MONITOR,
    PROMETHEUS_RULE,
    SCALED_OBJECT,
)
MONITORING_KINDS: tuple[ManagedKind, ...] = (SERVICE_MONITOR, PROMETHEUS_RULE)
KEDA_KINDS: tuple[ManagedKind, ...] = (SCALED_OBJECT,)


def served_kinds(*, monitoring_available: bool, keda_available: bool = False) -> list[ManagedKind]:
    """The managed kinds the cluster serves: the built-ins, plus each optional CRD's detected."""
    missing = (() if monitoring_available else MONITORING_KINDS) + (() if keda_available else KEDA_KINDS)
    return [kind for kind in MANAGED_KINDS if kind not in missing]


def kind_of(obj: dict[str, object]) -> ManagedKind:
    """The managed kind of a rendered object (KeyError for anything else)."""
    for managed in MANAGED_KINDS:
        if obj.get("apiVersion") == managed.api_version and obj.get("kind") == managed.kind:
            return managed
    raise KeyError(f"{obj.get('apiVersion')}/{obj.get('kind')} is not a kind the operator manages")
