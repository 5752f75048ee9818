"""A small, explicit REST client for the simulated cluster's API server, and its audit log.

The tests talk to the API server the way ``kubectl`` does -- JSON over HTTPS with a client
certificate or a bearer token -- and look at the raw answer (status code, the server's message),
which is what the invalid-input and permission scenarios assert on. The operator itself uses the
official client; the tests deliberately do not share its code paths.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer: the status code and the server's Status object."""

    def __init__(self, code: int, body: dict[str, Any]) -> None:
        self.code = code
        self.body = body
        super().__init__(f"{code}: {body.get('message', body)}")

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


# group/version -> (resource plural, namespaced) for the kinds the tests touch.
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "SmallLanguageModel": ("slm.dev/v1alpha1", "smalllanguagemodels", True),
    "Deployment": ("apps/v1", "deployments", True),
    "ReplicaSet": ("apps/v1", "replicasets", True),
    "Pod": ("v1", "pods", True),
    "Service": ("v1", "services", True),
    "Secret": ("v1", "secrets", True),
    "ConfigMap": ("v1", "configmaps", True),
    "ServiceAccount": ("v1", "serviceaccounts", True),
    "Event": ("v1", "events", True),
    "Namespace": ("v1", "namespaces", False),
    "Node": ("v1", "nodes", False),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies", True),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers", True),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets", True),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims", True),
    "PersistentVolume": ("v1", "persistentvolumes", False),
    "ScaledObject": ("keda.sh/v1alpha1", "scaledobjects", True),
    "ServiceMonitor": ("monitoring.coreos.com/v1", "servicemonitors", True),
    "PrometheusRule": ("monitoring.coreos.com/v1", "prometheusrules", True),
    "CustomResourceDefinition": ("apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings", True),
    "Lease": ("coordination.k8s.io/v1", "leases", True),
}


def resource_path(kind: str, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
    api_version, plural, namespaced = RESOURCES[kind]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = base
    if namespaced and namespace is not None:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Credentials:
        config = yaml.safe_load(path.read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
        user = next(u for u in config["users"] if u["name"] == context["user"])["user"]
        return cls(
            server=cluster["server"],
            ca_file=cluster.get("certificate-authority"),
            cert_file=user.get("client-certificate"),
            key_file=user.get("client-key"),
            token=user.get("token"),
        )


class Kube:
    """JSON over HTTPS to one API server as one identity."""

    def __init__(self, creds: Credentials, timeout: float = 30.0) -> None:
        self.creds = creds
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = None
        if creds.server.startswith("https"):
            self._ssl = ssl.create_default_context(cafile=creds.ca_file)
            if creds.cert_file and creds.key_file:
                self._ssl.load_cert_chain(creds.cert_file, creds.key_file)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        url = self.creds.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self.creds.token:
            request.add_header("Authorization", f"Bearer {self.creds.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = {"message": raw.decode(errors="replace")}
            raise ApiError(exc.code, parsed) from None
        return json.loads(raw) if raw else {}

    # -- conveniences -------------------------------------------------------------------------
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", resource_path(kind, namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def list(
        self, kind: str, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        query = {"labelSelector": selector} if selector else None
        return list(self.request("GET", resource_path(kind, namespace), query=query).get("items") or [])

    def create(
        self,
        obj: dict[str, Any],
        *,
        strict: bool = True,
        kind: str | None = None,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Create; ``strict`` refuses unknown fields, as kubectl's default field validation does.
        ``kind`` and ``namespace`` name the collection when the document's own may be wrong."""
        namespace = namespace or (obj.get("metadata") or {}).get("namespace")
        query = {"fieldValidation": "Strict"} if strict else None
        return self.request("POST", resource_path(kind or obj["kind"], namespace), obj, query=query)

    def apply(self, obj: dict[str, Any], manager: str = "cluster-tests", sub: str = "") -> dict[str, Any]:
        """Server-side apply, forced (what ``kubectl apply --server-side --force-conflicts`` does)."""
        meta = obj["metadata"]
        path = resource_path(obj["kind"], meta.get("namespace"), meta["name"], sub)
        return self.request(
            "PATCH",
            path,
            json.dumps(obj),
            content_type=APPLY_PATCH,
            query={"fieldManager": manager, "force": "true"},
        )

    def patch(
        self, kind: str, namespace: str | None, name: str, patch: dict[str, Any], sub: str = ""
    ) -> dict[str, Any]:
        return self.request(
            "PATCH", resource_path(kind, namespace, name, sub), patch, content_type=MERGE_PATCH
        )

    def delete(self, kind: str, namespace: str | None, name: str, *, propagation: str = "Background") -> None:
        try:
            self.request("DELETE", resource_path(kind, namespace, name), {"propagationPolicy": propagation})
        except ApiError as exc:
            if exc.code != 404:
                raise

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        self.apply(body)


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, message: str = "", interval: float = 0.2
) -> Any:
    """Poll ``predicate`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


@dataclass(frozen=True)
class AuditEvent:
    user: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    uri: str

    @property
    def is_write(self) -> bool:
        return self.verb in {"create", "update", "patch", "delete", "deletecollection"}


class AuditLog:
    """The API server's audit log (JSON lines, Metadata level), read from an offset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """The current end of the log: events after it are the ones a step caused."""
        return self.path.stat().st_size if self.path.exists() else 0

    def events(self, since: int = 0, user: str | None = None) -> Iterator[AuditEvent]:
        with self.path.open("rb") as handle:
            handle.seek(since)
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a line still being written
                record = json.loads(line)
                if record.get("stage") != "ResponseComplete":
                    continue
                name = (record.get("user") or {}).get("username", "")
                if user is not None and name != user:
                    continue
                ref = record.get("objectRef") or {}
                yield AuditEvent(
                    user=name,
                    verb=record.get("verb", ""),
                    resource=ref.get("resource", ""),
                    subresource=ref.get("subresource", ""),
                    namespace=ref.get("namespace", ""),
                    name=ref.get("name", ""),
                    code=int((record.get("responseStatus") or {}).get("code", 0)),
                    uri=record.get("requestURI", ""),
                )
