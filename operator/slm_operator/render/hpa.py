"""The autoscaling/v2 HorizontalPodAutoscaler (``spec.autoscaling.enabled`` with engine hpa)."""

from __future__ import annotations

from typing import Any

from slm_operator.api.errors import SpecError, SpecProblem
from slm_operator.api.plan import AutoscalingPlan, Plan
from slm_operator.api.sections import AutoscalingEngine
from slm_operator.contract.kinds import DEPLOYMENT, HPA
from slm_operator.render.meta import child_metadata

IN_FLIGHT_METRIC = "slm_gateway_in_flight_requests"
# KEDA's admission webhook refuses a ScaledObject for a Deployment that an HPA already scales,
# unless the HPA opts out with this annotation (kedacore/keda apis/keda/v1alpha1/
# scaledobject_webhook.go). The operator applies the new ScaledObject before it prunes its own
# HPA, so without it switching a model from engine hpa to keda would fail for good.
KEDA_HPA_OWNERSHIP_ANNOTATION = {"validations.keda.sh/hpa-ownership": "false"}

# Model pods take minutes to download and load weights: scale down slowly (a pod removed by a
# short lull is expensive to bring back) and up by at most two pods a minute.
SCALE_DOWN_STABILIZATION_SECONDS = 300
BEHAVIOR: dict[str, Any] = {
    "scaleDown": {
        "stabilizationWindowSeconds": SCALE_DOWN_STABILIZATION_SECONDS,
        "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
    },
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
    },
}


def _metrics(autoscaling: AutoscalingPlan) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = []
    # The plan keeps a CPU target on CPU tiers only (planning/pod.py).
    if autoscaling.target_cpu_utilization_percentage is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": autoscaling.target_cpu_utilization_percentage,
                    },
                },
            }
        )
    if autoscaling.target_in_flight_requests is not None:
        # A Pods metric served through the custom-metrics API: it needs prometheus-adapter to
        # expose the gateway's slm_gateway_in_flight_requests gauge (the chart ships its rule:
        # docs/autoscaling.md); without one the HPA reports FailedGetPodsMetric and keeps the
        # current replica count. engine: keda needs no adapter (render/keda.py).
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": IN_FLIGHT_METRIC},
                    "target": {
                        "type": "AverageValue",
                        "averageValue": str(autoscaling.target_in_flight_requests),
                    },
                },
            }
        )
    return metrics


def scale_target(plan: Plan) -> dict[str, str]:
    """The model's Deployment, as an HPA's or a ScaledObject's ``scaleTargetRef``."""
    return {"apiVersion": DEPLOYMENT.api_version, "kind": DEPLOYMENT.kind, "name": plan.name}


def no_metric_error(plan: Plan) -> SpecError:
    """A GPU tier without ``targetInFlightRequests``: nothing could drive scaling."""
    return SpecError(
        [
            SpecProblem(
                field="spec.autoscaling.targetInFlightRequests",
                message=(
                    f"tier {plan.tier} has an accelerator, so CPU utilisation cannot drive scaling; "
                    "set targetInFlightRequests"
                ),
            )
        ]
    )


def render_hpa(plan: Plan) -> dict[str, Any] | None:
    """HPA ``<name>`` scaling the Deployment, or ``None`` when autoscaling is off or KEDA scales.

    Raises :class:`SpecError` when no metric applies (a GPU tier without
    ``targetInFlightRequests``): an HPA without metrics would silently fall back to CPU.
    """
    autoscaling = plan.autoscaling
    if autoscaling is None or autoscaling.engine != AutoscalingEngine.HPA:
        return None
    metrics = _metrics(autoscaling)
    if not metrics:
        raise no_metric_error(plan)
    return {
        "apiVersion": HPA.api_version,
        "kind": HPA.kind,
        "metadata": child_metadata(plan, plan.name, annotations=KEDA_HPA_OWNERSHIP_ANNOTATION),
        "spec": {
            "scaleTargetRef": scale_target(plan),
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": metrics,
            "behavior": BEHAVIOR,
        },
    }
