"""A small HTTP/1.1 client for the one hop to the runtime on localhost, driven by callbacks.

The gateway forwards every request to one fixed origin on the loopback interface. The request is
written in one piece on a kept-alive connection, and the answer is parsed by llhttp (through
``httptools``) and handed to a :class:`UpstreamSink` as it arrives: the head, each piece of the
body (chunked framing already removed), the end of each read, the end of the answer or a
failure. No task and no future per request: when a pooled connection is free the whole exchange
runs in the connection's ``data_received``. Only opening a new connection takes a task.

Flow control is the sink's: it calls :meth:`UpstreamConnection.pause` when its client cannot
take more, and :meth:`UpstreamConnection.resume` when it can, so at most one read of the
runtime's answer is held in the gateway at a time.

Request headers come from the gateway's llhttp parser, which rejects CR and LF in names and
values, so they cannot split the request written here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol, cast
from urllib.parse import urlsplit

import httptools

log = logging.getLogger(__name__)

# Drop idle connections sooner than the runtimes do (uvicorn, which serves vLLM, closes idle
# keep-alive connections after 5 s), so a reused connection is almost never already closed.
IDLE_SECONDS = 2.0
# The most response-head bytes accepted.
HEADER_LIMIT = 64 * 1024
# Methods that may be sent again after a kept-alive connection broke (RFC 9110 §9.2.2). A POST
# is not: the runtime may have read it before the connection went, and would generate twice.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS"})
# Why an exchange failed: ``connect`` (nothing listens), ``timeout`` (silence longer than the
# limit) or ``disconnected`` (the connection closed or the bytes made no sense).
CONNECT, TIMEOUT, DISCONNECTED = "connect", "timeout", "disconnected"


class UpstreamSink(Protocol):
    """Receives one answer from the runtime (the gateway's client connection implements it)."""

    upstream_conn: UpstreamConnection | None
    upstream_task: asyncio.Task[None] | None

    def upstream_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], length: int | None
    ) -> None:
        """The answer's head: ``length`` is its Content-Length, None for chunked or until-close."""

    def upstream_body(self, data: bytes) -> None:
        """A piece of the body (framing removed)."""

    def upstream_flush(self) -> None:
        """The end of one read from the runtime: write out what the pieces since the last made."""

    def upstream_end(self) -> None:
        """The answer is complete."""

    def upstream_failed(self, kind: str) -> None:
        """The runtime could not be reached, went silent or broke off (``kind``: see above)."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to the runtime, with llhttp's response parser.

    The silence limit is one timer per connection, re-armed lazily: receiving bytes only moves a
    deadline (a float), and the timer, when it fires early, sets itself for the new deadline.
    While the sink has paused reading (its client is slow) the runtime's silence does not count.
    """

    __slots__ = (
        "_body_until_close",
        "_deadline",
        "_ended",
        "_got_bytes",
        "_head_bytes",
        "_headers",
        "_interim",
        "_loop",
        "_parser",
        "_paused",
        "_payload",
        "_pool",
        "_reason",
        "_reused",
        "_sink",
        "_stray",
        "_timer",
        "idempotent",
        "idle_since",
        "transport",
    )

    def __init__(self, pool: UpstreamPool, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._sink: UpstreamSink | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._paused = False
        self._got_bytes = False
        self._reused = False
        self._stray = False
        self._ended: UpstreamSink | None = None
        self._interim = False
        self._body_until_close = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._head_bytes = 0
        self._payload = b""
        self.idempotent = False
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0

    # --- sending ---------------------------------------------------------------------------------

    def send(self, payload: bytes, sink: UpstreamSink, *, idempotent: bool, reused: bool) -> None:
        """Write one request; the answer goes to ``sink``."""
        self._sink = sink
        sink.upstream_conn = self
        self._payload = payload
        self.idempotent = idempotent
        self._reused = reused
        self._got_bytes = False
        self._body_until_close = False
        self._deadline = self._loop.time() + self._pool.timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._check_silence)
        transport = self.transport
        if transport is None or transport.is_closing():
            self._fail(DISCONNECTED)
            return
        transport.write(payload)

    def pause(self) -> None:
        """Stop reading the answer (the sink's client cannot take more now)."""
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        """Read on."""
        if self._paused:
            self._paused = False
            self._deadline = self._loop.time() + self._pool.timeout
            if self.transport is not None:
                self.transport.resume_reading()

    def abort(self) -> None:
        """Give up on the answer (the client went away): the runtime sees the connection close."""
        self._sink = None
        self.close()

    # --- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        sink = self._sink
        if sink is None:  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        self._got_bytes = True
        self._deadline = self._loop.time() + self._pool.timeout
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            log.error("error while relaying the runtime's answer", exc_info=exc.__context__)
            self._fail(DISCONNECTED)
            return
        except httptools.HttpParserError:
            self._fail(DISCONNECTED)
            return
        ended = self._ended
        if ended is not None:  # the answer is complete; the connection is back in the pool
            self._ended = None
            ended.upstream_flush()
            ended.upstream_end()
            return
        if self._stray:
            self.close()
        if self._sink is not None:
            sink.upstream_flush()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost settles the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sink = self._sink
        if sink is None:
            return
        if self._body_until_close:  # a body delimited by the connection's end is complete now
            self._sink = None
            sink.upstream_flush()
            sink.upstream_end()
            return
        self._fail(DISCONNECTED)

    # --- llhttp callbacks ----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._sink is None:
            self._stray = True
        self._headers = []
        self._reason = b""
        self._head_bytes = 0

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > HEADER_LIMIT:
            raise httptools.HttpParserError("the runtime's answer has an overlong head")
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        sink = self._sink
        status = self._parser.get_status_code()
        if status < 200:  # 1xx interim answers are skipped (the gateway never sends Expect)
            self._interim = True
            return
        if sink is None:
            return
        length: int | None = None
        chunked = False
        for name, value in self._headers:
            lname = name.lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding":
                chunked = True
        if chunked:
            length = None
        elif length is None and status not in (204, 304):
            self._body_until_close = True
        elif length is None:
            length = 0
        sink.upstream_head(status, self._reason, self._headers, length)

    def on_body(self, body: bytes) -> None:
        sink = self._sink
        if sink is not None and not self._interim:
            sink.upstream_body(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        sink = self._sink
        if sink is None:
            return
        self._sink = None
        self._payload = b""
        if self._parser.should_keep_alive() and self.transport is not None and not self._stray:
            self._pool.release(self)
        else:
            self.close()
        self._ended = sink  # told once feed_data has returned

    # --- timing and failure ------------------------------------------------------------------------

    def _check_silence(self) -> None:
        self._timer = None
        if self._sink is None:
            return  # nobody waits: the timer lapses until the next request
        now = self._loop.time()
        if self._paused:  # the client is slow, not the runtime
            self._deadline = now + self._pool.timeout
        elif now >= self._deadline:
            self._fail(TIMEOUT)
            return
        self._timer = self._loop.call_at(self._deadline, self._check_silence)

    def _fail(self, kind: str) -> None:
        sink = self._sink
        self._sink = None
        self.close()
        if sink is None:
            return
        sink.upstream_conn = None
        if kind == DISCONNECTED and self._reused and not self._got_bytes and self.idempotent:
            # A kept-alive connection that broke before any answer. Whether the runtime had read
            # the request is unknowable, so only an idempotent request is sent again (a POST
            # would be generated twice).
            self._pool.send_fresh(self._payload, sink, idempotent=True)
            return
        sink.upstream_failed(kind)

    def usable(self, now: float) -> bool:
        transport = self.transport
        return (
            transport is not None
            and self._sink is None
            and not self._stray
            and not transport.is_closing()
            and now - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        """Close the connection at once (abort: nothing more is owed to the runtime on it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport = self.transport
        if transport is not None:
            self.transport = None
            transport.abort()


class UpstreamPool:
    """Keep-alive connections to one runtime; :meth:`send` writes one request for a sink."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the runtime client speaks plain http to a host, got {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self.prefix = parts.path.rstrip("/").encode()
        self.host_header = parts.netloc.encode()
        self.timeout = timeout
        self._idle: list[UpstreamConnection] = []
        self._connecting: set[asyncio.Task[None]] = set()

    def request_line(self, method: bytes, target: bytes) -> bytes:
        """The request line and Host header for ``target`` (path and query)."""
        return b"%s %s%s HTTP/1.1\r\nHost: %s\r\n" % (method, self.prefix, target, self.host_header)

    def send(self, payload: bytes, sink: UpstreamSink, *, idempotent: bool) -> None:
        """Send ``payload`` (a whole request) on a free connection, or on a new one."""
        idle = self._idle
        if idle:
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if conn.usable(now):
                    conn.send(payload, sink, idempotent=idempotent, reused=True)
                    return
                conn.close()
        self.send_fresh(payload, sink, idempotent=idempotent)

    def send_fresh(self, payload: bytes, sink: UpstreamSink, *, idempotent: bool) -> None:
        """Open a new connection (a task: connecting takes a round trip) and send on it."""
        task = asyncio.get_running_loop().create_task(self._connect_and_send(payload, sink, idempotent))
        sink.upstream_task = task
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_and_send(self, payload: bytes, sink: UpstreamSink, idempotent: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self, loop), self._host, self._port
                )
        except TimeoutError:
            sink.upstream_task = None
            sink.upstream_failed(TIMEOUT)
            return
        except OSError:
            sink.upstream_task = None
            sink.upstream_failed(CONNECT)
            return
        sink.upstream_task = None
        conn.send(payload, sink, idempotent=idempotent, reused=False)

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection whose answer was read to the end."""
        now = time.monotonic()
        conn.idle_since = now
        self._idle.append(conn)
        # Connections are taken from the end; after a burst the oldest ones at the start would
        # otherwise linger half-closed. Retiring one expired connection per release keeps it O(1).
        if not self._idle[0].usable(now):
            self._idle.pop(0).close()

    def close(self) -> None:
        """Close every idle connection and stop connecting (answers in progress close theirs)."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        for task in list(self._connecting):
            task.cancel()
