"""The operator's one door to the Kubernetes API for its writes and the few reads it makes.

Every call goes through :meth:`KubeApi.call`, which makes 404/409 handling explicit and logged
and turns transport failures, 429 and 5xx into :class:`TransientApiError` (retried soon); any
other refusal is an :class:`ApiError` carrying the server's status and message. Bodies are sent
and read as plain JSON: over the workers' own kept-alive connections
(:mod:`slm_operator.controller.transport`) when the server is reached directly, else through
the ``kubernetes`` client's low-level ``call_api`` path (which knows proxies; the client is
imported only then). Not the generated
``create_*`` methods: they validate bodies client-side and map only ``201`` responses, and we
apply objects of kinds (ServiceMonitor) the generated client does not know.

Of the model itself only the ``status`` subresource is written (:meth:`KubeApi.patch_status`),
plus the Events about it, and once the removal of what an older version left on it
(:meth:`KubeApi.patch_model`); kopf writes nothing on the model (see ``handlers``).
"""

from __future__ import annotations

import datetime
import http.client
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from slm_operator.contract.kinds import ManagedKind
from slm_operator.contract.names import FIELD_MANAGER
from slm_operator.controller import lean_json
from slm_operator.controller.connection import Connection, load_connection
from slm_operator.controller.transport import HttpTransport, direct_transport

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """An API answer the caller must handle (status code and the server's message)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"HTTP {status}: {message}")


class TransientApiError(ApiError):
    """5xx, 429, timeouts and dropped connections: retried later with a delay."""


class ConflictError(ApiError):
    """409: the object already exists or changed under us."""


class NamespaceTerminatingError(ApiError):
    """403 from the NamespaceLifecycle admission plugin: the namespace is being deleted.

    Its objects, the model included, are about to go; there is nothing to repair or report.
    """


# The Status cause the API server's NamespaceLifecycle admission plugin adds to its 403
# (k8s.io/api/core/v1 NamespaceTerminatingCause).
NAMESPACE_TERMINATING = "NamespaceTerminating"


def authorization_header(configuration: Any) -> str | None:
    """The ``Authorization`` header of a loaded ``kubernetes.client.Configuration``, if it has a
    token: the loaders store it with its scheme (``Bearer ...``) under ``BearerToken``; a bare
    token gets ``Bearer``. Every client of the operator (workers, streams, kopf) reads it here."""
    token = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
    if not token:
        return None
    return str(token) if " " in str(token) else f"Bearer {token}"


USER_AGENT = "slm-operator"


@dataclass(frozen=True)
class DirectClient:
    """What :class:`KubeApi` reads of its client when it talks to the server directly."""

    configuration: Connection
    user_agent: str = USER_AGENT


def _copy_connection(connection: Connection, configuration: Any) -> None:
    """Fill a ``kubernetes.client.Configuration`` from a connection (for the proxy path)."""
    configuration.host = connection.host
    configuration.ssl_ca_cert = connection.ssl_ca_cert
    configuration.cert_file = connection.cert_file
    configuration.key_file = connection.key_file
    configuration.verify_ssl = connection.verify_ssl
    configuration.tls_server_name = connection.tls_server_name
    configuration.proxy = connection.proxy
    configuration.no_proxy = connection.no_proxy
    configuration.username = connection.username
    configuration.password = connection.password
    token = connection.get_api_key_with_prefix("BearerToken")
    if token:
        configuration.api_key = {"authorization": token}
    if connection.token_file:  # re-read the rotated token, as the client's in-cluster loader does
        configuration.refresh_api_key_hook = lambda c: c.api_key.update(
            authorization=connection.get_api_key_with_prefix("BearerToken") or ""
        )


@dataclass
class KubeApi:
    """A thin JSON client for the API server with explicit error handling."""

    # A DirectClient (the connection, for the transport), or a kubernetes.client.ApiClient:
    # its configuration, and its path through a proxy.
    client: Any
    request_timeout: float = 30.0
    # The lean path to a directly reachable server (controller/transport.py); None: the client's.
    transport: HttpTransport | None = None
    # Whether the Prometheus Operator's API is served changes when someone installs it, which is
    # rare; a long cache keeps an idle operator from asking (a pod restart re-reads it at once).
    discovery_ttl: float = 900.0
    clock: Callable[[], float] = time.monotonic
    # The server and credentials are read from the client's configuration at most this often.
    # Reading them runs the configuration's refresh hook, which for a kubeconfig token re-sets
    # the host and with it re-reads the proxy environment: most of a request's CPU when done
    # for every request. A token that can expire is refreshed by that hook well before it does.
    credentials_ttl: float = 30.0
    _discovery: dict[str, tuple[float, bool]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _target: tuple[float, str, dict[str, str]] | None = None  # (read at, server, auth headers)

    @classmethod
    def from_environment(cls, *, request_timeout: float = 30.0) -> KubeApi:
        """In-cluster service account if present, else the kubeconfig (``KUBECONFIG``/``~/.kube``).

        Read by :mod:`slm_operator.controller.connection`; the ``kubernetes`` client is imported
        only where it is needed: a kubeconfig user with a credential plugin or auth provider
        (its loader runs them), or a proxy between the operator and the server (its HTTP
        layer speaks to proxies).
        """
        connection = load_connection()
        if connection is not None:
            transport = direct_transport(connection, timeout=request_timeout)
            if transport is not None:
                return cls(
                    client=DirectClient(connection), request_timeout=request_timeout, transport=transport
                )
        import kubernetes  # only on these paths: 17 MiB of generated modules

        configuration = kubernetes.client.Configuration()
        if connection is not None:
            _copy_connection(connection, configuration)
        else:
            # Read KUBECONFIG now: the client library reads it once, at import time.
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG", "~/.kube/config"), client_configuration=configuration
            )
        return cls(
            client=kubernetes.client.ApiClient(configuration),
            request_timeout=request_timeout,
            transport=direct_transport(configuration, timeout=request_timeout),
        )

    @property
    def configuration(self) -> Any:
        """The connection in use (server, credentials, CA): a :class:`Connection`, or the
        ``kubernetes.client.Configuration`` the client's own loader filled."""
        return self.client.configuration

    # -- low level -------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        """One request; the decoded JSON answer (less any ``managedFields``: see
        :mod:`~slm_operator.controller.lean_json`), ``None`` for 404; raises :class:`ApiError`."""
        server, auth = self._server_and_auth()
        headers = {"Accept": "application/json", "Content-Type": content_type, **auth}
        target = f"{path}?{urlencode(query)}" if query else path
        try:
            if self.transport is not None:
                # JSON for JSON and YAML content types alike (JSON is valid YAML, so an apply
                # patch goes out as JSON).
                payload = None if body is None else orjson.dumps(body)
                status, raw = self.transport.request(method, target, payload, headers)
            else:
                status, raw = self._through_client(method, f"{server}{target}", headers, body)
        except (http.client.HTTPException, OSError) as exc:
            failure = type(exc.__cause__ or exc).__name__  # urllib3's, on the client's path
            log.warning("%s %s failed in transport: %s", method, path, failure)
            raise TransientApiError(0, f"{failure} talking to the API server") from None
        if 200 <= status < 300:
            return lean_json.loads(raw) if raw else {}
        message = _status_message(raw)
        if status == 403 and NAMESPACE_TERMINATING in _status_causes(raw):
            log.info("%s %s: the namespace is being deleted", method, path)
            raise NamespaceTerminatingError(status, message)
        if status == 404:
            log.debug("%s %s: not found", method, path)
            return None
        if status == 409:
            log.info("%s %s: conflict: %s", method, path, message)
            raise ConflictError(status, message)
        if status == 429 or status >= 500:
            log.warning("%s %s: transient HTTP %d: %s", method, path, status, message)
            raise TransientApiError(status, message)
        log.error("%s %s: HTTP %d: %s", method, path, status, message)
        raise ApiError(status, message)

    def _through_client(self, method: str, url: str, headers: dict[str, str], body: Any) -> tuple[int, bytes]:
        """A request over the ``kubernetes`` client's REST layer (urllib3, which knows proxies);
        urllib3's transport failures are raised as ``OSError`` like the direct path's."""
        import urllib3  # loaded with the kubernetes client, which this path has

        try:
            # The REST layer JSON-encodes dict bodies the same way.
            response = self.client.call_api(
                method, url, header_params=headers, body=body, _request_timeout=self.request_timeout
            )
        except urllib3.exceptions.HTTPError as exc:
            raise OSError(f"{type(exc).__name__}: {exc}") from exc
        return int(response.status), response.read()

    def _server_and_auth(self) -> tuple[str, dict[str, str]]:
        """The server URL and the auth headers of the client's configuration, re-read every
        :attr:`credentials_ttl` seconds (a client certificate is the connection pool's)."""
        target = self._target
        now = self.clock()
        if target is None or now - target[0] >= self.credentials_ttl:
            configuration = self.client.configuration
            token = authorization_header(configuration)
            auth = {"Authorization": token} if token else {}
            auth["User-Agent"] = str(self.client.user_agent)
            target = (now, str(configuration.host).rstrip("/"), auth)
            self._target = target
        return target[1], target[2]

    # -- objects ---------------------------------------------------------------------------

    def get(self, kind: ManagedKind, namespace: str, name: str) -> dict[str, Any] | None:
        """The live object, or ``None`` when absent."""
        return self.call("GET", object_path(kind, namespace, name))

    def list(self, kind: ManagedKind, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace matching a label selector (empty if the kind is unknown)."""
        answer = self.call("GET", collection_path(kind, namespace), query={"labelSelector": label_selector})
        return list((answer or {}).get("items") or [])

    def create(self, kind: ManagedKind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object; :class:`ConflictError` if it exists."""
        answer = self.call("POST", collection_path(kind, namespace), body=dict(body))
        if answer is None:
            raise ApiError(404, f"{kind.kind} cannot be created: the namespace or kind is missing")
        return answer

    def apply(self, kind: ManagedKind, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply with our field manager, forcing ownership of the fields we send."""
        answer = self.call(
            "PATCH",
            object_path(kind, namespace, name),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=dict(body),
            content_type=APPLY_PATCH,
        )
        if answer is None:
            raise ApiError(404, f"{kind.kind} {name} cannot be applied: the namespace or kind is missing")
        return answer

    def delete(self, kind: ManagedKind, namespace: str, name: str, *, uid: str) -> bool:
        """Delete only the exact object we looked at (``preconditions.uid``); False if already gone."""
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
            "preconditions": {"uid": uid},
        }
        return self.call("DELETE", object_path(kind, namespace, name), body=body) is not None

    def has_api(self, group_version: str, plural: str) -> bool:
        """Whether the API serves ``group_version``/``plural`` (discovery, cached ``discovery_ttl``).

        The lock is held across the request: workers asking together make one request, not one
        each, and never overwrite a newer answer with an older one.
        """
        key = f"{group_version}/{plural}"
        with self._lock:
            cached = self._discovery.get(key)
            if cached is not None and self.clock() - cached[0] < self.discovery_ttl:
                return cached[1]
            answer = self.call("GET", f"/apis/{group_version}")
            found = any(r.get("name") == plural for r in (answer or {}).get("resources") or [])
            self._discovery[key] = (self.clock(), found)
            return found

    # -- the model -------------------------------------------------------------------------

    def patch_status(
        self, resource: ModelResource, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the model's ``status`` subresource; the updated model, ``None`` if gone."""
        return self.call(
            "PATCH",
            f"{resource.object_path(namespace, name)}/status",
            body={"status": dict(status)},
            content_type=MERGE_PATCH,
        )

    def patch_model(
        self, resource: ModelResource, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the model itself (only to remove what an older version left on it: see
        :func:`slm_operator.controller.leftovers.leftovers_patch`); ``None`` if gone."""
        return self.call(
            "PATCH", resource.object_path(namespace, name), body=dict(patch), content_type=MERGE_PATCH
        )

    def post_event(
        self,
        involved: Mapping[str, Any],
        *,
        type_: str,
        reason: str,
        message: str,
        component: str,
        now: datetime.datetime | None = None,
    ) -> None:
        """Post one core/v1 Event about ``involved`` (the model), as ``kubectl describe`` shows them."""
        meta = involved.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": name,
                "namespace": namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],  # 1 KiB, the limit events.k8s.io/v1 puts on a note
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self.call("POST", f"/api/v1/namespaces/{quote(namespace, safe='')}/events", body=event)


@dataclass(frozen=True)
class ModelResource:
    """Where the models live: ``apiVersion`` (group/version) and plural."""

    api_version: str
    plural: str

    def collection_path(self, namespace: str = "") -> str:
        """The models in a namespace, or in every namespace for ``""``."""
        if not namespace:
            return f"/apis/{self.api_version}/{self.plural}"
        return f"/apis/{self.api_version}/namespaces/{quote(namespace, safe='')}/{self.plural}"

    def object_path(self, namespace: str, name: str) -> str:
        return f"{self.collection_path(namespace)}/{quote(name, safe='')}"


def collection_path(kind: ManagedKind, namespace: str) -> str:
    """``/api/v1/namespaces/ns/services`` or ``/apis/apps/v1/namespaces/ns/deployments``."""
    prefix = f"/apis/{kind.api_version}" if kind.group else f"/api/{kind.api_version}"
    return f"{prefix}/namespaces/{quote(namespace, safe='')}/{kind.plural}"


def cluster_path(kind: ManagedKind) -> str:
    """The kind in every namespace: ``/api/v1/services``, ``/apis/apps/v1/deployments``."""
    prefix = f"/apis/{kind.api_version}" if kind.group else f"/api/{kind.api_version}"
    return f"{prefix}/{kind.plural}"


def object_path(kind: ManagedKind, namespace: str, name: str) -> str:
    return f"{collection_path(kind, namespace)}/{quote(name, safe='')}"


def _status_causes(raw: bytes | None) -> list[str]:
    """The cause types of a Kubernetes ``Status`` answer: ``StatusCause.Type`` is serialized as
    ``details.causes[].reason`` (k8s.io/apimachinery/pkg/apis/meta/v1/types.go,
    https://github.com/kubernetes/apimachinery/blob/master/pkg/apis/meta/v1/types.go)."""
    try:
        decoded = json.loads(raw or b"{}")
    except ValueError:
        return []
    details = decoded.get("details") if isinstance(decoded, dict) else None
    causes = details.get("causes") if isinstance(details, dict) else None
    return [str(c.get("reason")) for c in causes or [] if isinstance(c, dict)]


def _status_message(raw: bytes | None) -> str:
    """The ``message`` of a Kubernetes ``Status`` answer, or a short excerpt of the body."""
    if not raw:
        return ""
    try:
        decoded = json.loads(raw)
    except ValueError:
        return raw[:200].decode("utf-8", "replace")
    if isinstance(decoded, dict):
        return str(decoded.get("message") or decoded.get("reason") or "")[:500]
    return ""
