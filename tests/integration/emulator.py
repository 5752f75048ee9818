"""An emulator, not a cluster: kmock's ``KubernetesEmulator`` taught the API semantics the
slm-operator relies on, so the real operator (kopf + the ``kubernetes`` client over HTTP) can be
exercised without a Kubernetes API server.

kmock 0.8 provides an HTTP server, discovery (``/api``, ``/apis/...``), a request log and an
object store with per-object history. Out of the box it has no server-side apply (404 on a
missing object), no uid/generation/resourceVersion, no label selectors, no status-subresource
isolation, no garbage collection, answers 200 to creates and fails ``GET /api/v1/namespaces``.
This module replaces its request handling for objects and keeps the rest.

Emulated (and nothing more):

* **create** (``POST``): 201, ``generateName``, ``uid``, ``resourceVersion`` (one global
  counter), ``generation: 1``, ``creationTimestamp``; 409 ``AlreadyExists`` for a live name.
  For resources with a ``status`` subresource, ``status`` in a create body is dropped.
* **server-side apply** (``PATCH`` with ``application/apply-patch+yaml``, ``fieldManager``
  required): creates a missing object (201); on an existing object merges maps recursively,
  merges lists of maps **by key** (``name``, else ``containerPort``/``port``/``mountPath``) and
  replaces other lists; fields the manager applied before but omits now are **removed** unless
  another writer changed them since (ownership moved to that writer, as with a real update).
  One set of owned fields per manager; ``force`` conflicts are not modelled (the operator
  always forces).
* **merge patch** (``application/merge-patch+json``; strategic merge is treated the same, so
  lists are replaced): RFC 7386, ``null`` deletes. **JSON patch** (RFC 6902, as kopf writes
  its annotations and finalizers): a failed ``test`` op answers 422, as the API server does.
* **status subresource isolation**: ``PATCH .../status`` changes only ``status``; ``PATCH`` on
  the main resource ignores ``status`` (for resources declared with the ``status`` subresource).
  ``PATCH .../scale`` writes ``spec.replicas``.
* ``generation`` is bumped when anything but ``metadata``/``status`` changes; ``resourceVersion``
  on every real change; a no-op patch changes nothing and emits no watch event. A patch with a
  stale ``metadata.resourceVersion`` gets 409.
* **delete**: 404 when absent; ``preconditions.uid`` checked (409); finalizers honoured
  (``deletionTimestamp`` first, removal once finalizers are gone); then **garbage collection**:
  objects whose ``ownerReferences`` name the deleted uid are deleted too, recursively.
* **list/watch**: namespace, name and **label selectors** (``k=v``, ``k==v``, ``k!=v``, ``k``,
  ``!k``, ``k in (a,b)``, ``k notin (a,b)``); watch honours ``timeoutSeconds``, resumes from a
  ``resourceVersion`` it still remembers (else replays the current objects as ``ADDED``).
* ``GET /api/v1/namespaces`` works (kmock 0.8 answers 500).
* Defaulting of ``Deployment.spec.replicas`` to 1 when absent (so dropping the field behaves).
* Go's ``omitempty`` for built-in kinds: ``""`` and ``[]`` outside ``metadata`` are not stored
  (custom resources keep what they were given, as the API server stores them as JSON).
* The 256 KiB limit on all of an object's annotations together (422).
* **Fault injection**: :meth:`ClusterEmulator.inject` makes matching requests answer a status
  code or stall for a while, a fixed number of times, before any state changes.

Not emulated: admission, schema validation, defaulting beyond the above, quantities'
canonical forms, RBAC, real controllers (tests run a tiny Deployment controller, see
:class:`DeploymentController`), field-manager conflicts, bookmarks, pagination.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import yaml
from kmock._internal import apps, enums, references, rendering
from kmock._internal.k8s import KubernetesEmulator

APPLY_PATCH = "application/apply-patch+yaml"
LIST_KEYS = ("name", "containerPort", "port", "mountPath")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Path = tuple[Any, ...]
ObjectKey = tuple[references.resource, str | None, str]


@dataclass
class Fault:
    """Answer ``status`` (or stall ``delay`` seconds first) to matching requests, ``times`` times."""

    method: str
    path: re.Pattern[str]
    status: int = 500
    delay: float = 0.0
    times: int = 1
    hits: int = 0
    message: str = ""
    cause: str | None = None  # a Status cause type, e.g. NamespaceTerminating

    def __post_init__(self) -> None:
        self.message = self.message or f"injected HTTP {self.status}"

    def matches(self, method: str, path: str) -> bool:
        return self.hits < self.times and method == self.method and bool(self.path.search(path))


@dataclass
class _Watcher:
    resource: references.resource
    namespace: str | None
    name: str | None
    selector: str
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)


@attrs.define(kw_only=True)
class ClusterEmulator(KubernetesEmulator):
    """kmock's emulator with the semantics listed in the module docstring."""

    faults: list[Fault] = attrs.field(factory=list)
    write_hooks: list[Callable[[references.resource, dict[str, Any]], Awaitable[None]]] = attrs.field(
        factory=list
    )
    _rv: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    _last_rv: int = 0
    _owned: dict[tuple[ObjectKey, str], dict[Path, Any]] = attrs.field(factory=dict)
    _watchers: list[_Watcher] = attrs.field(factory=list)
    _events: dict[references.resource, list[tuple[int, dict[str, Any]]]] = attrs.field(factory=dict)
    _state_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)

    # -- test helpers ------------------------------------------------------------------------

    def inject(
        self,
        method: str,
        path: str,
        *,
        status: int = 500,
        delay: float = 0.0,
        times: int = 1,
        message: str = "",
        cause: str | None = None,
    ) -> Fault:
        """Fail (or stall) the next ``times`` requests whose method and path match."""
        fault = Fault(
            method=method.upper(),
            path=re.compile(path),
            status=status,
            delay=delay,
            times=times,
            message=message,
            cause=cause,
        )
        self.faults.append(fault)
        return fault

    def writes(self, since: int = 0) -> list[rendering.Request]:
        """Recorded POST/PATCH/PUT/DELETE requests from position ``since`` of the request log."""
        return [r for r in list(self._requests)[since:] if _method(r) in WRITE_METHODS]

    def calls(self, since: int = 0) -> list[tuple[str, str, str]]:
        """(method, path, action) of every request from position ``since`` but watches."""
        return [
            (_method(r), r.url.path, str(getattr(r.action, "value", r.action)).lower())
            for r in list(self._requests)[since:]
            if r.action != enums.action.WATCH
        ]

    @property
    def request_count(self) -> int:
        return len(self._requests)

    def get_object(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live object, or None."""
        key = (references.resource(resource), namespace, name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        return copy.deepcopy(self._objects[key].raw)

    def list_objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        res = references.resource(resource)
        return [
            copy.deepcopy(obj.raw)
            for (r, ns, _), obj in self._objects.items()
            if r == res and (namespace is None or ns == namespace) and not obj.deleted
        ]

    async def server_create(
        self, resource: str, namespace: str | None, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Create an object as another client would (no request recorded)."""
        res = references.resource(resource)
        async with self._state_lock:
            obj = self._create(res, namespace, dict(body))
        await self._after_write(res, obj)
        return obj

    async def server_patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Merge-patch an object as another client would (e.g. a controller writing status)."""
        res = references.resource(resource)
        async with self._state_lock:
            obj = self._merge_patch(
                res, namespace, name, dict(patch), subresource=subresource, manager="test"
            )
        await self._after_write(res, obj)
        return obj

    async def server_delete(self, resource: str, namespace: str | None, name: str) -> None:
        res = references.resource(resource)
        async with self._state_lock:
            self._delete(res, namespace, name, preconditions=None)

    # -- request entry -----------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        try:
            request = await _parse_request(raw_request, body, id=len(self._requests))
        except ValueError as exc:
            return _status(400, "BadRequest", str(exc))
        self._requests.append(request)
        try:
            return await self._handle(request)
        except Exception as exc:  # an emulator bug must reach the client as a 500, not hang it
            if self._errors:
                self._errors[-1].append(exc)
            return await self._render_error(exc)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path
        for fault in self.faults:
            if fault.matches(_method(request), path):
                fault.hits += 1
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                return _status(fault.status, "InjectedFault", fault.message, fault.cause)
        if request.resource is None or request.resource.plural is None:
            return await apps.RawHandler._handle(self, request)  # discovery and the like
        resource = request.resource
        if request.action == enums.action.WATCH:
            return await self._watch(request)
        try:
            if request.action == enums.action.LIST:
                return self._list(request)
            if request.action == enums.action.FETCH:
                obj = self._get(resource, request.namespace, str(request.name))
                if request.subresource == "scale" and obj is not None:
                    return _json(_scale_of(obj))
                return _json(obj) if obj is not None else _not_found(resource, request.name)
            async with self._state_lock:
                status, obj = self._write(request)
            if obj is not None and status < 300:
                await self._after_write(resource, obj)
            if request.subresource == "scale" and obj is not None:
                return _json(_scale_of(obj), status)
            return _json(obj, status)
        except _ApiError as exc:
            return _status(exc.code, exc.reason, exc.message)

    def _write(self, request: rendering.Request) -> tuple[int, dict[str, Any] | None]:
        resource, namespace, name = request.resource, request.namespace, request.name
        assert resource is not None
        method = _method(request)
        if method == "POST" and name is None:
            return 201, self._create(resource, namespace, _mapping(request.data))
        if method == "PATCH" and name is not None:
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type == APPLY_PATCH:
                manager = request.params.get("fieldManager")
                if not manager:
                    raise _ApiError(422, "Invalid", "fieldManager is required for apply patch")
                return self._apply(resource, namespace, name, _mapping(request.data), manager=manager)
            sub = request.subresource or ""
            if content_type == "application/json-patch+json":
                if not isinstance(request.data, list):
                    raise _ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
                return 200, self._json_patch(resource, namespace, name, request.data, subresource=sub)
            return 200, self._merge_patch(resource, namespace, name, _mapping(request.data), subresource=sub)
        if method == "DELETE" and name is not None:
            options = request.data if isinstance(request.data, dict) else {}
            return 200, self._delete(resource, namespace, name, preconditions=options.get("preconditions"))
        raise _ApiError(405, "MethodNotAllowed", f"{method} is not emulated here")

    # -- semantics ---------------------------------------------------------------------------

    def _get(self, resource: references.resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (resource, namespace, name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        return self._objects[key].raw

    def _has_status(self, resource: references.resource) -> bool:
        info = self._resource_info(resource)
        return info is not None and "status" in info.subresources

    def _resource_info(self, resource: references.resource) -> references.ResourceInfo | None:
        for known in self._resources:
            if known == resource:
                info: references.ResourceInfo = self._resources[known]
                return info
        return None

    def _next_rv(self) -> str:
        self._last_rv = next(self._rv)
        return str(self._last_rv)

    def _create(
        self, resource: references.resource, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise _ApiError(422, "Invalid", "metadata.name or metadata.generateName is required")
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta["name"]
        namespace = namespace or meta.get("namespace")
        if namespace is not None:
            meta["namespace"] = namespace
        if self._get(resource, namespace, name) is not None:
            raise _ApiError(409, "AlreadyExists", f'{resource.plural} "{name}" already exists')
        if self._has_status(resource):
            obj.pop("status", None)
        meta.pop("resourceVersion", None)
        meta.update(
            uid=str(uuid.uuid4()),
            generation=1,
            creationTimestamp=_now(),
            resourceVersion=self._next_rv(),
        )
        _apply_defaults(resource, obj)
        key = (resource, namespace, name)
        if key in self._objects:
            self._objects[key].create(obj)
        else:
            self._objects[key] = obj
        self._publish(resource, "ADDED", obj)
        return copy.deepcopy(obj)

    def _apply(
        self,
        resource: references.resource,
        namespace: str | None,
        name: str,
        applied: dict[str, Any],
        *,
        manager: str,
    ) -> tuple[int, dict[str, Any]]:
        key = (resource, namespace, name)
        live = self._get(resource, namespace, name)
        if self._has_status(resource):
            applied = {k: v for k, v in applied.items() if k != "status"}
        new_owned = _leaves(_without_identity(applied))
        if live is None:
            created = self._create(resource, namespace, applied)
            self._owned[(key, manager)] = new_owned
            return 201, created
        previous = self._owned.get((key, manager), {})
        merged = copy.deepcopy(live)
        for path in sorted(set(previous) - set(new_owned), key=len, reverse=True):
            _remove_path(merged, path)
        merged = _merge_apply(merged, _without_identity(applied))
        self._owned[(key, manager)] = new_owned
        return 200, self._store(resource, namespace, name, live, merged, writer=manager)

    def _merge_patch(
        self,
        resource: references.resource,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        *,
        subresource: str,
        manager: str = "merge-patch",
    ) -> dict[str, Any]:
        live = self._get(resource, namespace, name)
        if live is None:
            raise _ApiError(404, "NotFound", f'{resource.plural} "{name}" not found')
        wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted_rv is not None and str(wanted_rv) != str(live["metadata"].get("resourceVersion")):
            raise _ApiError(409, "Conflict", "the object has been modified; please apply your changes again")
        if subresource == "status":
            patch = {"status": patch.get("status")} if "status" in patch else {}
        elif subresource == "scale":
            replicas = (patch.get("spec") or {}).get("replicas")
            patch = {"spec": {"replicas": replicas}} if replicas is not None else {}
        elif subresource:
            raise _ApiError(404, "NotFound", f"subresource {subresource} is not emulated")
        elif self._has_status(resource):
            patch = {k: v for k, v in patch.items() if k != "status"}
        merged = _merge_patch(copy.deepcopy(live), patch)
        for protected in ("uid", "creationTimestamp", "generation", "resourceVersion", "name", "namespace"):
            if protected in live["metadata"]:
                merged.setdefault("metadata", {})[protected] = live["metadata"][protected]
        return self._store(resource, namespace, name, live, merged, writer=manager)

    def _json_patch(
        self,
        resource: references.resource,
        namespace: str | None,
        name: str,
        ops: list[Any],
        *,
        subresource: str,
    ) -> dict[str, Any]:
        """RFC 6902 JSON patch (kopf writes its annotations this way, guarded by a ``test`` op)."""
        live = self._get(resource, namespace, name)
        if live is None:
            raise _ApiError(404, "NotFound", f'{resource.plural} "{name}" not found')
        try:
            patched = jsonpatch.apply_patch(copy.deepcopy(live), ops)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise _ApiError(422, "Invalid", f"the JSON patch test failed: {exc}") from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise _ApiError(422, "Invalid", f"the JSON patch cannot be applied: {exc}") from None
        if subresource == "status":
            merged = copy.deepcopy(live)
            merged["status"] = patched.get("status")
            if merged["status"] is None:
                del merged["status"]
        elif self._has_status(resource):
            merged = {k: v for k, v in patched.items() if k != "status"}
            if "status" in live:
                merged["status"] = copy.deepcopy(live["status"])
        else:
            merged = patched
        for protected in ("uid", "creationTimestamp", "generation", "resourceVersion", "name", "namespace"):
            if protected in live["metadata"]:
                merged.setdefault("metadata", {})[protected] = live["metadata"][protected]
        return self._store(resource, namespace, name, live, merged, writer="json-patch")

    def _store(
        self,
        resource: references.resource,
        namespace: str | None,
        name: str,
        live: dict[str, Any],
        new: dict[str, Any],
        *,
        writer: str,
    ) -> dict[str, Any]:
        _apply_defaults(resource, new)
        if new == live:
            return copy.deepcopy(live)  # a no-op write is not a change: no rv bump, no event
        key = (resource, namespace, name)
        old_leaves, new_leaves = _leaves(live), _leaves(new)
        for (owned_key, manager), owned in self._owned.items():
            if owned_key == key and manager != writer:
                # Another writer changed these fields: they are no longer that manager's.
                for path in [p for p in owned if old_leaves.get(p) != new_leaves.get(p)]:
                    del owned[path]
        if {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
            k: v for k, v in live.items() if k not in ("metadata", "status")
        }:
            new["metadata"]["generation"] = int(live["metadata"].get("generation") or 1) + 1
        new["metadata"]["resourceVersion"] = self._next_rv()
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._objects[key].create(new)
            self._remove(resource, namespace, name)
            return copy.deepcopy(new)
        self._objects[key].create(new)
        self._publish(resource, "MODIFIED", new)
        return copy.deepcopy(new)

    def _delete(
        self,
        resource: references.resource,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        live = self._get(resource, namespace, name)
        if live is None:
            raise _ApiError(404, "NotFound", f'{resource.plural} "{name}" not found')
        if preconditions and preconditions.get("uid") not in (None, live["metadata"].get("uid")):
            raise _ApiError(409, "Conflict", "precondition failed: uid does not match")
        if live["metadata"].get("finalizers"):
            if not live["metadata"].get("deletionTimestamp"):
                marked = copy.deepcopy(live)
                marked["metadata"]["deletionTimestamp"] = _now()
                marked["metadata"]["resourceVersion"] = self._next_rv()
                self._objects[(resource, namespace, name)].create(marked)
                self._publish(resource, "MODIFIED", marked)
                return copy.deepcopy(marked)
            return copy.deepcopy(live)
        return self._remove(resource, namespace, name)

    def _remove(self, resource: references.resource, namespace: str | None, name: str) -> dict[str, Any]:
        key = (resource, namespace, name)
        last = copy.deepcopy(self._objects[key].raw)
        self._objects[key].delete()
        for owned_key in [k for k in self._owned if k[0] == key]:
            del self._owned[owned_key]
        last["metadata"]["resourceVersion"] = self._next_rv()
        self._publish(resource, "DELETED", last)
        self._collect_garbage(str(last["metadata"].get("uid")))
        return last

    def _collect_garbage(self, owner_uid: str) -> None:
        """Background cascading deletion: dependents of a deleted owner go too."""
        dependents = [
            (res, ns, nm)
            for (res, ns, nm), obj in list(self._objects.items())
            if not obj.deleted
            and any(
                ref.get("uid") == owner_uid
                for ref in obj.raw.get("metadata", {}).get("ownerReferences") or []
            )
        ]
        for res, ns, nm in dependents:
            if self._get(res, ns, nm) is not None:
                self._delete(res, ns, nm, preconditions=None)

    # -- list & watch ------------------------------------------------------------------------

    def _list(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        assert request.resource is not None
        if self._resource_info(request.resource) is None:
            return _status(
                404, "NotFound", f"the server could not find the requested resource {request.resource}"
            )
        selector = request.params.get("labelSelector", "")
        items = [
            copy.deepcopy(obj.raw)
            for (res, ns, _), obj in self._objects.items()
            if res == request.resource
            and not obj.deleted
            and (request.namespace is None or ns == request.namespace)
            and matches_selector(obj.raw, selector)
        ]
        info = self._resource_info(request.resource)
        kind = info.kind if info is not None and info.kind else "Object"
        return _json(
            {
                "apiVersion": "v1",
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(self._last_rv)},
                "items": items,
            }
        )

    async def _watch(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        assert request.resource is not None
        assert request._raw_request is not None
        timeout = float(request.params.get("timeoutSeconds") or 300)
        watcher = _Watcher(
            resource=request.resource,
            namespace=request.namespace,
            name=request.name,
            selector=request.params.get("labelSelector", ""),
        )
        since = request.params.get("resourceVersion")
        async with self._state_lock:
            initial = self._initial_events(watcher, since)
            self._watchers.append(watcher)
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await response.prepare(request._raw_request)
            for event in initial:
                await response.write(json.dumps(event).encode() + b"\n")
            while (remaining := deadline - loop.time()) > 0:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), timeout=remaining)
                except TimeoutError:
                    break
                await response.write(json.dumps(event).encode() + b"\n")
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self._watchers.remove(watcher)
        return response

    def _initial_events(self, watcher: _Watcher, since: str | None) -> list[dict[str, Any]]:
        log = self._events.get(watcher.resource, [])
        if since and since != "0" and log and int(since) >= log[0][0] - 1:
            return [copy.deepcopy(e) for rv, e in log if rv > int(since) and _watch_matches(watcher, e)]
        return [
            {"type": "ADDED", "object": copy.deepcopy(obj.raw)}
            for (res, ns, nm), obj in self._objects.items()
            if res == watcher.resource and not obj.deleted and _watch_matches(watcher, {"object": obj.raw})
        ]

    def _publish(self, resource: references.resource, type_: str, obj: dict[str, Any]) -> None:
        event = {"type": type_, "object": copy.deepcopy(obj)}
        log = self._events.setdefault(resource, [])
        log.append((int(obj["metadata"]["resourceVersion"]), event))
        del log[:-500]
        for watcher in self._watchers:
            if watcher.resource == resource and _watch_matches(watcher, event):
                watcher.queue.put_nowait(copy.deepcopy(event))

    async def _after_write(self, resource: references.resource, obj: dict[str, Any]) -> None:
        for hook in self.write_hooks:
            await hook(resource, obj)


def _method(request: rendering.Request) -> str:
    method = request.method
    return str(getattr(method, "value", method)).upper()


class _ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


# -- request parsing -------------------------------------------------------------------------


async def _parse_request(raw: aiohttp.web.BaseRequest, body: bytes, *, id: int) -> rendering.Request:
    text = body.decode("utf-8", "replace")
    data: Any = None
    if text.strip():
        try:
            data = json.loads(text)
        except ValueError:
            data = yaml.safe_load(text)  # apply patches may be YAML
    group, version, namespace, plural, name, sub = _parse_path(raw.path)
    method = raw.method.upper()
    action: enums.action | None = None
    resource = None
    if version is not None and plural is None:
        resource = references.resource(group=group, version=version)  # discovery: /api/v1, /apis/g/v
    elif version is not None:
        resource = references.resource(group=group, version=version, plural=plural)
        if method == "GET" and raw.query.get("watch") in ("true", "1"):
            action = enums.action.WATCH
        elif name is None:
            action = {"GET": enums.action.LIST, "POST": enums.action.CREATE}.get(method)
        else:
            action = {
                "GET": enums.action.FETCH,
                "PATCH": enums.action.UPDATE,
                "DELETE": enums.action.DELETE,
            }.get(method)
    return rendering.Request(
        id=id,
        raw_request=raw,
        url=raw.url,
        method=raw.method,
        params=dict(raw.query),
        headers=dict(raw.headers),
        cookies=dict(raw.cookies),
        data=data,
        body=body,
        text=text,
        action=action,
        resource=resource,
        namespace=namespace,
        name=name,
        subresource=sub,
    )


def _parse_path(path: str) -> tuple[str, str | None, str | None, str | None, str | None, str | None]:
    """``(group, version, namespace, plural, name, subresource)`` of a Kubernetes API path."""
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return "", None, None, None, None, None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) or None
    return group, version, namespace, plural, name, sub


# -- dict semantics --------------------------------------------------------------------------


def _mapping(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _ApiError(400, "BadRequest", "the body must be an object")
    return data


def _without_identity(obj: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(obj))
    meta = result.get("metadata") or {}
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    return result


def _list_key(items: Iterable[Any]) -> str | None:
    items = list(items)
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in LIST_KEYS:
        if all(key in i for i in items):
            return key
    return None


def _leaves(obj: Any, path: Path = ()) -> dict[Path, Any]:
    """Every scalar (or atomic list) of an object by path; keyed list items are ``(key, value)``."""
    if isinstance(obj, dict):
        result: dict[Path, Any] = {}
        for key, value in obj.items():
            result.update(_leaves(value, (*path, key)))
        return result or {path: {}}
    if isinstance(obj, list):
        key = _list_key(obj)
        if key is None:
            return {path: obj}
        result = {}
        for item in obj:
            result.update(_leaves(item, (*path, (key, item[key]))))
        return result
    return {path: obj}


def _remove_path(obj: Any, path: Path) -> None:
    """Remove a leaf; drop maps and keyed-list items left empty (or holding only their key)."""
    if not path:
        return
    head, rest = path[0], path[1:]
    if isinstance(head, tuple) and isinstance(obj, list):
        key, value = head
        for item in list(obj):
            if isinstance(item, dict) and item.get(key) == value:
                if rest:
                    _remove_path(item, rest)
                if not rest or set(item) <= {key}:
                    obj.remove(item)
        return
    if not isinstance(obj, dict) or head not in obj:
        return
    if not rest:
        del obj[head]
        return
    _remove_path(obj[head], rest)
    if obj[head] in ({}, []):
        del obj[head]


def _merge_apply(live: Any, applied: Any) -> Any:
    if isinstance(live, dict) and isinstance(applied, dict):
        result = dict(live)
        for key, value in applied.items():
            result[key] = _merge_apply(live.get(key), value) if key in live else copy.deepcopy(value)
        return result
    if isinstance(live, list) and isinstance(applied, list):
        key = _list_key(applied)
        if key is not None and _list_key(live) == key:
            by_key = {item[key]: item for item in live}
            merged = [_merge_apply(by_key.get(item[key], {}), item) for item in applied]
            merged += [item for item in live if item[key] not in {i[key] for i in applied}]
            return merged
    return copy.deepcopy(applied)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


# Groups served from CustomResourceDefinitions (stored as given, no omitempty).
CUSTOM_GROUPS = frozenset({"slm.dev", "monitoring.coreos.com"})
# TotalAnnotationSizeLimitB in k8s.io/apimachinery/pkg/api/validation/objectmeta.go.
ANNOTATIONS_LIMIT = 256 * 1024


def _apply_defaults(resource: references.resource, obj: dict[str, Any]) -> None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    size = sum(len(k) + len(str(v)) for k, v in annotations.items())
    if size > ANNOTATIONS_LIMIT:
        raise _ApiError(
            422, "Invalid", f"metadata.annotations: Too long: must have at most {ANNOTATIONS_LIMIT} bytes"
        )
    if resource.group not in CUSTOM_GROUPS:
        for key in [k for k in obj if k != "metadata"]:
            obj[key] = _omit_empty(obj[key])
    if resource.group == "apps" and resource.plural == "deployments":
        obj.setdefault("spec", {}).setdefault("replicas", 1)


def _omit_empty(value: Any) -> Any:
    """Drop map entries holding ``""`` or ``[]``, as Go's omitempty does for non-pointer fields."""
    if isinstance(value, dict):
        return {k: _omit_empty(v) for k, v in value.items() if v != "" and v != []}
    if isinstance(value, list):
        return [_omit_empty(v) for v in value]
    return value


def _scale_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "uid")},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)},
    }


