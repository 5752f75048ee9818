"""Fixtures of the cluster tier: one simulated control plane per test run, the CRD and the chart
installed once, and the operator running as the chart's ServiceAccount.

``SLM_SIM_DIR`` names the folder of an already running simulated cluster (``make cluster``) to
reuse instead of starting one; the tier then leaves that cluster running.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultproxy import FaultProxy
from kube import Kube
from simcluster import (
    ChartInstall,
    OperatorProcess,
    SimCluster,
    install_chart,
    install_crd,
    service_account_kubeconfig,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    reuse = os.environ.get("SLM_SIM_DIR")
    if reuse:
        cluster = SimCluster(directory=Path(reuse).resolve(), started_here=False)
        assert cluster.kubeconfig.exists(), (
            f"SLM_SIM_DIR={reuse} has no kubeconfig: is a cluster running there?"
        )
    else:
        cluster = SimCluster.start(tmp_path_factory.mktemp("simcluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def admin(sim: SimCluster) -> Kube:
    return sim.admin


@pytest.fixture(scope="session")
def chart(sim: SimCluster, admin: Kube) -> ChartInstall:
    """The CRD from crds/ and the chart with its default values, cluster-wide."""
    install_crd(admin)
    return install_chart(admin, {})


@pytest.fixture(scope="session")
def operator_process(
    sim: SimCluster, admin: Kube, chart: ChartInstall, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = service_account_kubeconfig(admin, chart, workdir / "kubeconfig")
    process = OperatorProcess(
        install=chart, kubeconfig=kubeconfig, workdir=workdir, extra_args=["--resync-seconds", "8"]
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def proxied(
    admin: Kube, operator_process: OperatorProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[FaultProxy, OperatorProcess]]:
    """The operator talking to the API server through the fault proxy (the session's operator
    is stopped meanwhile: one operator at a time). ``@pytest.mark.resync(seconds)`` sets its
    resync period (8 s unless marked)."""
    marker = request.node.get_closest_marker("resync")
    resync = str(marker.args[0]) if marker else "8"
    assert admin.creds.ca_file is not None
    proxy = FaultProxy(upstream=admin.creds.server, ca_file=admin.creds.ca_file)
    proxy.start()
    operator_process.stop()
    kubeconfig = service_account_kubeconfig(
        admin, operator_process.install, tmp_path / "kubeconfig", server=proxy.url
    )
    proxied_operator = OperatorProcess(
        install=operator_process.install,
        kubeconfig=kubeconfig,
        workdir=tmp_path,
        extra_args=["--resync-seconds", resync, "--request-timeout", "3"],
    )
    proxied_operator.start()
    try:
        yield proxy, proxied_operator
    finally:
        proxied_operator.stop()
        proxy.stop()
        operator_process.start()


@pytest.fixture
def operator(operator_process: OperatorProcess) -> Iterator[OperatorProcess]:
    """The running operator; a test that stops it gets it started again afterwards."""
    if not operator_process.alive():
        operator_process.process = None
        operator_process.start()
    yield operator_process
    if not operator_process.alive():
        operator_process.process = None
        operator_process.start()


_namespaces = itertools.count(1)
_run = secrets.token_hex(2)  # a reused cluster (SLM_SIM_DIR) keeps earlier runs' namespaces


@pytest.fixture
def namespace(admin: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, so scenarios never see each other's objects; deleted after
    the test (not waited for) so the fake nodes' capacity is given back."""
    test = request.node.name.split("[")[0].removeprefix("test_")[:40]
    name = f"t{next(_namespaces)}-{_run}-{test}".replace("_", "-").rstrip("-")
    admin.ensure_namespace(name)
    yield name
    admin.delete("Namespace", None, name)
