"""Faults a real server cannot make on demand (500s, 409s, dropped connections, slow answers),
through a fault-injecting proxy in front of the real API server; operator restarts in the middle
of a reconcile; and a restart of the API server itself. Every case converges with no duplicate
object."""

from __future__ import annotations

import pytest
from faultproxy import FaultProxy
from kube import Kube, wait_for
from sim_scenario import children, condition, model, phase, wait_phase
from simcluster import OperatorProcess, SimCluster

pytestmark = pytest.mark.timeout(240)


def test_server_errors_conflicts_drops_and_timeouts_converge(
    admin: Kube, proxied: tuple[FaultProxy, OperatorProcess], namespace: str
) -> None:
    proxy, operator = proxied
    ns = f"/namespaces/{namespace}"
    proxy.inject("POST", rf"{ns}/secrets$", status=500, times=2)
    proxy.inject("PATCH", rf"{ns}/deployments/tiny$", status=503, times=2)
    proxy.inject("PATCH", rf"{ns}/networkpolicies/tiny$", status=409, times=1)
    proxy.inject("PATCH", rf"{ns}/services/tiny$", drop=True, times=1)
    # Longer than the operator's request timeout (3 s): the client gives up and retries.
    proxy.inject("PATCH", rf"{ns}/smalllanguagemodels/tiny/status$", delay=4.0, times=1)
    admin.create(model("tiny", namespace))
    wait_phase(admin, namespace, "tiny", "Ready", timeout=90)
    assert all(fault.hits == fault.times for fault in proxy.faults), [
        (f.method, f.path, f.hits) for f in proxy.faults
    ]
    assert set(children(admin, namespace, "tiny")) == {
        ("Deployment", "tiny"),
        ("Service", "tiny"),
        ("Secret", "tiny-api-key"),
        ("NetworkPolicy", "tiny"),
    }
    assert operator.metric("slm_operator_apply_errors_total") >= 3


def test_restart_mid_reconcile_converges_without_duplicates(
    admin: Kube, sim: SimCluster, proxied: tuple[FaultProxy, OperatorProcess], namespace: str
) -> None:
    proxy, operator = proxied
    # Stall the Service apply so the crash lands in the middle of the first reconcile.
    stall = proxy.inject("PATCH", rf"/namespaces/{namespace}/services/tiny$", delay=20.0, times=1)
    mark = sim.audit.mark()
    admin.create(model("tiny", namespace))
    wait_for(lambda: stall.hits == 1, timeout=30, message="the Service apply is in flight")
    assert admin.get("NetworkPolicy", namespace, "tiny") is None  # applied after the Service
    operator.kill()
    operator.process = None
    operator.start()
    wait_phase(admin, namespace, "tiny", "Ready", timeout=90)
    assert len(children(admin, namespace, "tiny")) == 4
    secret_creates = [
        e
        for e in sim.audit.events(mark, user=operator.install.user)
        if e.verb == "create" and e.resource == "secrets" and e.namespace == namespace and e.code < 300
    ]
    assert len(secret_creates) == 1  # the API key was generated once


def test_apiserver_restart_converges(
    admin: Kube, sim: SimCluster, operator: OperatorProcess, namespace: str
) -> None:
    admin.create(model("before", namespace))
    wait_phase(admin, namespace, "before", "Ready")
    sim.restart_apiserver()
    # The operator's watches reconnect: a model created after the restart is served too, and a
    # child deleted after it is repaired.
    admin.create(model("after", namespace))
    wait_phase(admin, namespace, "after", "Ready", timeout=90)
    admin.delete("Service", namespace, "before")
    wait_for(lambda: admin.get("Service", namespace, "before") is not None, timeout=60, message="repaired")
    assert phase(admin, namespace, "before") == "Ready"
    assert len(children(admin, namespace)) == 8
    assert operator.alive()


def test_transient_errors_on_a_serving_model_do_not_flap_its_status(
    admin: Kube, proxied: tuple[FaultProxy, OperatorProcess], namespace: str
) -> None:
    proxy, _operator = proxied
    admin.create(model("tiny", namespace))
    wait_phase(admin, namespace, "tiny", "Ready", timeout=60)
    ready_since = condition(admin, namespace, "tiny", "Ready")["lastTransitionTime"]
    service = admin.get("Service", namespace, "tiny")
    assert service is not None
    good = service["metadata"]["labels"]
    # Drift on the Service (a Deployment edit would start a real rollout, during which the
    # model is rightly not Ready): its repair meets two server errors.
    fault = proxy.inject("PATCH", rf"/namespaces/{namespace}/services/tiny$", status=500, times=2)
    admin.patch(
        "Service", namespace, "tiny", {"metadata": {"labels": {"app.kubernetes.io/component": "edited"}}}
    )
    wait_for(lambda: fault.hits == 2, timeout=60, message="both failures served")
    assert phase(admin, namespace, "tiny") == "Ready"
    assert condition(admin, namespace, "tiny", "Ready")["lastTransitionTime"] == ready_since
    assert condition(admin, namespace, "tiny", "Degraded").get("status") == "False"
    wait_for(
        lambda: (admin.get("Service", namespace, "tiny") or {})["metadata"]["labels"] == good,
        timeout=60,
        message="drift repaired",
    )