# -- selectors -------------------------------------------------------------------------------

_SET_TERM = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def matches_selector(obj: Mapping[str, Any], selector: str) -> bool:
    """Kubernetes label-selector matching (equality- and set-based)."""
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    for term in _split_terms(selector):
        if match := _SET_TERM.match(term):
            key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
            if (op == "in") != (key in labels and labels[key] in values):
                return False
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _watch_matches(watcher: _Watcher, event: Mapping[str, Any]) -> bool:
    meta = (event.get("object") or {}).get("metadata") or {}
    if watcher.namespace is not None and meta.get("namespace") != watcher.namespace:
        return False
    if watcher.name is not None and meta.get("name") != watcher.name:
        return False
    return matches_selector(event.get("object") or {}, watcher.selector)


# -- responses -------------------------------------------------------------------------------


def _json(obj: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.json_response(obj, status=status)


def _status(code: int, reason: str, message: str, cause: str | None = None) -> aiohttp.web.Response:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    if cause:
        body["details"] = {"causes": [{"reason": cause, "message": message}]}
    return aiohttp.web.json_response(body, status=code)


def _not_found(resource: references.resource, name: str | None) -> aiohttp.web.Response:
    return _status(404, "NotFound", f'{resource.plural} "{name}" not found')


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- a tiny Deployment controller ------------------------------------------------------------


@dataclass
class DeploymentController:
    """Stands in for kube-controller-manager: reports a Deployment's rollout as complete.

    After every write to a Deployment whose ``status.observedGeneration`` lags its generation,
    it writes a status with all replicas updated and available (or none, while ``available`` is
    False), like a healthy cluster would shortly after a rollout.
    """

    emulator: ClusterEmulator
    available: bool = True
    delay: float = 0.2
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def install(self) -> None:
        self.emulator.write_hooks.append(self._on_write)

    async def _on_write(self, resource: references.resource, obj: dict[str, Any]) -> None:
        if resource.group != "apps" or resource.plural != "deployments":
            return
        meta = obj.get("metadata") or {}
        if int((obj.get("status") or {}).get("observedGeneration") or 0) >= int(meta.get("generation") or 0):
            return
        task = asyncio.create_task(self._report(str(meta.get("namespace")), str(meta.get("name"))))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, namespace: str, name: str) -> None:
        await asyncio.sleep(self.delay)
        live = self.emulator.get_object("apps/v1/deployments", namespace, name)
        if live is None:
            return
        replicas = int(live["spec"].get("replicas", 1))
        ready = replicas if self.available else 0
        status = {
            "observedGeneration": live["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if ready >= replicas else "False",
                    "reason": "MinimumReplicasAvailable"
                    if ready >= replicas
                    else "MinimumReplicasUnavailable",
                }
            ],
        }
        await self.emulator.server_patch(
            "apps/v1/deployments", namespace, name, {"status": status}, subresource="status"
        )

    async def settle(self) -> None:
        """Wait for pending status reports (bounded by their fixed delay)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
