"""Where the API server is and how to prove who we are: in-cluster, or from a kubeconfig.

The operator reads its connection itself instead of through the ``kubernetes`` client's loaders,
because importing that package (hundreds of generated API and model modules, which kopf also
imports when it finds them) costs the operator process about 17 MiB of its memory, for objects
it never uses. The two common ways in are read here:

* **in-cluster**: the ServiceAccount token and CA mounted in every pod, at the address in
  ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``
  (https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/); the token is read
  again from its file at most every minute, since the kubelet rotates bound tokens;
* **a kubeconfig** (``KUBECONFIG``, a list of files merged the way kubectl merges them -- the
  first file to name a cluster, user or context wins -- else ``~/.kube/config``): the current
  context's server, CA, ``insecure-skip-tls-verify``, ``tls-server-name`` and ``proxy-url``,
  and a user with a client certificate, a token or ``tokenFile``, or a user name and password
  (https://kubernetes.io/docs/reference/config-api/kubeconfig.v1/).

A kubeconfig user that runs a credential plugin (``exec``) or names an ``auth-provider`` is left
to the ``kubernetes`` client's loader, which knows them (:func:`load_connection` returns
``None``); so does a server reached through a proxy, which only the client's HTTP layer speaks
(:mod:`slm_operator.controller.kubeapi`).

A :class:`Connection` answers to the attribute names of ``kubernetes.client.Configuration``
that the operator reads (``host``, ``ssl_ca_cert``, ``cert_file``, ``verify_ssl`` ...), so the
transport, the watch streams and kopf's login take either.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import ipaddress
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0


class ConnectionConfigError(Exception):
    """The in-cluster environment or the kubeconfig cannot be used (says which and why)."""


@dataclass
class Connection:
    """The API server's address, TLS settings and credentials."""

    host: str
    ssl_ca_cert: str | None = None  # a file (a kubeconfig's inline CA is written to one)
    cert_file: str | None = None
    key_file: str | None = None
    verify_ssl: bool = True
    tls_server_name: str | None = None
    username: str = ""
    password: str = ""
    proxy: str | None = None
    no_proxy: str | None = None
    token: str | None = None
    token_file: str | None = None  # read again every TOKEN_REREAD_SECONDS
    clock: Callable[[], float] = time.monotonic
    _token_read_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_api_key_with_prefix(self, identifier: str, alias: str | None = None) -> str | None:
        """The ``Authorization`` value for a bearer token, as ``kubernetes.client.Configuration``
        answers it (``identifier`` ``BearerToken``); ``None`` without a token."""
        del alias
        if identifier != "BearerToken":
            return None
        token = self._current_token()
        return f"Bearer {token}" if token else None

    def _current_token(self) -> str | None:
        if self.token_file is None:
            return self.token
        with self._lock:
            now = self.clock()
            if self._token_read_at is None or now - self._token_read_at >= TOKEN_REREAD_SECONDS:
                try:
                    self.token = Path(self.token_file).read_text(encoding="utf-8").strip() or None
                except OSError:
                    if self.token is None:
                        raise
                    # Being rotated: keep the last token until the next read.
                self._token_read_at = now
            return self.token


def load_connection(environ: Mapping[str, str] | None = None) -> Connection | None:
    """In-cluster when running in a pod, else the kubeconfig; ``None`` when the kubeconfig's
    user needs the ``kubernetes`` client's loader (a credential plugin or auth provider).

    Raises :class:`ConnectionConfigError` naming what is missing or wrong.
    """
    env = os.environ if environ is None else environ
    if env.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT_DIR / "token").exists():
        return in_cluster(env)
    return from_kubeconfig(kubeconfig_paths(env))


def in_cluster(env: Mapping[str, str], directory: Path = SERVICE_ACCOUNT_DIR) -> Connection:
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConnectionConfigError(
            "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set"
        )
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    token_file = directory / "token"
    connection = Connection(
        host=f"https://{host}:{port}",
        ssl_ca_cert=str(directory / "ca.crt"),
        token_file=str(token_file),
    )
    try:
        connection.get_api_key_with_prefix("BearerToken")
    except OSError as exc:
        raise ConnectionConfigError(
            f"in-cluster: cannot read the ServiceAccount token {token_file}: {exc}"
        ) from None
    return connection


