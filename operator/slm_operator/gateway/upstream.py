"""A small HTTP/1.1 client for the one hop to the runtime on localhost.

The gateway forwards every request to one fixed origin on the loopback interface. aiohttp's
general-purpose client spent more CPU per request than the rest of the gateway together
(cookie jar, URL joining, redirects, tracing hooks, per-request timer objects; measured in
docs/benchmarks.md), so the hot path uses this client instead: keep-alive connections as
plain asyncio protocols, one write per request, and just the response framing the runtimes use
(Content-Length, chunked, or until close). Readiness checks and ``/metrics/runtime`` keep using
aiohttp.

Request headers come from aiohttp's server parser, which rejects CR and LF in names and values,
so they cannot split the request written here.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast
from urllib.parse import urlsplit

from multidict import CIMultiDict

# Drop idle connections sooner than the runtimes do (uvicorn, which serves vLLM, closes idle
# keep-alive connections after 5 s), so a reused connection is almost never already closed.
IDLE_SECONDS = 2.0
# The most response-header bytes accepted.
HEADER_LIMIT = 64 * 1024
# The largest piece of a body handed out at once (a runtime's chunk may be larger).
PIECE_BYTES = 64 * 1024
# Flow control: reading from the runtime pauses while this much is received and not yet handed
# out (the client reads slower than the runtime writes), and resumes below the low mark.
HIGH_WATER = 4 * PIECE_BYTES
LOW_WATER = PIECE_BYTES
# Methods that may be sent again after a kept-alive connection broke (RFC 9110 §9.2.2). A POST
# is not: the runtime may have read it before the connection went, and would generate twice.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


class UpstreamError(Exception):
    """The runtime could not be reached, did not answer in time, or broke off.

    ``kind`` is ``connect`` (nothing listens), ``timeout`` (silence longer than the limit) or
    ``disconnected`` (the connection closed or the bytes made no sense).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a receive buffer, one waiter, and the silence limit.

    The silence limit is one timer per connection, re-armed lazily: receiving bytes only moves a
    deadline (a float), and the timer, when it fires early, sets itself for the new deadline.
    That costs far less per read than a timeout context per read.
    """

    __slots__ = (
        "_buffer",
        "_deadline",
        "_eof",
        "_loop",
        "_paused",
        "_timeout",
        "_timer",
        "_waiter",
        "idle_since",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._buffer = bytearray()
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._paused = False
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._deadline = self._loop.time() + self._timeout
        if len(self._buffer) > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake(None)

    def eof_received(self) -> bool:
        self._eof = True
        self._wake(None)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self.transport = None
        self._wake(None)

    # --- reading -------------------------------------------------------------------------------

    def _wake(self, exc: BaseException | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def _check_silence(self) -> None:
        self._timer = None
        if self._waiter is None or self._waiter.done():
            return  # nobody waits: the timer lapses until the next wait
        now = self._loop.time()
        if now >= self._deadline:
            self._wake(UpstreamError("timeout", f"no answer from the runtime within {self._timeout:g} s"))
        else:
            self._timer = self._loop.call_at(self._deadline, self._check_silence)

    async def _more(self) -> None:
        """Wait for more bytes (or the end), failing after the silence limit."""
        if self._eof:
            raise UpstreamError("disconnected", "the runtime closed the connection")
        self._resume()  # more is wanted than is buffered: always read on
        self._waiter = self._loop.create_future()
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._check_silence)
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        if self._paused and len(self._buffer) <= LOW_WATER:
            self._resume()
        return data

    def _resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def buffered(self) -> int:
        """Bytes received from the runtime and not handed out yet."""
        return len(self._buffer)

    def start_silence(self) -> None:
        """Start the silence limit from now (a request was just sent)."""
        self._deadline = self._loop.time() + self._timeout

    async def readuntil(self, separator: bytes, limit: int) -> bytes:
        """Bytes up to and including ``separator``."""
        start = 0
        while True:
            index = self._buffer.find(separator, start)
            if index >= 0:
                return self._take(index + len(separator))
            if len(self._buffer) > limit:
                raise UpstreamError("disconnected", "the runtime's answer has an overlong line")
            start = max(0, len(self._buffer) - len(separator) + 1)
            await self._more()

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes."""
        while len(self._buffer) < n:
            await self._more()
        return self._take(n)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes as soon as there are any; ``b""`` at the end."""
        while not self._buffer:
            if self._eof:
                return b""
            await self._more()
        return self._take(n)

    # --- pool bookkeeping ----------------------------------------------------------------------

    def usable(self, now: float) -> bool:
        transport = self.transport
        return (
            transport is not None
            and not self._eof
            and not self._buffer  # bytes nobody asked for: the connection is out of step
            and not transport.is_closing()
            and now - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        # abort, not close: nothing more is owed to the runtime on this connection, and the
        # runtime sees the connection go at once (that is how it learns to stop generating).
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._eof = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamResponse:
    """A response whose head has been read; read the body with ``read`` or ``next_chunk``."""

    __slots__ = (
        "_chunk_left",
        "_chunked",
        "_conn",
        "_done",
        "_pool",
        "_remaining",
        "content_type",
        "headers",
        "length",
        "status",
    )

    def __init__(self, pool: UpstreamPool, conn: _Connection, status: int, headers: CIMultiDict[str]) -> None:
        self._pool = pool
        self._conn = conn
        self.status = status
        self.headers = headers
        self.content_type = headers.get("Content-Type", "").partition(";")[0].strip().lower()
        self._chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self._chunk_left = 0  # bytes of the current chunk not yet handed out (chunked bodies)
        length = headers.get("Content-Length")
        if self._chunked:
            self._remaining = -1
        elif length is not None and length.strip().isdigit():
            self._remaining = int(length)
        elif status in (204, 304):
            self._remaining = 0
        else:
            self._remaining = -2  # until the runtime closes the connection
        # The body's size when known in advance (Content-Length, or none at all), else None.
        self.length: int | None = self._remaining if self._remaining >= 0 else None
        self._done = False
        if self._remaining == 0:
            self._finish()

    async def read(self) -> bytes:
        """The whole body (for answers that are not streamed)."""
        if self._remaining > 0:
            body = await self._conn.readexactly(self._remaining)
            self._remaining = 0
            self._finish()
            return body
        parts = []
        while chunk := await self.next_chunk():
            parts.append(chunk)
        return b"".join(parts)

    async def next_chunk(self) -> bytes:
        """The next piece of the body as it arrives; ``b""`` at the end."""
        if self._done:
            return b""
        conn = self._conn
        if self._chunked:
            if self._chunk_left == 0:
                size_line = await conn.readuntil(b"\r\n", HEADER_LIMIT)
                try:
                    size = int(size_line.split(b";", 1)[0], 16)
                except ValueError as exc:
                    raise UpstreamError("disconnected", "bad chunk size from the runtime") from exc
                if size == 0:
                    while (await conn.readuntil(b"\r\n", HEADER_LIMIT)) != b"\r\n":  # trailer fields, ignored
                        pass
                    self._finish()
                    return b""
                if size <= PIECE_BYTES:  # the usual case: the whole chunk and its CRLF at once
                    data = await conn.readexactly(size + 2)
                    return data[:-2]
                self._chunk_left = size
            # A chunk larger than PIECE_BYTES is handed out in pieces, so memory stays bounded.
            take = min(self._chunk_left, PIECE_BYTES)
            data = await conn.readexactly(take)
            self._chunk_left -= take
            if self._chunk_left == 0 and await conn.readexactly(2) != b"\r\n":
                raise UpstreamError("disconnected", "bad chunk framing from the runtime")
            return data
        if self._remaining == -2:
            data = await conn.read(PIECE_BYTES)
            if not data:
                self._done = True
                self._conn.close()  # a body delimited by close leaves nothing to reuse
            return data
        data = await conn.read(min(self._remaining, PIECE_BYTES))
        if not data:
            raise UpstreamError("disconnected", "the runtime closed the connection mid-answer")
        self._remaining -= len(data)
        if self._remaining == 0:
            self._finish()
        return data

    def _finish(self) -> None:
        self._done = True
        if self.headers.get("Connection", "").lower() == "close":
            self._conn.close()
        else:
            self._pool.release(self._conn)

    def buffered(self) -> int:
        """Bytes of the answer received from the runtime and not read yet (flow control bounds it)."""
        return self._conn.buffered()

    def close(self) -> None:
        """Give up on the rest of the body: the connection is closed, not reused."""
        if not self._done:
            self._done = True
            self._conn.close()


class UpstreamPool:
    """Keep-alive connections to one runtime; ``request`` sends one request and reads its head."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the runtime client speaks plain http to a host, got {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc
        self._timeout = timeout
        self._idle: list[_Connection] = []

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]] | CIMultiDict[str],
        body: bytes | None,
    ) -> UpstreamResponse:
        """Send a request for ``target`` (path and query) and return once the response head arrived."""
        lines = [f"{method} {self._prefix}{target} HTTP/1.1\r\nHost: {self._host_header}\r\n"]
        pairs = headers.items() if isinstance(headers, CIMultiDict) else headers
        lines.extend(f"{name}: {value}\r\n" for name, value in pairs)
        lines.append(f"Content-Length: {len(body)}\r\n\r\n" if body is not None else "\r\n")
        head = "".join(lines).encode("utf-8", "surrogateescape")
        payload = head + body if body else head
        conn, reused = await self._acquire()
        try:
            return await self._exchange(conn, payload)
        except UpstreamError as exc:
            # A kept-alive connection that broke before any answer. Whether the runtime had read
            # the request is unknowable, so only an idempotent request is sent again (a POST
            # would be generated twice); ``_acquire`` already skipped connections known closed.
            if not (reused and exc.kind == "disconnected" and method in IDEMPOTENT):
                raise
        conn = await self._connect()
        return await self._exchange(conn, payload)

    async def _exchange(self, conn: _Connection, payload: bytes) -> UpstreamResponse:
        try:
            transport = conn.transport
            if transport is None:
                raise UpstreamError("disconnected", "the runtime closed the connection")
            conn.start_silence()
            transport.write(payload)
            while True:
                head = await conn.readuntil(b"\r\n\r\n", HEADER_LIMIT)
                status, headers = _parse_head(head)
                if status >= 200:
                    return UpstreamResponse(self, conn, status, headers)
                # 1xx interim answers are skipped (the gateway never sends Expect: 100-continue).
        except BaseException:
            conn.close()
            raise

    async def _acquire(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now):
                return conn, True
            conn.close()
        return await self._connect(), False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, self._timeout), self._host, self._port
                )
        except TimeoutError as exc:
            raise UpstreamError("timeout", f"no answer from the runtime within {self._timeout:g} s") from exc
        except OSError as exc:
            raise UpstreamError("connect", f"cannot connect to the runtime ({exc.strerror or exc})") from exc
        return conn

    def release(self, conn: _Connection) -> None:
        """Return a connection whose response was read to the end."""
        now = time.monotonic()
        conn.idle_since = now
        self._idle.append(conn)
        # Connections are taken from the end; after a burst the oldest ones at the start would
        # otherwise linger half-closed. Retiring one expired connection per release keeps it O(1).
        if not self._idle[0].usable(now):
            self._idle.pop(0).close()

    def close(self) -> None:
        """Close every idle connection (responses in progress close theirs)."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _parse_head(head: bytes) -> tuple[int, CIMultiDict[str]]:
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0]
    if not status_line.startswith("HTTP/1.") or len(status_line) < 12 or not status_line[9:12].isdigit():
        raise UpstreamError("disconnected", "the runtime's answer is not HTTP/1.x")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise UpstreamError("disconnected", "malformed header from the runtime")
        headers.add(name.strip(), value.strip())
    return int(status_line[9:12]), headers
