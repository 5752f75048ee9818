"""The Prometheus Operator's kinds once its CRDs are installed, and ``slmctl run`` as a process:
its metrics and liveness endpoints and a clean stop on SIGTERM."""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Iterator

import pytest
from kube import Kube, wait_for
from sim_scenario import create_ready
from simcluster import OperatorProcess, apply_crd, minimal_crd

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def prometheus_operator_crds(admin: Kube, operator: OperatorProcess) -> Iterator[None]:
    for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")):
        apply_crd(admin, minimal_crd("monitoring.coreos.com", kind, plural))
    operator.restart()  # discovery is cached: start with the kinds present
    yield
    for plural in ("servicemonitors", "prometheusrules"):
        admin.delete("CustomResourceDefinition", None, f"{plural}.monitoring.coreos.com")
    operator.restart()


def test_monitoring_objects_follow_discovery_and_the_spec(
    admin: Kube, prometheus_operator_crds: None, operator: OperatorProcess, namespace: str
) -> None:
    create_ready(admin, namespace)
    assert admin.get("ServiceMonitor", namespace, "tiny") is not None
    assert admin.get("PrometheusRule", namespace, "tiny") is not None
    admin.patch(
        "SmallLanguageModel",
        namespace,
        "tiny",
        {"spec": {"monitoring": {"serviceMonitor": "disabled", "prometheusRule": "disabled"}}},
    )
    wait_for(lambda: admin.get("ServiceMonitor", namespace, "tiny") is None, timeout=30, message="pruned")
    wait_for(lambda: admin.get("PrometheusRule", namespace, "tiny") is None, timeout=30, message="pruned")
    assert admin.get("Deployment", namespace, "tiny") is not None


def test_slmctl_run_serves_metrics_and_liveness_and_stops_on_sigterm(
    admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    create_ready(admin, namespace)
    wait_for(lambda: operator.metric("slm_operator_reconcile_total", result="ok") >= 1, timeout=30)
    text = operator.metrics_text()
    assert "slm_operator_build_info{version=" in text
    assert "slm_operator_reconcile_duration_seconds_bucket" in text
    wait_for(lambda: operator.metric("slm_operator_models", phase="Ready") >= 1, timeout=30)
    process = operator.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, operator.logs()[-3000:]
    operator.process = None
    secret = admin.get("Secret", namespace, "tiny-api-key")
    assert secret is not None
    assert secret["data"]["api-key"] not in operator.logs()


def test_liveness_endpoint_answers(operator: OperatorProcess) -> None:
    url = operator.liveness_url
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
