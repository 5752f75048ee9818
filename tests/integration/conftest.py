"""Fixtures: the API emulator on a real port, a kubeconfig pointing at it, and the operator.

The operator runs in-process through the same entry as ``slmctl run`` (``parse_options`` +
``run_operator``), logging in from the kubeconfig file named by ``KUBECONFIG`` — exactly as it
would against a real cluster.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulator import ClusterEmulator, DeploymentController

from slm_operator.api.spec import API_GROUP, API_VERSION, KIND, PLURAL
from slm_operator.controller.handlers import ControllerContext
from slm_operator.controller.run import parse_options, run_operator
from slm_operator.render.kinds import MANAGED_KINDS

NAMESPACE = "ns1"
SLM = f"{API_GROUP}/{API_VERSION}/{PLURAL}"


@pytest.fixture
def kmock_options() -> dict[str, Any]:
    """Make kmock's own fixture serve our extended emulator."""
    return {"cls": ClusterEmulator}


def declare_resources(emulator: ClusterEmulator, *, monitoring: bool = False) -> None:
    emulator.resources[SLM] = {
        "kind": KIND,
        "namespaced": True,
        "verbs": ["get", "list", "watch", "patch", "create", "delete"],
        "subresources": ["status", "scale"],
        "shortnames": ["slm", "slms"],
    }
    emulator.resources["v1/namespaces"] = {
        "kind": "Namespace",
        "namespaced": False,
        "verbs": ["get", "list", "watch"],
    }
    emulator.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = {
        "kind": "CustomResourceDefinition",
        "namespaced": False,
        "verbs": ["get", "list", "watch"],
    }
    emulator.resources["v1/events"] = {"kind": "Event", "namespaced": True, "verbs": ["create", "list"]}
    emulator.resources["events.k8s.io/v1/events"] = {"kind": "Event", "namespaced": True, "verbs": ["create"]}
    for kind in MANAGED_KINDS:
        if kind.optional_crd and not monitoring:
            continue
        emulator.resources[f"{kind.api_version}/{kind.plural}"] = {
            "kind": kind.kind,
            "namespaced": True,
            "verbs": ["get", "list", "watch", "create", "patch", "delete"],
            "subresources": ["status"] if kind.kind in ("Deployment", "HorizontalPodAutoscaler") else [],
        }


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


@dataclass
class OperatorHandle:
    """A running operator on its own thread and event loop, as ``slmctl run`` runs it.

    ``restart()`` stops it and starts a fresh one (a pod restart: nothing survives in memory).
    """

    argv: list[str]
    contexts: list[ControllerContext] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event | None = None
    _thread: threading.Thread | None = None

    async def start(self) -> None:
        self._stop, ready = threading.Event(), threading.Event()
        options = parse_options(self.argv)
        stop = self._stop

        def serve() -> None:
            try:
                asyncio.run(run_operator(options, stop_flag=stop, ready_flag=ready, context=self.contexts))
            except BaseException as exc:  # reported by start() and stop()
                self.errors.append(exc)

        self._thread = threading.Thread(target=serve, name="slm-operator", daemon=True)
        self._thread.start()
        thread = self._thread
        await wait_for(lambda: ready.is_set() or not thread.is_alive(), timeout=15, message="operator ready")
        if self.errors:
            raise self.errors[0]

    async def stop(self) -> None:
        if self._stop is None or self._thread is None:
            return
        self._stop.set()
        await asyncio.to_thread(self._thread.join, 20)
        assert not self._thread.is_alive(), "the operator did not stop within 20 s"
        self._stop = self._thread = None
        real = [e for e in self.errors if not isinstance(e, asyncio.CancelledError)]
        assert not real, f"the operator failed: {real!r}"

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def ctx(self) -> ControllerContext:
        return self.contexts[-1]

    def nudge(self, name: str) -> None:
        """What a child's watch event does: wake the model's drift timer."""
        self.ctx.nudge(NAMESPACE, name)


OPERATOR_ARGV = [
    "--namespace",
    NAMESPACE,
    "--metrics-port",
    "0",
    "--request-timeout",
    "2",
    "--watch-timeout",
    "20",
    "--resync-seconds",
    "30",
]


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


# A poller, not a context: the bounded wait is the point (asyncio.timeout would need a loop anyway).
async def wait_for(predicate: Callable[[], Any], *, timeout: float, message: str = "") -> Any:  # noqa: ASYNC109
    """Poll ``predicate`` until it returns something truthy, at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        await asyncio.sleep(0.05)


@pytest.fixture
def operator_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
