"""Lean list-and-watch streams for the models, their children and pods, outside kopf.

kopf runs every watch event through its whole machinery -- per-object memory, a body wrapper,
loggers, cause detection, a patch to apply -- which is made for handlers that change the object,
and cost the operator most of its CPU when thousands of children it only reads changed. For the
models, the built-in child kinds and the pods, a :class:`WatchStream` instead lists the objects
(the children and pods with the operator's label selector), then watches from the listing's
``resourceVersion`` and hands each event, parsed, to a callback on the event loop; nothing else.

It resumes like client-go's reflector: a watch that ends (the server's ``timeoutSeconds``, a
dropped connection) is re-opened from the last ``resourceVersion`` seen, which bookmarks keep
fresh on a quiet stream; only when the server answers ``410 Gone`` (that version is compacted
away) does it list again, and then it reports what changed meanwhile as events -- an object
gone from the new listing as ``DELETED`` -- so the consumer never keeps a stale object.

Kinds from optional CRDs (ServiceMonitor, PrometheusRule, ScaledObject) are streamed while
their CRD exists: the operator streams each such CRD by name, starts the kind's stream when the
CRD appears, and stops it (reporting its objects as deleted) when the CRD goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from slm_operator.controller import lean_json
from slm_operator.controller.kubeapi import authorization_header
from slm_operator.controller.owner_index import kept_json
from slm_operator.controller.transport import ssl_context, tls_server_name

log = logging.getLogger(__name__)

# (event type, object): None during the first listing, else ADDED, MODIFIED or DELETED.
EventSink = Callable[[str | None, dict[str, Any]], None]

# What a stream remembers of every object it has reported, to tell after a relisting what
# changed: enough metadata for a consumer to forget a deleted object by.
_KEPT_METADATA = ("name", "namespace", "uid", "resourceVersion", "labels", "ownerReferences")


class WatchError(Exception):
    """The API server refused a listing or a watch, or sent an error in the stream."""


@dataclass
class ApiSession:
    """One aiohttp session to the API server, with the operator's connection and credentials.

    The bearer token is read from the configuration for every request, so a token the client
    refreshes (an in-cluster ServiceAccount token is re-read from its file) is used at once.
    """

    configuration: Any  # a connection.Connection (or a kubernetes.client.Configuration)
    _session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_context(self.configuration))
            )
        return self._session

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = authorization_header(self.configuration)
        if token:
            headers["Authorization"] = token
        elif self.configuration.username:
            auth = aiohttp.BasicAuth(self.configuration.username, self.configuration.password or "")
            headers["Authorization"] = auth.encode()
        return headers

    def url(self, path: str, query: Mapping[str, str]) -> str:
        return f"{str(self.configuration.host).rstrip('/')}{path}?{urlencode(query)}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass
class WatchStream:
    """List, then watch, one collection (a kind cluster-wide or in one namespace) forever."""

    api: ApiSession
    path: str  # the collection: /api/v1/pods, /apis/apps/v1/namespaces/ns/deployments ...
    label_selector: str
    sink: EventSink
    field_selector: str = ""
    on_listed: Callable[[], None] = lambda: None  # once, after the first listing
    server_timeout: int = 300  # the watch's timeoutSeconds: the server ends it after this
    client_timeout: float = 330.0  # a backstop for a silently dead connection
    page_size: int = 500
    retry_delay: float = 1.0  # after a failure, doubling up to max_retry_delay
    max_retry_delay: float = 30.0
    # Every object reported and not deleted: its kept metadata (with its resourceVersion and
    # uid), as JSON bytes: at 1000 models a stream of each kind remembers thousands of objects.
    _known: dict[tuple[str, str], bytes] = field(default_factory=dict)
    _listed: bool = False

    async def run(self) -> None:
        version: str | None = None
        delay = self.retry_delay
        while True:
            try:
                if version is None:
                    version = await self._list()
                version = await self._watch(version)
                delay = self.retry_delay
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError, WatchError) as exc:
                log.warning("watching %s failed (%s); again in %.0f s", self.path, _describe(exc), delay)
                await asyncio.sleep(delay)
                delay = min(self.max_retry_delay, delay * 2)

    # -- listing -----------------------------------------------------------------------------

    async def _list(self) -> str:
        """List every page; report the listing (as events after the first); its resourceVersion."""
        items: list[dict[str, Any]] = []
        query = {**self._selectors(), "limit": str(self.page_size)}
        version = ""
        while True:
            page = await self._get(query)
            # A list's items carry no apiVersion and kind (the list does); watch events do.
            api_version, kind = page.get("apiVersion"), str(page.get("kind") or "").removesuffix("List")
            for item in page.get("items") or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                items.append(item)
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion") or "")
            if not meta.get("continue"):
                break
            query = {**query, "continue": str(meta["continue"])}
        if not self._listed:
            for item in items:
                self._remember(item)
                self.sink(None, item)
            self._listed = True
            self.on_listed()
        else:
            self._relisted(items)
        return version

    def _relisted(self, items: list[dict[str, Any]]) -> None:
        """After a 410: what the listing shows differently from what was reported, as events."""
        seen: set[tuple[str, str]] = set()
        for item in items:
            key = _object_key(item)
            seen.add(key)
            packed = self._known.get(key)
            if packed is not None:
                before = orjson.loads(packed)
                if (_version(before), _uid(before)) == (_version(item), _uid(item)):
                    continue
                if _uid(before) != _uid(item):
                    self._forget(key, packed)  # deleted and created again under the same name
                    packed = None
            self._remember(item)
            self.sink("ADDED" if packed is None else "MODIFIED", item)
        for key in [key for key in self._known if key not in seen]:
            self._forget(key, self._known[key])

    @contextlib.asynccontextmanager
    async def _response(self, query: Mapping[str, str]) -> AsyncIterator[aiohttp.ClientResponse]:
        """The server's answer to a GET of this stream's path with ``query``."""
        async with self.api.session().get(
            self.api.url(self.path, query),
            headers=self.api.headers(),
            timeout=aiohttp.ClientTimeout(total=self.client_timeout),
            server_hostname=tls_server_name(self.api.configuration),
        ) as response:
            yield response

    async def _get(self, query: Mapping[str, str]) -> dict[str, Any]:
        async with self._response(query) as response:
            raw = await response.read()
            if response.status != 200:
                raise WatchError(f"HTTP {response.status} listing {self.path}: {_message(raw)}")
            answer: dict[str, Any] = lean_json.loads(raw)
            return answer

    # -- watching ----------------------------------------------------------------------------

    async def _watch(self, version: str) -> str | None:
        """Stream events from ``version`` until the server ends the watch; the last version
        seen, or ``None`` when the server says that version is gone (list again)."""
        query = {
            **self._selectors(),
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": version,
            "timeoutSeconds": str(self.server_timeout),
        }
        async with self._response(query) as response:
            if response.status == 410:
                return None
            if response.status != 200:
                raise WatchError(
                    f"HTTP {response.status} watching {self.path}: {_message(await response.read())}"
                )
            async for line in _lines(response.content):
                event = lean_json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise WatchError(f"error in the watch of {self.path}: {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    self._known.pop(_object_key(obj), None)
                elif kind in ("ADDED", "MODIFIED"):
                    self._remember(obj)
                else:
                    log.warning("ignoring a watch event of type %r on %s", kind, self.path)
                    continue
                self.sink(kind, obj)
        return version

    def _selectors(self) -> dict[str, str]:
        selectors = {"labelSelector": self.label_selector, "fieldSelector": self.field_selector}
        return {key: value for key, value in selectors.items() if value}

    # -- what was reported -------------------------------------------------------------------

    def forget_all(self) -> None:
        """Report every object seen as ``DELETED`` (the stream is stopped: its kind is gone)."""
        for key, last in list(self._known.items()):
            self._forget(key, last)

    def _remember(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        kept = {"metadata": {k: meta[k] for k in _KEPT_METADATA if k in meta}}
        self._known[_object_key(obj)] = kept_json(kept)

    def _forget(self, key: tuple[str, str], last: bytes) -> None:
        del self._known[key]
        self.sink("DELETED", orjson.loads(last))


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-delimited chunks of any length (a ConfigMap may hold up to 1 MiB)."""
    buffer = b""
    async for chunk in content.iter_any():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def _object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name")))


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion"))


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid"))


def _message(raw: bytes) -> str:
    try:
        decoded = json.loads(raw)
    except ValueError:
        return raw[:200].decode("utf-8", "replace")
    return str(decoded.get("message") if isinstance(decoded, dict) else decoded)[:300]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
