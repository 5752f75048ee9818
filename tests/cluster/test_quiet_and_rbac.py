"""What the operator does when nothing happens (the API server's audit log counts every request
by the operator's user), and what the chart's RBAC lets it do in each install mode."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kube import ApiError, Credentials, Kube, wait_for
from sim_scenario import children, create_ready, model, slm, status, wait_phase
from simcluster import OperatorProcess, SimCluster, install_chart, service_account_kubeconfig, uninstall_chart

pytestmark = pytest.mark.timeout(240)

RESYNC = 8.0  # the operator's --resync-seconds in conftest.py


def quiet_models(admin: Kube, namespace: str) -> None:
    """A mix of what a cluster holds: an Ollama model without a Modelfile, one with, a GPU model
    with autoscaling and a PodDisruptionBudget."""
    create_ready(admin, namespace, "plain")
    create_ready(
        admin,
        namespace,
        "tuned",
        ollama={"modelfile": {"system": "Be brief.", "parameters": {"temperature": 0.2}}},
    )
    create_ready(
        admin,
        namespace,
        "gpu",
        model={"catalog": "qwen3-0.6b"},
        hardware={"tier": "gpu-small"},
        replicas=2,
        autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 3},
    )
    # The Deployment starts at minReplicas (the operator applies at least the HPA's minimum);
    # the model is quiet once both replicas are ready and it says so.
    wait_for(
        lambda: (
            status(admin, namespace, "gpu").get("readyReplicas") == 2
            and status(admin, namespace, "gpu").get("phase") == "Ready"
        ),
        timeout=60,
        message="both replicas ready",
    )


def others_gone(admin: Kube, namespace: str) -> None:
    """Wait until the namespaces of earlier tests are deleted (their teardown is not waited
    for): the operator rightly reports their models' pods going, and that is not quiet."""
    wait_for(
        lambda: (
            not [
                ns
                for ns in admin.list("Namespace", None)
                if ns["metadata"]["name"] != namespace
                and (ns.get("status") or {}).get("phase") == "Terminating"
            ]
        ),
        timeout=120,
        message="earlier tests' namespaces deleted",
    )


