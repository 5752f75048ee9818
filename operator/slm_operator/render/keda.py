"""A KEDA ScaledObject (``spec.autoscaling.engine: keda``): the same scaling as the HPA, without
a custom-metrics adapter. KEDA queries Prometheus itself and feeds the result to an HPA it owns.

Fields: https://keda.sh/docs/latest/reference/scaledobject-spec/ (keda.sh/v1alpha1). Triggers:
the Prometheus scaler (https://keda.sh/docs/latest/scalers/prometheus/: ``serverAddress``,
``query``, ``threshold``) and, on CPU tiers, the CPU scaler
(https://keda.sh/docs/latest/scalers/cpu/: ``metricType: Utilization``, ``value``).
"""

from __future__ import annotations

from typing import Any

from slm_operator.api.config import OperatorConfig
from slm_operator.api.errors import SpecError, SpecProblem
from slm_operator.api.plan import AutoscalingPlan, Plan
from slm_operator.api.sections import AutoscalingEngine
from slm_operator.contract.kinds import SCALED_OBJECT
from slm_operator.contract.names import MANAGED_BY_LABEL, MODEL_LABEL
from slm_operator.render.hpa import BEHAVIOR, IN_FLIGHT_METRIC, no_metric_error, scale_target
from slm_operator.render.meta import child_metadata
from slm_operator.render.monitoring import promql_string

# KEDA copies a ScaledObject's labels onto the HPA it creates (kedacore/keda
# controllers/keda/hpa.go) unless listed here: that HPA is KEDA's, so it must not claim to be
# managed by this operator nor carry the model label the operator lists its children by.
HPA_EXCLUDED_LABELS_ANNOTATION = "scaledobject.keda.sh/hpa-excluded-labels"
HPA_EXCLUDED_LABELS = (MANAGED_BY_LABEL, MODEL_LABEL)


def in_flight_query(plan: Plan) -> str:
    """Requests in flight summed over the model's gateways; KEDA divides it by the replica count
    (``metricType: AverageValue``), which gives the per-replica average the HPA targets."""
    selector = f"namespace={promql_string(plan.namespace)}, model={promql_string(plan.served_name)}"
    return f"sum({IN_FLIGHT_METRIC}{{{selector}}})"


def _triggers(autoscaling: AutoscalingPlan, plan: Plan, config: OperatorConfig) -> list[dict[str, Any]]:
    triggers: list[dict[str, Any]] = []
    if autoscaling.target_in_flight_requests is not None:
        triggers.append(
            {
                "type": "prometheus",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": config.defaults.prometheus_url,
                    "query": in_flight_query(plan),
                    "threshold": str(autoscaling.target_in_flight_requests),
                },
            }
        )
    # As for the HPA: the plan keeps a CPU target on CPU tiers only.
    if autoscaling.target_cpu_utilization_percentage is not None:
        triggers.append(
            {
                "type": "cpu",
                "metricType": "Utilization",
                "metadata": {"value": str(autoscaling.target_cpu_utilization_percentage)},
            }
        )
    return triggers


def render_scaled_object(
    plan: Plan, config: OperatorConfig, *, keda_available: bool
) -> dict[str, Any] | None:
    """ScaledObject ``<name>`` scaling the Deployment, or ``None`` unless autoscaling with KEDA.

    Raises :class:`SpecError` when KEDA's API is not served (nothing would scale the model) or
    when no trigger applies (a GPU tier without ``targetInFlightRequests``).
    """
    autoscaling = plan.autoscaling
    if autoscaling is None or autoscaling.engine != AutoscalingEngine.KEDA:
        return None
    if not keda_available:
        raise SpecError(
            [
                SpecProblem(
                    field="spec.autoscaling.engine",
                    message=(
                        f"keda needs KEDA's {SCALED_OBJECT.kind} API ({SCALED_OBJECT.api_version}), "
                        "which this cluster does not serve; install KEDA or use engine: hpa"
                    ),
                )
            ]
        )
    triggers = _triggers(autoscaling, plan, config)
    if not triggers:
        raise no_metric_error(plan)
    return {
        "apiVersion": SCALED_OBJECT.api_version,
        "kind": SCALED_OBJECT.kind,
        "metadata": child_metadata(
            plan, plan.name, annotations={HPA_EXCLUDED_LABELS_ANNOTATION: ",".join(HPA_EXCLUDED_LABELS)}
        ),
        "spec": {
            "scaleTargetRef": scale_target(plan),
            "minReplicaCount": autoscaling.min_replicas,
            "maxReplicaCount": autoscaling.max_replicas,
            # KEDA creates and owns an HPA (keda-hpa-<name>); it gets the same behaviour as ours.
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": BEHAVIOR}},
            "triggers": triggers,
        },
    }
