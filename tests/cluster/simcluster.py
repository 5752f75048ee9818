"""The simulated cluster for the cluster tier: start it, install the chart, run the operator.

One control plane per test run (``e2e/sim/cluster.sh``: etcd, kube-apiserver, controller-manager,
scheduler and kwok fake nodes). The chart is rendered by the real Helm engine and applied
server-side as an administrator; the operator then runs as ``slmctl run`` with exactly the
arguments and configuration file the chart's Deployment gives it, authenticated as the chart's
ServiceAccount (a TokenRequest token), so the chart's RBAC is what every scenario exercises.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python
import yaml
from kube import ApiError, AuditLog, Credentials, Kube, wait_for

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "e2e" / "sim" / "cluster.sh"
CHART = ROOT / "charts" / "slm-operator"
CRD = ROOT / "crds" / "slm.dev_smalllanguagemodels.yaml"
RELEASE = "slm"
OPERATOR_NAMESPACE = "slm-system"
FIELD_MANAGER = "cluster-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def running(pid: int) -> bool:
    """Whether a process runs (a zombie no longer does: cluster.sh's children are reaped by
    whichever process adopted them, maybe never)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class SimCluster:
    """A running control plane and an administrator's client to it."""

    directory: Path
    started_here: bool

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.directory / "audit.log")

    @property
    def admin(self) -> Kube:
        return Kube(Credentials.from_kubeconfig(self.kubeconfig))

    @classmethod
    def start(cls, directory: Path) -> SimCluster:
        subprocess.run(["bash", str(CLUSTER_SH), "up", str(directory)], check=True, stdout=sys.stderr)
        return cls(directory=directory, started_here=True)

    def stop(self) -> None:
        if self.started_here:
            subprocess.run(["bash", str(CLUSTER_SH), "down", str(self.directory)], check=False)

    def bin_dir(self) -> Path:
        out = subprocess.run(
            ["bash", str(CLUSTER_SH), "build"], check=True, capture_output=True, text=True
        ).stdout
        return Path(out.strip().splitlines()[-1])

    def restart_apiserver(self) -> None:
        """Kill the API server (a crash: no graceful shutdown) and start it again with the same
        command line (and port)."""
        pid = int((self.directory / "pids" / "kube-apiserver.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not running(pid), timeout=30, message="apiserver stopped")
        # The thread-group leader turns zombie before its other threads have let go of the port.
        port = int(urllib.parse.urlsplit(self.admin.creds.server).port or 443)
        wait_for(lambda: port_free(port), timeout=30, message=f"port {port} released")
        log = (self.directory / "logs" / "kube-apiserver.log").open("ab")
        process = subprocess.Popen(cmdline, stdout=log, stderr=log, start_new_session=True)
        (self.directory / "pids" / "kube-apiserver.pid").write_text(str(process.pid))

        def ready() -> bool:
            try:
                self.admin.request("GET", "/readyz")  # 200 "ok" (not JSON) once every path serves
            except ValueError:
                return True
            except (ApiError, OSError):
                return False
            return True

        wait_for(ready, timeout=60, message="apiserver ready again", interval=0.5)


# -- the chart --------------------------------------------------------------------------------
def render_chart(
    values: dict[str, Any], release: str = RELEASE, namespace: str = OPERATOR_NAMESPACE
) -> list[dict[str, Any]]:
    """The chart's objects for ``values``, rendered by the real Helm engine."""
    rendered: dict[str, str] = helm_python.Chart.load(CHART).render(values, name=release, namespace=namespace)
    objects: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(rendered[path]) if doc)
    return objects


def apply_crd(admin: Kube, crd: dict[str, Any]) -> None:
    """Apply a CRD and wait until the API server serves it."""
    admin.apply(crd, manager=FIELD_MANAGER)
    name = crd["metadata"]["name"]

    def established() -> bool:
        found = admin.get("CustomResourceDefinition", None, name) or {}
        conditions = (found.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, timeout=30, message=f"CRD {name} established")


def install_crd(admin: Kube) -> None:
    apply_crd(admin, yaml.safe_load(CRD.read_text()))


@dataclass
class ChartInstall:
    """What the chart installed, and what the operator process needs from it."""

    objects: list[dict[str, Any]]
    namespace: str
    service_account: str
    args: list[str]
    config_yaml: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def install_chart(
    admin: Kube, values: dict[str, Any], release: str = RELEASE, namespace: str = OPERATOR_NAMESPACE
) -> ChartInstall:
    """Apply the rendered chart server-side (as ``helm install`` would create it)."""
    objects = render_chart(values, release, namespace)
    admin.ensure_namespace(namespace)
    for watched in values.get("watchNamespaces") or []:
        admin.ensure_namespace(watched)
    # CRDs and RBAC first, as Helm orders them.
    order = {"CustomResourceDefinition": 0, "ServiceAccount": 1, "ClusterRole": 2, "Role": 2}
    for obj in sorted(objects, key=lambda o: order.get(o["kind"], 5)):
        admin.apply(obj, manager=FIELD_MANAGER)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    config_map = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-config")
    )
    return ChartInstall(
        objects=objects,
        namespace=namespace,
        service_account=pod["serviceAccountName"],
        args=list(container["args"]),
        config_yaml=config_map["data"]["config.yaml"],
    )


