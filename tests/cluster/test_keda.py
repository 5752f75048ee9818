"""The KEDA engine of autoscaling: refused while KEDA's API is not served, and a ScaledObject in
place of the HorizontalPodAutoscaler once it is (a stand-in for KEDA's CRD)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kube import Kube, wait_for
from sim_scenario import condition, create_ready
from simcluster import OperatorProcess, apply_crd, minimal_crd

pytestmark = pytest.mark.timeout(180)


def test_keda_engine_needs_keda_and_leaves_the_served_model_alone(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    create_ready(admin, namespace)
    admin.patch(
        "SmallLanguageModel",
        namespace,
        "tiny",
        {"spec": {"autoscaling": {"enabled": True, "engine": "keda"}}},
    )
    wait_for(
        lambda: condition(admin, namespace, "tiny", "SpecValid").get("status") == "False",
        timeout=30,
        message="refused",
    )
    assert "spec.autoscaling.engine" in condition(admin, namespace, "tiny", "SpecValid")["message"]
    assert admin.get("Deployment", namespace, "tiny") is not None


@pytest.fixture
def keda_crd(admin: Kube, operator: OperatorProcess) -> Iterator[None]:
    apply_crd(admin, minimal_crd("keda.sh", "ScaledObject", "scaledobjects", "v1alpha1"))
    operator.restart()  # discovery is cached: start with the kind present
    yield
    admin.delete("CustomResourceDefinition", None, "scaledobjects.keda.sh")
    wait_for(
        lambda: admin.get("CustomResourceDefinition", None, "scaledobjects.keda.sh") is None,
        timeout=60,
        message="KEDA's CRD removed",
    )
    operator.restart()


def test_keda_engine_renders_a_scaled_object_once_keda_is_served(
    admin: Kube, keda_crd: None, operator: OperatorProcess, namespace: str
) -> None:
    create_ready(admin, namespace, autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 3})
    assert admin.get("HorizontalPodAutoscaler", namespace, "tiny") is not None
    assert admin.get("ScaledObject", namespace, "tiny") is None
    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"autoscaling": {"engine": "keda"}}})
    wait_for(lambda: admin.get("ScaledObject", namespace, "tiny"), timeout=30, message="created")
    wait_for(
        lambda: admin.get("HorizontalPodAutoscaler", namespace, "tiny") is None, timeout=30, message="pruned"
    )
    scaled = admin.get("ScaledObject", namespace, "tiny") or {}
    assert scaled["spec"]["scaleTargetRef"]["name"] == "tiny"
    assert scaled["metadata"]["ownerReferences"][0]["kind"] == "SmallLanguageModel"
    admin.patch("SmallLanguageModel", namespace, "tiny", {"spec": {"autoscaling": {"engine": "hpa"}}})
    wait_for(lambda: admin.get("HorizontalPodAutoscaler", namespace, "tiny"), timeout=30, message="HPA back")
    wait_for(lambda: admin.get("ScaledObject", namespace, "tiny") is None, timeout=30, message="pruned")