def kubeconfig_paths(env: Mapping[str, str]) -> list[Path]:
    listed = [part for part in env.get("KUBECONFIG", "").split(os.pathsep) if part]
    if listed:
        return [Path(part).expanduser() for part in listed]
    return [Path("~/.kube/config").expanduser()]


def from_kubeconfig(paths: list[Path]) -> Connection | None:
    """The current context of the kubeconfig files, merged as kubectl merges them."""
    merged = _merge(paths)
    names = " ".join(str(p) for p in paths)
    wanted = merged["current-context"]
    if not wanted:
        raise ConnectionConfigError(f"kubeconfig {names}: no current-context is set")
    ctx = _entry(merged, "contexts", wanted, names).get("context") or {}
    cluster_entry = _entry(merged, "clusters", str(ctx.get("cluster") or ""), names)
    user_entry = _entry(merged, "users", str(ctx.get("user") or ""), names) if ctx.get("user") else {}
    cluster, user = cluster_entry.get("cluster") or {}, user_entry.get("user") or {}
    if user.get("exec") or user.get("auth-provider"):
        return None
    base = Path(str(cluster_entry.get("_from", "."))).parent
    user_base = Path(str(user_entry.get("_from", "."))).parent
    server = str(cluster.get("server") or "")
    if not server:
        raise ConnectionConfigError(f"kubeconfig {names}: cluster {ctx.get('cluster')!r} has no server")
    proxies = getproxies()
    connection = Connection(
        host=server.rstrip("/"),
        ssl_ca_cert=_file_or_data(cluster, "certificate-authority", base, f"cluster {ctx.get('cluster')!r}"),
        verify_ssl=not bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        # As the kubernetes client does: the kubeconfig's proxy, else the environment's
        # (HTTPS_PROXY for an https server, ALL_PROXY), and NO_PROXY.
        proxy=cluster.get("proxy-url") or proxies.get(urlsplit(server).scheme) or proxies.get("all") or None,
        no_proxy=proxies.get("no") or None,
        cert_file=_file_or_data(user, "client-certificate", user_base, f"user {ctx.get('user')!r}"),
        key_file=_file_or_data(user, "client-key", user_base, f"user {ctx.get('user')!r}"),
        token=user.get("token") or None,
        username=str(user.get("username") or ""),
        password=str(user.get("password") or ""),
    )
    if user.get("tokenFile") and not connection.token:
        connection.token_file = str(_relative(str(user["tokenFile"]), user_base))
    return connection


def _merge(paths: list[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if len(paths) == 1:
                raise ConnectionConfigError(
                    f"no in-cluster ServiceAccount and no kubeconfig at {path} (set KUBECONFIG)"
                ) from None
            continue  # kubectl skips a missing file of a KUBECONFIG list too
        except OSError as exc:
            raise ConnectionConfigError(f"kubeconfig {path}: cannot read it: {exc.strerror or exc}") from None
        try:
            document = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConnectionConfigError(f"kubeconfig {path}: not valid YAML: {exc}") from None
        if not isinstance(document, dict):
            raise ConnectionConfigError(f"kubeconfig {path}: must be a mapping")
        for section in ("clusters", "users", "contexts"):
            for entry in document.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") and entry["name"] not in merged[section]:
                    merged[section][entry["name"]] = {**entry, "_from": str(path)}
        if not merged["current-context"] and document.get("current-context"):
            merged["current-context"] = str(document["current-context"])
    return merged


def _entry(merged: Mapping[str, Any], section: str, name: str, names: str) -> dict[str, Any]:
    found = merged[section].get(name)
    if not isinstance(found, dict):
        raise ConnectionConfigError(f"kubeconfig {names}: {section[:-1]} {name!r} is not defined")
    return found


def _relative(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _file_or_data(section: Mapping[str, Any], key: str, base: Path, where: str) -> str | None:
    """A file named by ``key``, or the base64 ``key-data`` written to a private temporary file."""
    data = section.get(f"{key}-data")
    if data:
        try:
            content = base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            raise ConnectionConfigError(f"kubeconfig {where}: {key}-data is not base64") from None
        return _private_file(content)
    value = section.get(key)
    return str(_relative(str(value), base)) if value else None


def _private_file(content: bytes) -> str:
    """A file only this user can read, removed when the process exits."""
    handle, name = tempfile.mkstemp(prefix="slm-operator-", suffix=".pem")
    with os.fdopen(handle, "wb") as out:
        out.write(content)
    atexit.register(_remove, name)
    return name


def _remove(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)
