"""The simulated cluster for the benchmark: ``e2e/sim/cluster.sh``, admin access, and a
ServiceAccount identity per operator (so the audit log tells their requests apart, and the
chart's own RBAC -- not an admin's -- is what the operator runs with)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from slm_operator.controller.kubeapi import ConflictError, KubeApi

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "e2e" / "sim" / "cluster.sh"
CRD = ROOT / "crds" / "slm.dev_smalllanguagemodels.yaml"
RBAC = ROOT / "charts" / "slm-operator" / "files" / "rbac.yaml"
SYSTEM_NAMESPACE = "slm-bench"


def monitoring_crd(plural: str, kind: str) -> dict[str, Any]:
    """A stand-in for a Prometheus Operator CRD: served, schemaless (the bench only applies)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


def admin_api(kubeconfig: Path) -> KubeApi:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration
    )
    return KubeApi(client=kubernetes.client.ApiClient(configuration), request_timeout=60)


def wait(predicate: Callable[[], bool], *, timeout: float, what: str, every: float = 1.0) -> float:
    """Poll until ``predicate`` holds; the seconds it took (RuntimeError after ``timeout``)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - start


@dataclass
class SimCluster:
    """A running simulated cluster in ``directory`` (started here unless it already runs)."""

    directory: Path
    started_here: bool = False

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.directory / "audit.log"

    def up(self) -> None:
        if not self.kubeconfig.exists():
            subprocess.run(["bash", str(CLUSTER_SH), "up", str(self.directory)], check=True)
            self.started_here = True
        self.api = admin_api(self.kubeconfig)

    def down(self) -> None:
        if self.started_here:
            subprocess.run(["bash", str(CLUSTER_SH), "down", str(self.directory)], check=True)

    # -- set-up ------------------------------------------------------------------------------

    def create(self, path: str, body: dict[str, Any]) -> None:
        with contextlib.suppress(ConflictError):  # already there from an earlier run
            self.api.call("POST", path, body=body)

    def install_crds(self) -> None:
        crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        self.create(crds, yaml.safe_load(CRD.read_text(encoding="utf-8")))
        self.create(crds, monitoring_crd("servicemonitors", "ServiceMonitor"))
        self.create(crds, monitoring_crd("prometheusrules", "PrometheusRule"))
        for name in (
            "smalllanguagemodels.slm.dev",
            "servicemonitors.monitoring.coreos.com",
            "prometheusrules.monitoring.coreos.com",
        ):
            wait(lambda name=name: self._established(name), timeout=60, what=f"CRD {name}")  # type: ignore[misc]

    def _established(self, name: str) -> bool:
        crd = self.api.call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    def add_nodes(self, count: int) -> None:
        """``count`` large fake CPU nodes (kwok manages every node), so N models' pods fit.

        A model's pod asks for 4 CPUs and 16 GiB: the simulated cluster's own CPU nodes hold
        about 30; each of these holds 250 (its pod limit).
        """
        for n in range(count):
            name = f"bench-cpu-{n:02d}"
            capacity = {"cpu": "1100", "memory": "5Ti", "pods": "250", "ephemeral-storage": "1Ti"}
            self.create(
                "/api/v1/nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                        },
                        "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
                    },
                    "status": {"capacity": capacity, "allocatable": capacity},
                },
            )

    def create_namespaces(self, names: list[str]) -> None:
        for name in names:
            self.create("/api/v1/namespaces", {"metadata": {"name": name}})

    def delete_namespaces(self, names: list[str], *, timeout: float) -> float:
        """Delete namespaces and wait until they are gone; the seconds it took."""
        for name in names:
            self.api.call("DELETE", f"/api/v1/namespaces/{name}")
        return wait(
            lambda: all(self.api.call("GET", f"/api/v1/namespaces/{n}") is None for n in names),
            timeout=timeout,
            what="namespaces deleted",
            every=2.0,
        )

    def service_account_kubeconfig(self, name: str) -> tuple[Path, str]:
        """A kubeconfig for a ServiceAccount bound to the chart's all-namespaces RBAC; its user name."""
        self.create_namespaces([SYSTEM_NAMESPACE])
        self.create(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/serviceaccounts", {"metadata": {"name": name}})
        rules = yaml.safe_load(RBAC.read_text(encoding="utf-8"))
        for purpose, scopes in rules.items():
            role = f"{name}-{purpose}"
            body = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role},
                "rules": [rule for scope in ("cluster", "namespaced") for rule in scopes.get(scope) or []],
            }
            self.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", body)
            self.create(
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": role},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": SYSTEM_NAMESPACE}],
                },
            )
        answer = self.api.call(
            "POST",
            f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/serviceaccounts/{name}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 86400},
            },
        )
        token = str((answer or {})["status"]["token"])
        admin = yaml.safe_load(self.kubeconfig.read_text(encoding="utf-8"))
        context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
        cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": cluster["name"], "user": name}}],
            "current-context": name,
        }
        path = self.directory / f"kubeconfig-{name}"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path, f"system:serviceaccount:{SYSTEM_NAMESPACE}:{name}"
