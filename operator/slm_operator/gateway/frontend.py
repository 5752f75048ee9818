"""The API port: a lean HTTP/1.1 server on llhttp, written for the gateway's one job.

Each client connection is a plain :class:`asyncio.Protocol` with llhttp's request parser
(through ``httptools``). Parser callbacks only note what a request carries (method, path, the
key, the headers to forward, the body); once a read is parsed, the connection answers what is
complete: a fixed answer written straight to the transport, or the request written to the
runtime on a pooled connection whose answer is relayed from the runtime's protocol straight to
this one (:class:`~slm_operator.gateway.upstream.UpstreamSink`). No request object, no task and
no future per request; ``/readyz`` and opening a new runtime connection are the only tasks.

The parser is strict: it refuses bare-LF line ends, control characters in header values,
malformed request lines and header names, and every request whose length is ambiguous (both
Content-Length and Transfer-Encoding, two Content-Lengths, a transfer coding other than a final
``chunked``). Such a request gets a fixed 400 that never echoes its bytes, only the error's class
is logged, it is counted in the metrics, and the connection is closed.

Limits on clients (see docs/gateway.md, "Slow and hostile clients"):

- **idle timeout**: a connection with no request in progress is closed after ``idle_timeout``;
- **header timeout**: from the first byte of a request, its head must be complete within
  ``header_timeout``;
- **body timeout**: from the end of its head, a request's body must be complete within
  ``body_timeout``, else 408;
- **connection cap**: when ``max_connections`` are open, a new connection pushes out the one that
  has waited longest without a request in progress (idle, or still sending its head); when all
  of them are busy, the new connection is closed at once;
- **lingering close**: after an answer sent before the request's body was read (401, 404, 408,
  413), what the client still sends is read and dropped for at most ``LINGERING_SECONDS``.

One timer per connection serves all of these: it is re-armed lazily (a deadline moves; the
timer, when it fires early, sets itself for the new deadline), so a request costs no timer call.

The module is longer than the project's usual 400 lines on purpose: almost all of it is one
protocol class on the hot path whose callbacks pass a request from the parser to the runtime and
the answer back. Split over modules it would need mixins sharing that class's private state,
and a request's path would no longer read top to bottom in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from typing import cast

import httptools
import orjson

from slm_operator.gateway import errors
from slm_operator.gateway.config import GatewayConfig
from slm_operator.gateway.errors import Answer
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
from slm_operator.gateway.upstream import IDEMPOTENT, TIMEOUT, UpstreamConnection, UpstreamPool

log = logging.getLogger(__name__)
access_log = logging.getLogger("slm_operator.gateway.access")

# After an answer sent before the request body was read, what the client still sends is read
# and dropped for this long, so that the client sees the answer rather than a reset.
LINGERING_SECONDS = 2.0
# Status recorded when the client went away before its answer was complete (nginx's convention;
# never sent, since there is nobody left to send it to).
CLIENT_CLOSED = 499
# Answers with a Content-Length up to this are read whole before they are sent (one write, and
# the usage count read from the whole document); larger, chunked or close-delimited answers are
# relayed piece by piece as they arrive, so memory per request stays bounded.
MAX_BUFFERED_BYTES = 256 * 1024
# A request head (request line and headers) larger than this, or with more header lines, is
# refused with 431.
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 128
# Complete requests queued behind the one being answered (pipelining) before reading pauses.
MAX_QUEUED = 8

_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_NO_BUFFERING = b"X-Accel-Buffering: no\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_SSE = b"text/event-stream"
_HEALTHZ = HEALTHZ.encode()
_READYZ = READYZ.encode()
_KEYED = tuple(prefix.encode() for prefix in KEYED_PREFIXES)
_DROP_UP = frozenset(name.encode() for name in NOT_FORWARDED_UPSTREAM)
_DROP_DOWN = frozenset(name.encode() for name in NOT_FORWARDED_DOWNSTREAM)
_METHODS = {b"GET": "GET", b"POST": "POST"}

# Connection phases: what the connection's one timer is watching.
_IDLE, _HEAD, _BODY, _BUSY, _LINGER, _CLOSING = range(6)


class AccessLog:
    """One JSON line per request: through the ``slm_operator.gateway.access`` logger, or, when the
    process's logging was set up by the command line, written straight to a file descriptor
    (one ``write`` per line, as the logging handler did, without building a log record)."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int | None = None) -> None:
        self._fd = fd

    def enabled(self) -> bool:
        """False when the log level hides the access log."""
        return access_log.isEnabledFor(logging.INFO)

    def write(self, line: str) -> None:
        """Write one line (a complete JSON document, without the line end)."""
        if self._fd is None:
            access_log.info(line)
            return
        with contextlib.suppress(OSError):  # stdout gone: the request was served all the same
            os.write(self._fd, (line + "\n").encode())


