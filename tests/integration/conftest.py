"""Fixtures: the API emulator on a real port, a kubeconfig pointing at it, and the operator.

The operator runs on its own thread through the same entry as ``slmctl run`` (``parse_options``
+ ``run_operator``), logging in from the kubeconfig file named by ``KUBECONFIG`` -- exactly as it
would against a real cluster.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulator import ClusterEmulator, DeploymentController
from harness import NAMESPACE, OPERATOR_ARGV, OperatorHandle, declare_resources


@pytest.fixture
def kmock_options() -> dict[str, Any]:
    """Make kmock's own fixture serve our extended emulator."""
    return {"cls": ClusterEmulator}


@pytest.fixture
async def cluster(kmock: ClusterEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ClusterEmulator:
    """The emulator with our kinds declared, one namespace, and ``KUBECONFIG`` pointing at it."""
    declare_resources(kmock)
    await kmock.server_create("v1/namespaces", None, {"metadata": {"name": NAMESPACE}})
    server = str(kmock.url).rstrip("/")
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "emulator-token"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}],
        "current-context": "emulator",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return kmock


@pytest.fixture
def deployments(cluster: ClusterEmulator) -> DeploymentController:
    controller = DeploymentController(cluster)
    controller.install()
    return controller


@pytest.fixture
async def operator(
    cluster: ClusterEmulator, deployments: DeploymentController
) -> AsyncIterator[OperatorHandle]:
    handle = OperatorHandle(argv=list(OPERATOR_ARGV))
    await handle.start()
    try:
        yield handle
    finally:
        await handle.stop()
        await deployments.settle()


@pytest.fixture
def operator_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
