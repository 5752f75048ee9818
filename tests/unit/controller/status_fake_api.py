"""An in-memory stand-in for :class:`KubeApi`, enough for one reconcile pass without a cluster.

It answers the calls :func:`reconcile_model` makes (discovery, GET of an unseen child, apply,
create, delete) from what the test puts in it, and records every write. Like the API server, an
apply carrying a ``resourceVersion`` (the create-only apply of a child never seen) fails with a
conflict when an object of that name exists.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from slm_operator.contract.kinds import DEPLOYMENT, ManagedKind
from slm_operator.controller.kubeapi import ApiError, ConflictError, KubeApi, TransientApiError

MODEL_UID = "uid-m1"


class FakeApi(KubeApi):
    """Answers from memory: ``foreign`` objects for GETs, ``refuse`` statuses for writes by kind."""

    def __init__(
        self,
        *,
        foreign: Mapping[tuple[str, str], dict[str, Any]] | None = None,
        refuse: Mapping[str, int] | None = None,
        discovery_fails: bool = False,
        deployment_status: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(client=None)
        self.foreign = dict(foreign or {})
        self.refuse = dict(refuse or {})
        self.discovery_fails = discovery_fails
        self.deployment_status = dict(deployment_status or {})
        self.writes: list[str] = []

    def has_api(self, group_version: str, plural: str) -> bool:
        if self.discovery_fails:
            raise TransientApiError(503, "the discovery endpoint is unavailable")
        return False

    def get(self, kind: ManagedKind, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.foreign.get((kind.kind, name)))

    def apply(self, kind: ManagedKind, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if (kind.kind, name) in self.foreign and body["metadata"].get("resourceVersion"):
            raise ConflictError(409, "the object has been modified")
        return self._write(kind, name, body)

    def create(self, kind: ManagedKind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._write(kind, str(body["metadata"]["name"]), body)

    def delete(self, kind: ManagedKind, namespace: str, name: str, *, uid: str) -> bool:
        self.writes.append(f"delete {kind.kind}/{name}")
        return True

    def _write(self, kind: ManagedKind, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if kind.kind in self.refuse:
            raise ApiError(self.refuse[kind.kind], f"{kind.plural} is refused")
        self.writes.append(f"write {kind.kind}/{name}")
        live = copy.deepcopy(dict(body))
        live["metadata"] = {**live["metadata"], "uid": f"uid-{kind.kind}-{name}", "generation": 1}
        if kind == DEPLOYMENT and self.deployment_status:
            live["status"] = copy.deepcopy(self.deployment_status)
        return live