def test_a_quiet_cluster_sees_no_write_from_the_operator(
    sim: SimCluster, admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    quiet_models(admin, namespace)
    others_gone(admin, namespace)
    time.sleep(3)  # the last status patches and Events of the rollout
    mark = sim.audit.mark()
    time.sleep(2 * RESYNC + 4)  # more than two resync periods
    writes = [e for e in sim.audit.events(mark, user=operator.install.user) if e.is_write]
    assert writes == [], Counter((e.verb, e.resource, e.subresource, e.name) for e in writes)
    # A fresh operator (a pod restart) resumes every model and finds nothing to change either.
    mark = sim.audit.mark()
    operator.restart()
    time.sleep(RESYNC + 4)
    writes = [e for e in sim.audit.events(mark, user=operator.install.user) if e.is_write]
    assert writes == [], Counter((e.verb, e.resource, e.subresource, e.name) for e in writes)


def test_a_quiet_cluster_sees_only_watches_from_the_operator(
    sim: SimCluster, admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    quiet_models(admin, namespace)
    others_gone(admin, namespace)
    time.sleep(3)
    mark = sim.audit.mark()
    time.sleep(2 * RESYNC + 4)
    requests = [e for e in sim.audit.events(mark, user=operator.install.user) if e.verb != "watch"]
    assert requests == [], Counter((e.verb, e.resource, e.namespace) for e in requests)


def test_models_carry_no_finalizer(admin: Kube, operator: OperatorProcess, namespace: str) -> None:
    create_ready(admin, namespace)
    time.sleep(RESYNC + 2)  # a resync pass too
    assert not slm(admin, namespace, "tiny")["metadata"].get("finalizers")


def test_a_large_spec_does_not_break_the_operator(
    sim: SimCluster, admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    """A spec within the CRD's limits must not push the model over the API server's 256 KiB
    annotation limit (kopf stores its diff base in an annotation): the API server would refuse
    every patch of the model, and the operator would retry in a loop."""
    mark = sim.audit.mark()
    # The CRD allows 64 messages of 16 KiB each: 20 of 15 000 characters are about 300 KB.
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"example {i}: " + "x" * 15000}
        for i in range(20)
    ]
    body = model("large", namespace, ollama={"modelfile": {"system": "Be brief.", "messages": messages}})
    admin.create(body)
    wait_phase(admin, namespace, "large", "Ready", timeout=90)
    annotations = slm(admin, namespace, "large")["metadata"].get("annotations") or {}
    assert sum(len(k) + len(v) for k, v in annotations.items()) < 256 * 1024
    admin.patch("SmallLanguageModel", namespace, "large", {"spec": {"replicas": 2}})
    wait_for(lambda: status(admin, namespace, "large").get("observedGeneration") == 2, timeout=60)
    time.sleep(RESYNC)
    refused = [
        e
        for e in sim.audit.events(mark, user=operator.install.user)
        if e.namespace == namespace and e.code >= 400 and e.code != 404  # a 404 GET: not created yet
    ]
    assert refused == [], Counter((e.verb, e.resource, e.subresource, e.code) for e in refused)


@pytest.fixture
def namespaced_install(
    sim: SimCluster, admin: Kube, operator_process: OperatorProcess, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, Kube]]:
    """A second install of the chart that watches only ``team-a``; the cluster-wide operator is
    stopped meanwhile."""
    operator_process.stop()
    values = {"watchNamespaces": ["team-a"]}
    install = install_chart(admin, values, release="scoped", namespace="scoped-system")
    kubeconfig = service_account_kubeconfig(admin, install, tmp_path / "kubeconfig")
    scoped = OperatorProcess(install=install, kubeconfig=kubeconfig, workdir=tmp_path, extra_args=[])
    scoped.start()
    yield scoped, Kube(Credentials.from_kubeconfig(kubeconfig))
    scoped.stop()
    uninstall_chart(admin, install)
    operator_process.start()


def test_namespaced_install_serves_its_namespace_only(
    admin: Kube, namespaced_install: tuple[OperatorProcess, Kube]
) -> None:
    scoped, as_operator = namespaced_install
    admin.ensure_namespace("team-b")
    create_ready(admin, "team-a", "watched")
    admin.create(model("ignored", "team-b"))
    time.sleep(RESYNC)
    assert not status(admin, "team-b", "ignored")
    assert children(admin, "team-b") == {}
    # The chart's RBAC: Secrets readable in the watched namespace, not elsewhere.
    assert as_operator.list("Secret", "team-a") is not None
    with pytest.raises(ApiError) as denied:
        as_operator.list("Secret", "team-b")
    assert denied.value.code == 403
    with pytest.raises(ApiError):
        as_operator.list("Secret", None)
    admin.delete("SmallLanguageModel", "team-b", "ignored")
    admin.delete("SmallLanguageModel", "team-a", "watched")
    assert scoped.alive()


def test_owner_references_are_allowed_under_owner_references_permission_enforcement(
    sim: SimCluster, admin: Kube, operator: OperatorProcess, namespace: str
) -> None:
    """The API server runs the OwnerReferencesPermissionEnforcement admission plugin: setting
    blockOwnerDeletion on a child needs update on smalllanguagemodels/finalizers."""
    kube_apiserver_args = (sim.directory / "pids" / "kube-apiserver.pid").read_text().strip()
    cmdline = Path(f"/proc/{kube_apiserver_args}/cmdline").read_bytes().decode()
    assert "OwnerReferencesPermissionEnforcement" in cmdline
    create_ready(admin, namespace)
    owner = children(admin, namespace, "tiny")[("Deployment", "tiny")]["metadata"]["ownerReferences"][0]
    assert owner["blockOwnerDeletion"] is True
    rules = yaml.safe_dump(
        [o for o in operator.install.objects if o["kind"] in ("ClusterRole", "Role")], sort_keys=True
    )
    assert "smalllanguagemodels/finalizers" in rules