# Set by the command line (cli.configure_logging): write access lines to this descriptor.
DIRECT_ACCESS_FD: int | None = None


class _Exchange:
    """One request on a connection, from its first byte to the last byte of its answer."""

    __slots__ = (
        "answer",
        "answered",
        "auth",
        "body",
        "buffered",
        "close",
        "continued",
        "early",
        "error",
        "expect",
        "forwarded",
        "head_done",
        "head_out",
        "headers",
        "hop",
        "http10",
        "keep_alive",
        "label",
        "length",
        "method",
        "needs_body",
        "observer",
        "out_chunked",
        "parts",
        "path",
        "query",
        "received",
        "recorded",
        "route",
        "seen",
        "size",
        "start",
        "status",
        "streamed",
        "tokens",
        "ttft",
        "url",
    )

    def __init__(self, start: float) -> None:
        self.start = start
        self.url = b""
        self.method = b""
        self.path = b""
        self.query = b""
        self.headers: list[tuple[bytes, bytes]] = []  # (lower-case name, whole header line)
        self.auth: bytes | None = None
        self.hop: list[bytes] | None = None  # header names listed in Connection
        self.expect = False
        self.length: int | None = None
        self.keep_alive = True
        self.http10 = False
        self.route: Route | None = None
        self.label = OTHER
        self.answer: Answer | None = None  # a fixed answer decided from the head
        self.needs_body = False
        self.body: list[bytes] = []
        self.size = 0
        self.head_done = False
        self.received = False
        self.answered = False
        self.recorded = False
        self.early = False  # answered before its body was read
        self.continued = False
        self.close = False
        self.forwarded = False
        self.status = 0
        self.ttft: float | None = None
        self.tokens: int | None = None
        self.streamed = False
        self.error: str | None = None
        self.observer: StreamObserver | UsageScanner | None = None
        self.buffered = False
        self.out_chunked = False
        self.head_out = b""
        self.parts: list[bytes] = []
        self.seen: list[bytes] = []


