"""Rendered built-in objects validate against the real Kubernetes OpenAPI schemas.

``kubernetes-validate`` ships the JSON schemas of each Kubernetes minor version; strict mode
adds ``additionalProperties: false`` everywhere, so a misspelt or misplaced field fails as
``kubectl apply`` (server-side strict field validation) would reject it.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from render_inputs import all_objects

KUBERNETES_VERSIONS = ("1.29", "1.31", "1.33")
# Custom resources are checked against their own CRD schemas (test_prometheus_schemas.py,
# test_keda_schema.py).
CUSTOM_GROUPS = ("monitoring.coreos.com/", "keda.sh/")
OBJECTS = [(i, o) for i, o in all_objects() if not o["apiVersion"].startswith(CUSTOM_GROUPS)]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("object_id", "obj"), OBJECTS, ids=[i for i, _ in OBJECTS])
def test_object_validates_strictly(version: str, object_id: str, obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        pytest.fail(f"{object_id} is invalid for Kubernetes {version} at {path}: {exc.message}")


def test_every_built_in_kind_was_checked() -> None:
    kinds = {o["kind"] for _, o in OBJECTS}
    assert kinds == {
        "Secret",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }


def test_the_validator_rejects_an_unknown_field() -> None:
    # Guards the check itself: strict schemas must catch a field Kubernetes does not know.
    deployment = copy.deepcopy(next(o for _, o in OBJECTS if o["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsRoot"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
