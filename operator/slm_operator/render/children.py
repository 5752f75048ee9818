"""All children of one model, in a fixed order (the order ``slmctl render`` prints and the
operator applies: things the Deployment mounts first, then the Deployment, then the rest)."""

from __future__ import annotations

from typing import Any

from slm_operator.api.config import OperatorConfig
from slm_operator.api.plan import Plan
from slm_operator.api.spec import SmallLanguageModel
from slm_operator.render.deployment import render_deployment
from slm_operator.render.hpa import render_hpa
from slm_operator.render.keda import render_scaled_object
from slm_operator.render.modelfile import render_modelfile_configmap
from slm_operator.render.monitoring import render_monitoring
from slm_operator.render.networkpolicy import render_network_policy
from slm_operator.render.pdb import render_pdb
from slm_operator.render.pvc import render_cache_pvc
from slm_operator.render.secret import render_api_key_secret
from slm_operator.render.service import render_service


def render_children(
    model: SmallLanguageModel,
    plan: Plan,
    config: OperatorConfig,
    *,
    monitoring_available: bool,
    keda_available: bool = False,
) -> list[dict[str, Any]]:
    """The desired child objects of ``model`` as plain dicts: Secret, ConfigMap, PVC, Deployment,
    Service, NetworkPolicy, PDB, HPA or ScaledObject, ServiceMonitor, PrometheusRule (those that
    apply). ``monitoring_available``/``keda_available``: whether the cluster serves the Prometheus
    Operator's and KEDA's APIs.

    Pure and deterministic; no ownerReferences (the operator adds them). Raises
    :class:`~slm_operator.api.errors.SpecError` when a value cannot be rendered safely.
    """
    optional_before = [
        render_api_key_secret(plan),
        render_modelfile_configmap(plan),
        render_cache_pvc(plan),
    ]
    objects = [obj for obj in optional_before if obj is not None]
    objects.append(render_deployment(plan, config))
    objects.append(render_service(plan))
    objects.append(render_network_policy(model, plan, config))
    scalers = (
        render_pdb(plan),
        render_hpa(plan),
        render_scaled_object(plan, config, keda_available=keda_available),
    )
    objects.extend(obj for obj in scalers if obj is not None)
    objects.extend(render_monitoring(model, plan, monitoring_available=monitoring_available))
    return objects