def uninstall_chart(admin: Kube, install: ChartInstall) -> None:
    """Delete what the chart created, but keep the CRD (its resource policy says keep)."""
    for obj in install.objects:
        if obj["kind"] == "CustomResourceDefinition":
            continue
        admin.delete(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])


def service_account_kubeconfig(
    admin: Kube, install: ChartInstall, path: Path, server: str | None = None
) -> Path:
    """A kubeconfig for the chart's ServiceAccount, from a TokenRequest (as a pod's projected token)."""
    token = admin.request(
        "POST",
        f"/api/v1/namespaces/{install.namespace}/serviceaccounts/{install.service_account}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        },
    )["status"]["token"]
    cluster: dict[str, Any] = {"server": server or admin.creds.server}
    if (server or admin.creds.server).startswith("https"):
        cluster["certificate-authority"] = admin.creds.ca_file
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sim", "cluster": cluster}],
        "users": [{"name": install.service_account, "user": {"token": token}}],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": install.service_account}}],
        "current-context": "sim",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def minimal_crd(group: str, kind: str, plural: str, version: str = "v1") -> dict[str, Any]:
    """A stand-in for another project's CRD (the Prometheus Operator's, KEDA's): same group,
    version, names and scope; the schema keeps every field (the contract tests check the
    rendered objects against the real schemas)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    },
                }
            ],
        },
    }


# -- the operator process ---------------------------------------------------------------------
@dataclass
class OperatorProcess:
    """``slmctl run`` as the chart runs it, as a real process with its own log."""

    install: ChartInstall
    kubeconfig: Path
    workdir: Path
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    liveness_url: str = ""
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"operator-{self.starts}.log"

    def argv(self) -> list[str]:
        config = self.workdir / "config.yaml"
        config.write_text(self.install.config_yaml)
        self.metrics_port = free_port()
        args = list(self.install.args)
        args[args.index("--config") + 1] = str(config)
        args[args.index("--metrics-port") + 1] = str(self.metrics_port)
        self.liveness_url = f"http://127.0.0.1:{free_port()}/healthz"
        args[args.index("--liveness") + 1] = self.liveness_url
        slmctl = Path(sys.executable).parent / "slmctl"
        return [str(slmctl), *args, *self.extra_args]

    def start(self) -> None:
        assert self.process is None, "already running"
        self.starts += 1
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=log, env=env)
        wait_for(self.metrics_text, timeout=30, message="operator metrics endpoint")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """A crash: no graceful shutdown."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def metrics_text(self) -> str:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the operator exited:\n{self.logs()[-3000:]}") from None
            return ""

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if line.startswith("#"):
                continue
            match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
            if not match or match.group(1) != name:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(3))
        return total

    def logs(self) -> str:
        return "\n".join(
            (self.workdir / f"operator-{n}.log").read_text(errors="replace")
            for n in range(1, self.starts + 1)
            if (self.workdir / f"operator-{n}.log").exists()
        )


def settle(seconds: float) -> None:
    time.sleep(seconds)


def load_test_module(name: str, path: Path) -> ModuleType:
    """Another tier's test module, loaded by path (tests/ is not a package), for its tables."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
