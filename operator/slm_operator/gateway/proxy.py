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

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from slm_operator.gateway import errors
from slm_operator.gateway.config import GatewayConfig
from slm_operator.gateway.keys import ApiKeys
from slm_operator.gateway.metrics import GatewayMetrics
from slm_operator.gateway.models import AllowedModels
from slm_operator.gateway.readiness import ReadinessChecker
from slm_operator.gateway.routes import (
    HEALTHZ,
    KEYED_PREFIXES,
    NOT_FORWARDED_DOWNSTREAM,
    NOT_FORWARDED_UPSTREAM,
    OTHER,
    READYZ,
    Route,
    routes_for,
)
from slm_operator.gateway.tokens import StreamObserver, UsageScanner, usage_tokens
from slm_operator.gateway.upstream import UpstreamError, UpstreamPool, UpstreamResponse

access_log = logging.getLogger("slm_operator.gateway.access")

# Status recorded when the client went away before its answer was complete (nginx's convention;
# never sent, since there is nobody left to send it to).
CLIENT_CLOSED = 499
_SSE = "text/event-stream"
# Answers with a Content-Length up to this are read whole before they are sent (one write, and
# the usage count read from the whole document); larger, chunked or close-delimited answers are
# relayed piece by piece as they arrive, so memory per request stays bounded.
MAX_BUFFERED_BYTES = 256 * 1024
_HEALTHY = b'{"status": "ok"}'


@dataclass(slots=True)
class Outcome:
    """What happened to one request, for its metrics and its access-log line."""

    status: int = 0
    ttft: float | None = None
    tokens: int | None = None
    streamed: bool = False
    error: str | None = None


def filter_headers(
    headers: CIMultiDict[str] | CIMultiDictProxy[str], drop: frozenset[str]
) -> list[tuple[str, str]]:
    """``headers`` without the names in ``drop`` (lower case) or listed in any ``Connection``."""
    if hdrs.CONNECTION in headers:
        named = {
            token.strip().lower() for value in headers.getall(hdrs.CONNECTION) for token in value.split(",")
        }
        drop = drop | named
    return [(name, value) for name, value in headers.items() if name.lower() not in drop]