class ApiServer:
    """What every connection of the API port shares: settings, keys, routes, the runtime pool."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        upstream: UpstreamPool,
        keys: ApiKeys | None,
        metrics: GatewayMetrics,
        readiness: ReadinessChecker,
        max_connections: int,
        access: AccessLog | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.upstream = upstream
        self.keys = keys
        self.metrics = metrics
        self.readiness = readiness
        self.max_body = config.max_body_bytes
        self.header_timeout = config.header_timeout
        self.body_timeout = config.body_timeout
        self.idle_timeout = config.idle_timeout
        self.max_connections = max_connections
        self.routes = {route.path.encode(): route for route in routes_for(config.runtime).values()}
        self.not_allowed = {
            route.path: errors.method_not_allowed(route.path, route.method) for route in self.routes.values()
        }
        self.too_large = errors.too_large(config.max_body_bytes)
        self.timed_out = errors.body_timeout(config.body_timeout)
        self.allowed = (
            AllowedModels(config.allowed_models, runtime=config.runtime) if config.allowed_models else None
        )
        self.model_json = json.dumps(config.model)
        self.access = access if access is not None else AccessLog(DIRECT_ACCESS_FD)
        self.connections: set[ApiProtocol] = set()
        self.shutting_down = False

    def protocol(self) -> ApiProtocol:
        """The protocol factory for ``loop.create_server``."""
        return ApiProtocol(self)

    def authorized(self, authorization: bytes | None) -> bool:
        return self.keys is None or self.keys.verify_raw(authorization)

    def make_room(self) -> bool:
        """At the cap: push out the connection that waited longest; False when all are busy."""
        oldest: ApiProtocol | None = None
        for conn in self.connections:
            if conn.waiting() and (oldest is None or conn.waiting_since < oldest.waiting_since):
                oldest = conn
        if oldest is None:
            return False
        oldest.close_now()
        return True

    async def shutdown(self, grace: float) -> None:
        """Close idle connections, let requests in flight finish for up to ``grace`` s, close the rest."""
        self.shutting_down = True
        deadline = self.loop.time() + grace
        while True:
            for conn in list(self.connections):
                if conn.waiting():
                    conn.close_now()
            if not self.connections or self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.close_now()


class ApiProtocol(asyncio.Protocol):
    """One client connection of the API port (see the module docstring)."""

    __slots__ = (
        "_closed",
        "_deadline",
        "_eof",
        "_forwarded_for",
        "_head_count",
        "_parser",
        "_phase",
        "_queue",
        "_reading_paused",
        "_server",
        "_stopped",
        "_timer",
        "_write_paused",
        "active",
        "parsing",
        "readyz_task",
        "transport",
        "upstream_conn",
        "upstream_task",
        "waiting_since",
    )

    def __init__(self, server: ApiServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._phase = _IDLE
        self._queue: deque[_Exchange] = deque()
        self._closed = False
        self._stopped = False  # no more requests are read (a parse error, an upgrade)
        self._eof = False
        self._reading_paused = False
        self._write_paused = False
        self._head_count = 0
        self._forwarded_for = b"X-Forwarded-Proto: http\r\n"
        self.active: _Exchange | None = None
        self.parsing: _Exchange | None = None
        self.upstream_conn: UpstreamConnection | None = None
        self.upstream_task: asyncio.Task[None] | None = None
        self.readyz_task: asyncio.Task[None] | None = None
        self.waiting_since = time.monotonic()

    # --- the connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        server = self._server
        if len(server.connections) >= server.max_connections:
            if server.make_room():
                server.metrics.connection_dropped("pushed_out")
            else:  # every connection is busy with a request: this one waits for nothing
                server.metrics.connection_dropped("refused")
                self._closed = True
                self.transport.close()
                return
        server.connections.add(self)
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
            address = peer[0].encode()
            self._forwarded_for = b"X-Forwarded-For: %s\r\nX-Real-IP: %s\r\nX-Forwarded-Proto: http\r\n" % (
                address,
                address,
            )
        self._arm(_IDLE, server.idle_timeout)

    def waiting(self) -> bool:
        """True when no request is in progress: the connection waits for (the rest of) a head."""
        parsing = self.parsing
        return (
            self.active is None
            and not self._queue
            and not self._closed
            and (parsing is None or not parsing.head_done)
        )

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase >= _CLOSING or self._stopped:
            return  # read and dropped (lingering close), or nothing more is read
        parsing = self.parsing
        if parsing is None or not parsing.head_done:
            self._head_count += len(data)  # an upper bound on the bytes of the head in progress
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrade or CONNECT: the gateway never upgrades; the request is answered as any other
            # (Upgrade is not forwarded) and the connection closes after it.
            self._stopped = True
            if self._queue:
                self._queue[-1].close = True
            elif self.parsing is not None or self.active is None:
                self._malformed(errors.MALFORMED, "HttpParserUpgrade")
                return
        except httptools.HttpParserCallbackError as exc:
            log.error("error while reading a request", exc_info=exc.__context__)
            self._malformed(errors.INTERNAL, None)
            return
        except httptools.HttpParserError as exc:
            self._malformed(errors.MALFORMED, type(exc).__name__)
            return
        parsing = self.parsing
        if parsing is not None and not parsing.head_done and self._head_count > MAX_HEAD_BYTES:
            self._malformed(errors.HEAD_TOO_LARGE, "head too large")
            return
        self._pump()
        if self.active is None and not self._closed and self._phase < _LINGER:
            self._watch_incomplete()

    def eof_received(self) -> bool:
        # The client hung up (HTTP clients do not half-close): whatever is in progress is
        # abandoned, like aiohttp's and nginx's servers do; connection_lost cleans up.
        self._eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        server = self._server
        server.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ex = self.active
        self.active = None
        self._queue.clear()
        if ex is not None and not ex.recorded:
            if self.upstream_conn is not None:
                self.upstream_conn.abort()  # the runtime sees the connection go and stops generating
                self.upstream_conn = None
            if self.upstream_task is not None:
                self.upstream_task.cancel()
                self.upstream_task = None
            if self.readyz_task is not None:
                self.readyz_task.cancel()
                self.readyz_task = None
            if ex.observer is not None:
                ex.tokens = ex.observer.output_tokens
            ex.status = CLIENT_CLOSED
            self._record(ex)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.upstream_conn is not None:
            self.upstream_conn.pause()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.upstream_conn is not None:
            self.upstream_conn.resume()

    def close_now(self) -> None:
        """Close the connection without an answer (idle, too slow, pushed out, shutting down)."""
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.close()

    # --- the one timer -----------------------------------------------------------------------------

    def _arm(self, phase: int, seconds: float) -> None:
        self._phase = phase
        deadline = self._server.loop.time() + seconds
        self._deadline = deadline
        timer = self._timer
        if timer is None:
            self._timer = self._server.loop.call_at(deadline, self._expired)
        elif timer.when() > deadline:
            timer.cancel()
            self._timer = self._server.loop.call_at(deadline, self._expired)

    def _expired(self) -> None:
        self._timer = None
        phase = self._phase
        if self._closed or phase == _BUSY:
            return
        loop = self._server.loop
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._expired)
            return
        if phase == _HEAD:
            self._server.metrics.connection_dropped("header_timeout")
        elif phase == _BODY:
            ex = self.parsing
            if ex is not None and self.active is None:
                # A client trickling its body would hold the connection (and a slot) indefinitely.
                self._server.metrics.connection_dropped("body_timeout")
                ex.close = True
                self._answer_early(ex, self._server.timed_out)
                return
        self.close_now()

    def _watch_incomplete(self) -> None:
        """After a read with nothing being answered: time the request still arriving, if any."""
        ex = self.parsing
        if ex is None:
            return
        if not ex.head_done:
            if self._phase != _HEAD:
                self._arm(_HEAD, self._server.header_timeout)
        elif self._phase not in (_BODY, _LINGER):
            self._arm(_BODY, self._server.body_timeout)

    # --- llhttp callbacks (they only take notes) -------------------------------------------------------

    def on_message_begin(self) -> None:
        self.parsing = _Exchange(time.perf_counter())
        self._head_count = 0

    def on_url(self, url: bytes) -> None:
        ex = self.parsing
        if ex is not None:
            ex.url += url
            ex.size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.parsing
        if ex is None:
            return
        ex.size += len(name) + len(value) + 4  # the head's size so far (for the limit)
        lname = name.lower()
        if lname in _DROP_UP:
            if lname == b"authorization":
                if ex.auth is None:
                    ex.auth = value
            elif lname == b"connection":
                tokens = [token.strip().lower() for token in value.split(b",")]
                ex.hop = tokens if ex.hop is None else ex.hop + tokens
            elif lname == b"content-length":
                ex.length = int(value)  # llhttp has checked the digits (and refused a second one)
            elif lname == b"expect":
                ex.expect = value.strip().lower() == b"100-continue"
        else:
            ex.headers.append((lname, name + b": " + value + b"\r\n"))

    def on_headers_complete(self) -> None:
        ex = self.parsing
        if ex is None:
            return
        parser = self._parser
        ex.head_done = True
        self._head_count = 0
        ex.method = method = parser.get_method()
        ex.keep_alive = parser.should_keep_alive()
        version = parser.get_http_version()
        server = self._server
        if len(ex.headers) > MAX_HEADERS or ex.size > MAX_HEAD_BYTES:
            ex.answer, ex.close = errors.HEAD_TOO_LARGE, True
            return
        ex.size = 0  # from here on: the body's size
        if version != "1.1":
            if version != "1.0":
                ex.answer, ex.close = errors.MALFORMED, True
                return
            ex.http10 = True
        url = ex.url
        if url[:1] == b"/":
            path, _, query = url.partition(b"?")
        else:  # absolute form (http://host/path); anything else matches no route
            try:
                parsed = httptools.parse_url(url)
                path, query = parsed.path or b"", parsed.query or b""
            except httptools.HttpParserInvalidURLError:
                path, query = url, b""
        ex.path, ex.query = path, query
        route = server.routes.get(path)
        if route is None:
            if path == _HEALTHZ:
                ex.label, ex.answer = HEALTHZ, errors.HEALTHY
            elif path == _READYZ:
                ex.label = READYZ
            elif path.startswith(_KEYED) and not server.authorized(ex.auth):
                # Unknown /v1/ and /api/ paths ask for the key first: an anonymous caller learns nothing.
                ex.answer = errors.UNAUTHORIZED
            else:
                ex.answer = errors.NOT_FOUND
            return
        ex.route = route
        ex.label = route.path
        if not server.authorized(ex.auth):
            ex.answer = errors.UNAUTHORIZED
        elif method != route.method_bytes:
            ex.answer = server.not_allowed[route.path]
        elif route.json_body:
            if ex.length is not None and ex.length > server.max_body:
                ex.answer, ex.close = server.too_large, True  # refused before reading any of it
            else:
                ex.needs_body = True

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        if ex is None or not ex.needs_body:
            return  # not wanted: read and dropped
        ex.size += len(body)
        if ex.size > self._server.max_body:
            ex.needs_body = False
            ex.body = []
            ex.answer, ex.close = self._server.too_large, True
            return
        ex.body.append(body)

    def on_message_complete(self) -> None:
        ex = self.parsing
        if ex is None:
            return
        self.parsing = None
        ex.received = True
        if not ex.early:
            self._queue.append(ex)
            if len(self._queue) > MAX_QUEUED and not self._reading_paused and self.transport is not None:
                self._reading_paused = True
                self.transport.pause_reading()

    # --- answering, one request at a time ----------------------------------------------------------

    def _pump(self) -> None:
        """Answer what can be answered now, in order."""
        while not self._closed and self._phase != _CLOSING:
            ex = self.active
            if ex is not None:
                if not (ex.answered and ex.received):
                    return
                self._finish(ex)
                continue
            if self._queue:
                self._start(self._queue.popleft())
                continue
            ex = self.parsing
            if ex is not None and ex.head_done:
                if ex.answer is not None and not ex.early:
                    # Refused on its head: answered now, its body read and dropped (or not at all).
                    self._answer_early(ex, ex.answer)
                    continue
                if ex.expect and ex.needs_body and not ex.continued and not ex.http10 and self.transport:
                    # curl and others hold the body back until told to go on.
                    ex.continued = True
                    self.transport.write(_CONTINUE)
            return

    def _answer_early(self, ex: _Exchange, answer: Answer) -> None:
        ex.early = True
        ex.needs_body = False
        ex.body = []
        self.active = ex
        self._send(ex, answer)
        if ex.close:
            self._linger_close()
        else:
            self._arm(_LINGER, LINGERING_SECONDS)  # the rest of the body is read and dropped

    def _finish(self, ex: _Exchange) -> None:
        """``ex`` is answered and read: go on with the next request, or close."""
        self.active = None
        server = self._server
        if ex.close:  # the gateway's decision: the client may still be sending
            self._linger_close()
            return
        if not ex.keep_alive or self._eof or server.shutting_down:
            self.close_now()
            return
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        parsing = self.parsing
        if parsing is None:
            if not self._queue:
                self.waiting_since = time.monotonic()
                self._arm(_IDLE, server.idle_timeout)
        elif not parsing.head_done:
            self._arm(_HEAD, server.header_timeout)
        else:
            self._arm(_BODY, server.body_timeout)

    def _start(self, ex: _Exchange) -> None:
        self.active = ex
        self._phase = _BUSY
        try:
            if ex.answer is not None:
                self._send(ex, ex.answer)
            elif ex.route is not None:
                self._forward(ex, ex.route)
            else:  # /readyz: the one local answer that waits (for the runtime's readiness)
                self.readyz_task = self._server.loop.create_task(self._readyz(ex))
        except Exception:
            # A bug in the gateway: the traceback is needed to fix it (nothing here holds the raw
            # request; the key and the body are not in any exception it raises).
            log.exception("unhandled error while answering a request")
            self._fail_internal(ex)

    def _fail_internal(self, ex: _Exchange) -> None:
        ex.close = True
        if ex.head_out or ex.streamed:
            ex.status = 500
            self._record(ex)
            self.close_now()
        else:
            self._send(ex, errors.INTERNAL)

    def _send(self, ex: _Exchange, answer: Answer) -> None:
        """Write a fixed answer and record the request."""
        ex.status = answer.status
        transport = self.transport
        if transport is not None and not self._closed:
            if ex.close or not ex.keep_alive or self._server.shutting_down:
                ex.close = True
                framing = _CLOSE + b"\r\n"
            else:
                framing = _KEEP_ALIVE + b"\r\n" if ex.http10 else b"\r\n"
            body = b"" if ex.method == b"HEAD" else answer.body
            transport.write(answer.head + framing + body)
        self._answered(ex)

    def _answered(self, ex: _Exchange) -> None:
        ex.answered = True
        self._record(ex)

    def _record(self, ex: _Exchange) -> None:
        if ex.recorded:
            return
        ex.recorded = True
        server = self._server
        duration = time.perf_counter() - ex.start
        server.metrics.observe_request(ex.label, ex.status, duration, ex.ttft, ex.tokens)
        if ex.forwarded:
            server.metrics.request_ended()
        access = server.access
        if access.enabled():
            # Fixed fields only: never the prompt, the answer, the key or the raw path. Every string
            # is JSON-encoded once at start-up (the model) or from a fixed set (route, error) or an
            # HTTP token that llhttp checked (method).
            method = _METHODS.get(ex.method) or ex.method.decode("ascii", "replace")
            ttft = "null" if ex.ttft is None else f"{ex.ttft:.6f}"
            tokens = "null" if ex.tokens is None else str(ex.tokens)
            error = "null" if ex.error is None else f'"{ex.error}"'
            stream = "true" if ex.streamed else "false"
            access.write(
                f'{{"msg": "request", "model": {server.model_json}, "method": "{method}", '
                f'"route": "{ex.label}", "status": {ex.status}, "duration_s": {duration:.6f}, '
                f'"ttft_s": {ttft}, "output_tokens": {tokens}, "stream": {stream}, "error": {error}}}'
            )

    def _malformed(self, answer: Answer, error: str | None) -> None:
        """A request the parser refused: a fixed answer (never its bytes), then close."""
        self._stopped = True
        self.parsing = None
        if error is not None:
            # The parser's message quotes the offending bytes, which may hold a key or a prompt:
            # only the error's class is logged.
            log.info("refused a malformed request (%s): %d", error, answer.status)
            self._server.metrics.malformed_request(answer.status)
        ex = _Exchange(time.perf_counter())
        # A parser refusal is counted above (no request to record); a bug (500) is recorded.
        ex.answer, ex.close, ex.received, ex.recorded = answer, True, True, error is not None
        self._queue.append(ex)
        self._pump()

    def _linger_close(self) -> None:
        """Close after the answer: stop sending, read and drop what still arrives, for a while."""
        transport = self.transport
        if transport is None or self._closed:
            return
        self._arm(_CLOSING, LINGERING_SECONDS)
        self._stopped = True
        if transport.can_write_eof():
            transport.write_eof()
        else:
            self.close_now()

    async def _readyz(self, ex: _Exchange) -> None:
        server = self._server
        try:
            state = await server.readiness.check()
            ready, reason = state.ready, state.reason
            if server.keys is not None and server.keys.count() == 0:
                # Never the file's path: /readyz answers anyone.
                ready, reason = False, f"no API key loaded: {server.keys.problem or 'no key in the file'}"
            answer = errors.answer(
                200 if ready else 503, json.dumps({"ready": ready, "reason": reason}).encode()
            )
        finally:
            self.readyz_task = None
        if self.active is ex and not self._closed:
            self._send(ex, answer)
            self._pump()

    # --- forwarding to the runtime -----------------------------------------------------------------

    def _forward(self, ex: _Exchange, route: Route) -> None:
        server = self._server
        body: bytes | None = None
        if route.json_body:
            parts = ex.body
            body = parts[0] if len(parts) == 1 else b"".join(parts)
            ex.body = []
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:  # not JSON, not UTF-8, or nested too deep to decode
                document = None
            if type(document) is not dict:
                self._send(ex, errors.INVALID_JSON)
                return
            allowed = server.allowed
            if allowed is not None and not allowed.accepts(document):
                self._send(ex, allowed.refusal(document))
                return
        # The path is the route's own (never the client's raw path); the query is kept as sent.
        target = route.path_bytes + b"?" + ex.query if ex.query else route.path_bytes
        hop = ex.hop
        if hop:
            headers = b"".join([line for name, line in ex.headers if name not in hop])
        else:
            headers = b"".join([line for _, line in ex.headers])
        pool = server.upstream
        head = pool.request_line(route.method_bytes, target) + headers + self._forwarded_for
        payload = head + b"\r\n" if body is None else head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        ex.forwarded = True
        server.metrics.request_started()
        pool.send(payload, self, idempotent=route.method_bytes in IDEMPOTENT)
        if self._write_paused and self.upstream_conn is not None:
            self.upstream_conn.pause()

    # --- UpstreamSink: the runtime's answer ----------------------------------------------------------

    def upstream_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], length: int | None
    ) -> None:
        ex = self.active
        if ex is None:
            return
        ex.status = status
        lines: list[tuple[bytes, bytes]] = []
        hop: list[bytes] | None = None
        sse = False
        for name, value in headers:
            lname = name.lower()
            if lname in _DROP_DOWN:
                if lname == b"connection":
                    hop = [token.strip().lower() for token in value.split(b",")]
                continue
            if lname == b"content-type":
                sse = value.partition(b";")[0].strip().lower() == _SSE
            lines.append((lname, name + b": " + value + b"\r\n"))
        head = errors.status_line(status, reason) + b"".join(
            [line for name, line in lines if hop is None or name not in hop]
        )
        if ex.close or not ex.keep_alive or self._server.shutting_down:
            ex.close = True
            connection = _CLOSE
        else:
            connection = _KEEP_ALIVE if ex.http10 else b""
        generates = ex.route is not None and ex.route.generates and status < 300
        if length is not None and length <= MAX_BUFFERED_BYTES and not sse:
            ex.buffered = True
            ex.head_out = head + connection
            return
        # Relayed piece by piece: SSE events, Ollama's NDJSON stream, or a large answer.
        if length is not None:
            framing = b"Content-Length: %d\r\n" % length
        elif ex.http10:  # no chunked encoding in HTTP/1.0: the end of the body is the close
            framing = b""
            if not ex.close:
                ex.close = True
                connection = _CLOSE
        else:
            framing = _CHUNKED
            ex.out_chunked = True
        ex.streamed = True
        if generates:
            ex.observer = StreamObserver() if sse else UsageScanner()
        # X-Accel-Buffering: a buffering reverse proxy in front (ingress-nginx) passes events on at once.
        ex.head_out = head = head + framing + _NO_BUFFERING + connection + b"\r\n"
        if self.transport is not None:
            self.transport.write(head)

    def upstream_body(self, data: bytes) -> None:
        ex = self.active
        if ex is None:
            return
        if ex.buffered:
            ex.parts.append(data)
            return
        if ex.out_chunked:
            ex.parts.append(b"%x\r\n" % len(data))
            ex.parts.append(data)
            ex.parts.append(b"\r\n")
        else:
            ex.parts.append(data)
        if ex.observer is not None:
            ex.seen.append(data)

    def upstream_flush(self) -> None:
        ex = self.active
        if ex is None or ex.buffered or not ex.parts:
            return
        parts = ex.parts
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        if self.transport is not None and not self._closed:
            self.transport.write(data)
        observer = ex.observer
        if observer is not None:  # token counting looks at a piece only after it was written
            seen = ex.seen
            piece = seen[0] if len(seen) == 1 else b"".join(seen)
            seen.clear()
            if observer.feed(piece) and ex.ttft is None:
                ex.ttft = time.perf_counter() - ex.start

    def upstream_end(self) -> None:
        ex = self.active
        self.upstream_conn = None
        if ex is None:
            return
        transport = self.transport
        if ex.buffered:
            parts = ex.parts
            payload = parts[0] if len(parts) == 1 else b"".join(parts)
            parts.clear()
            if transport is not None and not self._closed:
                transport.write(
                    ex.head_out + b"Content-Length: %d\r\n\r\n" % len(payload) + payload
                    if ex.method != b"HEAD"
                    else ex.head_out + b"Content-Length: %d\r\n\r\n" % len(payload)
                )
            route = ex.route
            if route is not None and route.generates and ex.status < 300:
                ex.ttft = time.perf_counter() - ex.start
                ex.tokens = usage_tokens(payload)
        else:
            if ex.out_chunked and transport is not None and not self._closed:
                transport.write(_LAST_CHUNK)
            if ex.observer is not None:
                ex.tokens = ex.observer.output_tokens
        self._answered(ex)
        self._pump()

    def upstream_failed(self, kind: str) -> None:
        ex = self.active
        self.upstream_conn = None
        self.upstream_task = None
        if ex is None or self._closed:
            return
        metrics = self._server.metrics
        if ex.streamed:
            # The answer had started: closing the connection (rather than ending the body cleanly)
            # lets the client see that it is incomplete.
            reason = "stream_stalled" if kind == TIMEOUT else "stream_broken"
            ex.error = reason
            metrics.upstream_error(reason)
            ex.close = True
            if ex.observer is not None:
                ex.tokens = ex.observer.output_tokens
            self._answered(ex)
            self.close_now()
            return
        ex.error = kind
        metrics.upstream_error(kind)
        ex.buffered = False
        ex.parts = []
        if kind == TIMEOUT:
            answer = errors.UPSTREAM_TIMEOUT
        elif kind == "connect":
            answer = errors.UPSTREAM_UNREACHABLE
        else:
            answer = errors.UPSTREAM_CLOSED
        self._send(ex, answer)
        self._pump()
