"""The model-cache PersistentVolumeClaim ``<name>-cache`` (only when the plan has a cache claim:
``spec.storage`` is set)."""

from __future__ import annotations

from typing import Any

from slm_operator.api.plan import Plan
from slm_operator.contract.kinds import PVC
from slm_operator.contract.names import cache_pvc_name
from slm_operator.render.meta import child_metadata


def render_cache_pvc(plan: Plan) -> dict[str, Any] | None:
    """The cache claim, or ``None`` when the cache is an emptyDir."""
    storage = plan.storage
    if storage is None:
        return None
    spec: dict[str, Any] = {
        "accessModes": [str(storage.access_mode)],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": PVC.api_version,
        "kind": PVC.kind,
        "metadata": child_metadata(plan, cache_pvc_name(plan.name)),
        "spec": spec,
    }