def peer_address(request: web.BaseRequest) -> str | None:
    """The client's IP address as the gateway's socket sees it (never a header's claim)."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return None


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
        upstream: UpstreamPool,
        keys: ApiKeys | None,
        metrics: GatewayMetrics,
        readiness: ReadinessChecker,
    ) -> None:
        self._upstream = upstream
        self._keys = keys
        self._metrics = metrics
        self._readiness = readiness
        self._max_body = config.max_body_bytes
        self._body_timeout = config.body_timeout
        self._routes = routes_for(config.runtime)
        self._model_json = json.dumps(config.model)
        self._allowed = (
            AllowedModels(config.allowed_models, runtime=config.runtime) if config.allowed_models else None
        )

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request on the API port and record it."""
        start = time.perf_counter()
        path = request.path
        route = self._routes.get(path)
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
        except Exception:
            # A bug, not a runtime failure: aiohttp logs it and answers 500; count it as such.
            outcome.status = 500
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
            # Unknown /v1/ and /api/ paths ask for the key first, so an anonymous caller learns nothing.
            if path.startswith(KEYED_PREFIXES) and not self._authorized(request):
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
        self._metrics.request_started()
        try:
            return await self._forward(request, route, body, outcome, start)
        finally:
            self._metrics.request_ended()

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
            # Never the file's path: /readyz answers anyone.
            ready, reason = False, f"no API key loaded: {self._keys.problem or 'no key in the file'}"
        return web.Response(
            status=200 if ready else 503,
            body=json.dumps({"ready": ready, "reason": reason}).encode(),
            content_type="application/json",
        )

    async def _read_json_body(self, request: web.BaseRequest) -> bytes | web.Response:
        """The request body if it is a JSON object within the size limit, else the refusal."""
        length = request.content_length
        if length is not None and length > self._max_body:
            return self._too_large()
        if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
            # curl and others hold the body back until told to go on; aiohttp's router would
            # answer this, the low-level server leaves it to the handler.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        try:
            if request.content.is_eof():  # the whole body came with the head: nothing to wait for
                body = await self._collect(request)
            else:
                async with asyncio.timeout(self._body_timeout):
                    body = await self._collect(request)
        except TimeoutError:
            # A client trickling its body would hold the connection (and a slot) indefinitely.
            refusal = errors.error_response(
                408,
                f"The request body did not arrive within {self._body_timeout:g} s.",
                kind="invalid_request_error",
                code="request_timeout",
            )
            refusal.force_close()
            self._metrics.connection_dropped("body_timeout")
            return refusal
        if body is None:
            return self._too_large()
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to decode
            document = None
        if not isinstance(document, dict):
            return errors.error_response(
                400,
                "Request body must be a JSON object.",
                kind="invalid_request_error",
                code="invalid_json",
            )
        if self._allowed is not None and not self._allowed.accepts(document):
            return self._allowed.refusal(document)
        return body

    async def _collect(self, request: web.BaseRequest) -> bytes | None:
        """The body, or None once it is larger than the limit."""
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self) -> web.Response:
        refusal = errors.error_response(
            413,
            f"Request body is larger than {self._max_body} bytes.",
            kind="invalid_request_error",
            code="request_too_large",
        )
        refusal.force_close()  # do not read (or wait for) the rest of a body we refuse
        return refusal

    async def _forward(
        self, request: web.BaseRequest, route: Route, body: bytes | None, outcome: Outcome, start: float
    ) -> web.StreamResponse:
        # The raw target keeps the query exactly as the client sent it; the path is the route's own.
        raw = request.raw_path
        query = raw.find("?")
        target = route.path if query < 0 else route.path + raw[query:]
        headers = filter_headers(request.headers, NOT_FORWARDED_UPSTREAM)
        peer = peer_address(request)
        if peer is not None:
            headers.append(("X-Forwarded-For", peer))
            headers.append(("X-Real-IP", peer))
        headers.append(("X-Forwarded-Proto", "http"))
        try:
            upstream = await self._upstream.request(route.method, target, headers, body)
        except UpstreamError as exc:
            return await self._upstream_failed(request, outcome, exc.kind)
        try:
            if upstream.content_type == _SSE:
                return await self._stream(request, route, upstream, outcome, start, sse=True)
            if upstream.length is None or upstream.length > MAX_BUFFERED_BYTES:
                return await self._stream(request, route, upstream, outcome, start, sse=False)
            return await self._relay(request, route, upstream, outcome, start)
        finally:
            upstream.close()  # a no-op once the body was read to the end (the connection is reused)

    async def _upstream_failed(
        self, request: web.BaseRequest, outcome: Outcome, kind: str
    ) -> web.StreamResponse:
        outcome.error = kind
        self._metrics.upstream_error(kind)
        if kind == "timeout":
            response = errors.upstream_error(
                504, "The model runtime did not answer in time.", "upstream_timeout"
            )
        elif kind == "connect":
            response = errors.upstream_error(502, "The model runtime is unreachable.", "upstream_unavailable")
        else:
            response = errors.upstream_error(
                502, "The model runtime closed the connection.", "upstream_unavailable"
            )
        return await self._answer(request, outcome, response)

    async def _relay(
        self,
        request: web.BaseRequest,
        route: Route,
        upstream: UpstreamResponse,
        outcome: Outcome,
        start: float,
    ) -> web.StreamResponse:
        try:
            payload = await upstream.read()
        except UpstreamError as exc:
            return await self._upstream_failed(request, outcome, exc.kind)
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
        upstream: UpstreamResponse,
        outcome: Outcome,
        start: float,
        *,
        sse: bool,
    ) -> web.StreamResponse:
        """Relay the body piece by piece: SSE events, Ollama's NDJSON stream, or a large answer."""
        response = web.StreamResponse(
            status=upstream.status, headers=filter_headers(upstream.headers, NOT_FORWARDED_DOWNSTREAM)
        )
        if upstream.length is not None:
            response.content_length = upstream.length
        # Tell a buffering reverse proxy in front (ingress-nginx honours it) to pass events on at once.
        response.headers["X-Accel-Buffering"] = "no"
        outcome.status = upstream.status
        outcome.streamed = True
        observer: StreamObserver | UsageScanner | None = None
        if route.generates and upstream.status < 300:
            observer = StreamObserver() if sse else UsageScanner()
        try:
            await response.prepare(request)
            while True:
                try:
                    chunk = await upstream.next_chunk()
                except UpstreamError as exc:
                    self._abort(
                        request, outcome, "stream_stalled" if exc.kind == "timeout" else "stream_broken"
                    )
                    return response
                if not chunk:
                    break
                await response.write(chunk)
                if observer is not None and observer.feed(chunk) and outcome.ttft is None:
                    outcome.ttft = time.perf_counter() - start
            await response.write_eof()
        except ConnectionError:  # the client went away while we were writing to it
            outcome.status = CLIENT_CLOSED
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
        # Fixed fields only: never the prompt, the answer, the key or the raw path. Formatted by
        # hand (it runs for every request): every string here is either JSON-encoded once at
        # start-up (the model) or from a fixed set (route, error) or an HTTP token (method).
        ttft = "null" if outcome.ttft is None else f"{outcome.ttft:.6f}"
        tokens = "null" if outcome.tokens is None else str(outcome.tokens)
        error = "null" if outcome.error is None else f'"{outcome.error}"'
        access_log.info(
            '{"msg": "request", "model": %s, "method": "%s", "route": "%s", "status": %d, '
            '"duration_s": %.6f, "ttft_s": %s, "output_tokens": %s, "stream": %s, "error": %s}',
            self._model_json,
            method,
            route,
            outcome.status,
            duration,
            ttft,
            tokens,
            "true" if outcome.streamed else "false",
            error,
        )
