"""The request path: authenticate, check, forward, stream back, measure.

Everything here runs once per request, so it stays lean: the body is parsed only to check that
it is JSON and then forwarded as the original bytes, the key file is looked at no more than once
a second, metric children are pre-bound, and streamed chunks are written to the client the
moment they arrive (token counting looks at a chunk only after it was written).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from slm_operator.gateway import errors
from slm_operator.gateway.config import GatewayConfig
from slm_operator.gateway.keys import ApiKeys
from slm_operator.gateway.metrics import GatewayMetrics
from slm_operator.gateway.readiness import ReadinessChecker
from slm_operator.gateway.routes import (
    API_ROUTES,
    HEALTHZ,
    NOT_FORWARDED_DOWNSTREAM,
    NOT_FORWARDED_UPSTREAM,
    OTHER,
    READYZ,
    Route,
)
from slm_operator.gateway.tokens import StreamObserver, usage_tokens

access_log = logging.getLogger("slm_operator.gateway.access")
log = logging.getLogger(__name__)

# Status recorded when the client went away before its answer was complete (nginx's convention;
# never sent, since there is nobody left to send it to).
CLIENT_CLOSED = 499
_SSE = "text/event-stream"
_HEALTHY = b'{"status": "ok"}'


@dataclass(slots=True)
class Outcome:
    """What happened to one request, for its metrics and its access-log line."""

    status: int = 0
    ttft: float | None = None
    tokens: int | None = None
    streamed: bool = False
    error: str | None = None


def filter_headers(headers: CIMultiDictProxy[str], drop: frozenset[str]) -> CIMultiDict[str]:
    """Copy ``headers`` without the names in ``drop`` (lower case) or listed in ``Connection``."""
    connection = headers.get(hdrs.CONNECTION)
    if connection:
        drop = drop | {token.strip().lower() for token in connection.split(",")}
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in drop)


async def send(request: web.BaseRequest, response: web.StreamResponse) -> web.StreamResponse:
    """Send a complete answer now, so the duration metric covers writing it."""
    await response.prepare(request)
    await response.write_eof()
    return response


class Gateway:
    """The API port's request handler (an aiohttp low-level handler: no router, no middlewares)."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        session: aiohttp.ClientSession,
        keys: ApiKeys | None,
        metrics: GatewayMetrics,
        readiness: ReadinessChecker,
    ) -> None:
        self._config = config
        self._session = session
        self._keys = keys
        self._metrics = metrics
        self._readiness = readiness
        self._base_url = config.upstream
        self._max_body = config.max_body_bytes

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request on the API port and record it."""
        start = time.perf_counter()
        path = request.path
        route = API_ROUTES.get(path)
        if route is not None:
            label = route.path
        elif path in (HEALTHZ, READYZ):
            label = path
        else:
            label = OTHER
        outcome = Outcome()
        try:
            return await self._dispatch(request, path, route, outcome, start)
        except asyncio.CancelledError:
            # The client disconnected (aiohttp cancels the handler): everything opened for this
            # request, including the runtime's connection, is closed on the way out.
            outcome.status = CLIENT_CLOSED
            raise
        finally:
            duration = time.perf_counter() - start
            self._metrics.observe_request(label, outcome.status, duration, outcome.ttft, outcome.tokens)
            if access_log.isEnabledFor(logging.INFO):
                self._log_access(request.method, label, outcome, duration)

    async def _dispatch(
        self, request: web.BaseRequest, path: str, route: Route | None, outcome: Outcome, start: float
    ) -> web.StreamResponse:
        if route is None:
            if path == HEALTHZ:
                return await self._answer(
                    request, outcome, web.Response(body=_HEALTHY, content_type="application/json")
                )
            if path == READYZ:
                return await self._answer(request, outcome, await self._ready_response())
            # Unknown /v1 paths ask for the key first, so an anonymous caller learns nothing.
            if path.startswith("/v1/") and not self._authorized(request):
                return await self._answer(request, outcome, errors.unauthorized())
            return await self._answer(request, outcome, errors.not_found())
        if not self._authorized(request):
            return await self._answer(request, outcome, errors.unauthorized())
        if request.method != route.method:
            refusal = errors.error_response(
                405,
                f"{path} accepts {route.method} only",
                kind="invalid_request_error",
                code="method_not_allowed",
            )
            refusal.headers[hdrs.ALLOW] = route.method
            return await self._answer(request, outcome, refusal)
        body: bytes | None = None
        if route.json_body:
            body_or_refusal = await self._read_json_body(request)
            if isinstance(body_or_refusal, web.Response):
                return await self._answer(request, outcome, body_or_refusal)
            body = body_or_refusal
        self._metrics.in_flight.inc()
        try:
            return await self._forward(request, route, body, outcome, start)
        finally:
            self._metrics.in_flight.dec()

    def _authorized(self, request: web.BaseRequest) -> bool:
        return self._keys is None or self._keys.verify(request.headers.get(hdrs.AUTHORIZATION))

    async def _answer(
        self, request: web.BaseRequest, outcome: Outcome, response: web.StreamResponse
    ) -> web.StreamResponse:
        outcome.status = response.status
        return await send(request, response)

    async def _ready_response(self) -> web.Response:
        state = await self._readiness.check()
        ready, reason = state.ready, state.reason
        if self._keys is not None and self._keys.count() == 0:
            ready, reason = False, f"no API key loaded from {self._keys.path}"
        return web.Response(
            status=200 if ready else 503,
            body=json.dumps({"ready": ready, "reason": reason}).encode(),
            content_type="application/json",
        )

    async def _read_json_body(self, request: web.BaseRequest) -> bytes | web.Response:
        """The request body if it is a JSON object within the size limit, else the refusal."""
        too_large = errors.error_response(
            413,
            f"Request body is larger than {self._max_body} bytes.",
            kind="invalid_request_error",
            code="request_too_large",
        )
        length = request.content_length
        if length is not None and length > self._max_body:
            too_large.force_close()  # do not read (or wait for) a body we refuse
            return too_large
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > self._max_body:
                too_large.force_close()
                return too_large
            chunks.append(chunk)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            document = json.loads(body)
        except ValueError:  # also covers bytes that are not UTF-8
            document = None
        if not isinstance(document, dict):
            return errors.error_response(
                400,
                "Request body must be a JSON object.",
                kind="invalid_request_error",
                code="invalid_json",
            )
        return body

    async def _forward(
        self, request: web.BaseRequest, route: Route, body: bytes | None, outcome: Outcome, start: float
    ) -> web.StreamResponse:
        url = self._base_url + route.path
        if request.query_string:
            url = f"{url}?{request.query_string}"
        headers = filter_headers(request.headers, NOT_FORWARDED_UPSTREAM)
        try:
            upstream = await self._session.request(route.method, url, data=body, headers=headers)
        except TimeoutError:
            return await self._upstream_failed(
                request, outcome, 504, "timeout", "The model runtime did not answer in time."
            )
        except aiohttp.ClientConnectorError:
            return await self._upstream_failed(
                request, outcome, 502, "connect", "The model runtime is unreachable."
            )
        except aiohttp.ClientError:
            return await self._upstream_failed(
                request, outcome, 502, "disconnected", "The model runtime closed the connection."
            )
        try:
            if upstream.content_type == _SSE:
                return await self._stream(request, route, upstream, outcome, start)
            return await self._relay(request, route, upstream, outcome, start)
        except BaseException:
            upstream.close()
            raise
        finally:
            upstream.release()

    async def _upstream_failed(
        self, request: web.BaseRequest, outcome: Outcome, status: int, reason: str, message: str
    ) -> web.StreamResponse:
        outcome.error = reason
        self._metrics.upstream_error(reason)
        code = "upstream_timeout" if status == 504 else "upstream_unavailable"
        return await self._answer(request, outcome, errors.upstream_error(status, message, code))

    async def _relay(
        self,
        request: web.BaseRequest,
        route: Route,
        upstream: aiohttp.ClientResponse,
        outcome: Outcome,
        start: float,
    ) -> web.StreamResponse:
        try:
            payload = await upstream.read()
        except TimeoutError:
            return await self._upstream_failed(
                request, outcome, 504, "timeout", "The model runtime did not answer in time."
            )
        except aiohttp.ClientError:
            return await self._upstream_failed(
                request, outcome, 502, "disconnected", "The model runtime closed the connection."
            )
        response = web.Response(
            status=upstream.status,
            body=payload,
            headers=filter_headers(upstream.headers, NOT_FORWARDED_DOWNSTREAM),
        )
        outcome.status = upstream.status
        try:
            await send(request, response)
        except ConnectionError:
            outcome.status = CLIENT_CLOSED
            return response
        if route.generates and upstream.status < 300:
            outcome.ttft = time.perf_counter() - start
            outcome.tokens = usage_tokens(payload)
        return response

    async def _stream(
        self,
        request: web.BaseRequest,
        route: Route,
        upstream: aiohttp.ClientResponse,
        outcome: Outcome,
        start: float,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=upstream.status, headers=filter_headers(upstream.headers, NOT_FORWARDED_DOWNSTREAM)
        )
        # Tell a buffering reverse proxy in front (ingress-nginx honours it) to pass events on at once.
        response.headers["X-Accel-Buffering"] = "no"
        outcome.status = upstream.status
        outcome.streamed = True
        observer = StreamObserver() if route.generates and upstream.status < 300 else None
        try:
            await response.prepare(request)
            while True:
                try:
                    chunk = await upstream.content.readany()
                except TimeoutError:
                    self._abort(request, outcome, "stream_stalled")
                    return response
                except aiohttp.ClientError:
                    self._abort(request, outcome, "stream_broken")
                    return response
                if not chunk:
                    break
                await response.write(chunk)
                if observer is not None and observer.feed(chunk) and outcome.ttft is None:
                    outcome.ttft = time.perf_counter() - start
            await response.write_eof()
        except ConnectionError:  # the client went away while we were writing to it
            outcome.status = CLIENT_CLOSED
            upstream.close()
        finally:
            if observer is not None:
                outcome.tokens = observer.output_tokens
        return response

    def _abort(self, request: web.BaseRequest, outcome: Outcome, reason: str) -> None:
        """End a stream that broke after its headers were sent.

        Closing the connection (rather than ending the chunked body cleanly) lets the client
        see that the answer is incomplete.
        """
        outcome.error = reason
        self._metrics.upstream_error(reason)
        transport = request.transport
        if transport is not None:
            transport.close()

    def _log_access(self, method: str, route: str, outcome: Outcome, duration: float) -> None:
        # Fixed fields only: never the prompt, the answer, the key or the raw path.
        access_log.info(
            json.dumps(
                {
                    "msg": "request",
                    "model": self._config.model,
                    "method": method,
                    "route": route,
                    "status": outcome.status,
                    "duration_s": round(duration, 6),
                    "ttft_s": None if outcome.ttft is None else round(outcome.ttft, 6),
                    "output_tokens": outcome.tokens,
                    "stream": outcome.streamed,
                    "error": outcome.error,
                }
            )
        )
