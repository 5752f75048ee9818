"""A fault-injecting HTTP proxy in front of the real API server.

A real server cannot produce a 500, a dropped connection or a 409 on demand, so the operator
is pointed at this proxy (plain HTTP on 127.0.0.1; it speaks HTTPS to the API server and passes
the operator's bearer token through). Every request is forwarded untouched -- watches stream --
except those a test arms a fault for: answer with a status, delay, or close the connection
without an answer.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


@dataclass
class Fault:
    method: str
    path: str  # a regular expression searched in the request path
    status: int | None = None
    delay: float = 0.0
    drop: bool = False
    times: int = 1
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.hits < self.times and method == self.method and re.search(self.path, path) is not None


@dataclass
class FaultProxy:
    upstream: str
    ca_file: str
    faults: list[Fault] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, method: str, path: str, **kwargs: object) -> Fault:
        fault = Fault(method, path, **kwargs)  # type: ignore[arg-type]
        with self._lock:
            self.faults.append(fault)
        return fault

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._take(request.method, request.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:  # the connection goes away with no answer at all
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=599)
            if fault.status is not None:
                status = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": "injected by the test proxy",
                    "reason": "InternalError",
                    "code": fault.status,
                }
                return web.json_response(status, status=fault.status)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        response = web.StreamResponse()
        try:
            async with self._session.request(
                request.method,
                self.upstream + request.rel_url.path_qs,
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as upstream:
                response.set_status(upstream.status)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        response.headers[key] = value
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientError):
            # The operator went away mid-watch, or the API server did: end this exchange.
            if request.transport is not None:
                request.transport.abort()
        return response

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def setup() -> None:
                context = ssl.create_default_context(cafile=self.ca_file)
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=context),
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                    auto_decompress=False,
                )
                app = web.Application()
                app.router.add_route("*", "/{tail:.*}", self._handle)
                # Open watches would hold a graceful shutdown for a minute: cut them at once.
                self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
                await self._runner.setup()
                site = web.TCPSite(self._runner, "127.0.0.1", 0)
                await site.start()
                server = site._server
                assert server is not None
                self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

            loop.run_until_complete(setup())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def teardown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        asyncio.run_coroutine_threadsafe(teardown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None
