"""The integration harness: the namespace, resource declarations, a bounded wait and a handle
on the running operator. Fixtures live in ``conftest.py``; tests import these helpers from here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulator import ClusterEmulator

from slm_operator.api.spec import API_GROUP, API_VERSION, KIND, PLURAL
from slm_operator.controller.handlers import ControllerContext
from slm_operator.controller.run import parse_options, run_operator
from slm_operator.render.kinds import served_kinds

NAMESPACE = "ns1"
SLM = f"{API_GROUP}/{API_VERSION}/{PLURAL}"


def declare_resources(emulator: ClusterEmulator, *, monitoring: bool = False, keda: bool = False) -> None:
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
    for kind in served_kinds(monitoring_available=monitoring, keda_available=keda):
        emulator.resources[f"{kind.api_version}/{kind.plural}"] = {
            "kind": kind.kind,
            "namespaced": True,
            "verbs": ["get", "list", "watch", "create", "patch", "delete"],
            "subresources": ["status"] if kind.kind in ("Deployment", "HorizontalPodAutoscaler") else [],
        }


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
