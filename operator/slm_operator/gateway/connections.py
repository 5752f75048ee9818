"""The API port's connections: time limits, a cap on their number, and quiet parse errors.

aiohttp's server keeps a connection open for about an hour while it waits for a request
(``keepalive_timeout``'s default) and has no limit on reading a request head or on the number of
connections. A client that opens many connections and sends a header byte now and then would
hold them all until the pod runs out of file descriptors. This module adds:

- an **idle timeout**: a connection with no request in progress is closed after ``idle_timeout``
  seconds (aiohttp's own keep-alive timer, which also covers a request head that is still
  incomplete);
- a **header timeout**: from the first byte of a request, its head (request line and headers)
  must be complete within ``header_timeout`` seconds;
- a **connection cap**: when ``max_connections`` are open, a new connection pushes out the one
  that has waited longest without a request in progress (idle, or still sending its head). A
  connection whose request is being answered is never pushed out; when all of them are busy, the
  new connection is closed at once. Clients that send a whole request get served while idle or
  slow connections fill the cap.

The body-read timeout is the request handler's (it reads the body), see ``proxy.py``.

aiohttp answers a request its parser rejects with 400 and logs the exception, whose text quotes
the raw bytes, at ERROR: an ``Authorization`` header, or a whole request with its prompt. Here
that answer is a fixed JSON error, the log line names only the exception's class, and the
rejection is counted in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from slm_operator.gateway import errors

log = logging.getLogger(__name__)

# After an answer sent before the request body was read (401, 408, 413), aiohttp reads and drops
# what the client still sends for this long, so that the client sees the answer rather than a
# reset, then closes the connection (its default is 10 s).
LINGERING_SECONDS = 2.0
# Why a connection was closed by the gateway (a fixed set, for the metric label).
DROP_REASONS = ("header_timeout", "body_timeout", "pushed_out", "refused")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The time limits and the cap (see the module docstring)."""

    header_timeout: float
    idle_timeout: float
    max_connections: int


@dataclass(frozen=True, slots=True)
class ConnectionEvents:
    """Callbacks for the metrics: a parser-level rejection (status), a dropped connection (reason)."""

    rejected: Callable[[int], None]
    dropped: Callable[[str], None]


class GuardedConnection(RequestHandler):
    """aiohttp's connection handler with the header timeout and quiet parse errors."""

    __slots__ = ("_guard", "_head_timer", "waiting_since")

    def __init__(self, guard: GuardedServer, **kwargs: Any) -> None:
        super().__init__(guard, **kwargs)
        self._guard = guard
        self._head_timer: asyncio.TimerHandle | None = None
        # When the connection last started waiting for a request head (for the cap's choice).
        self.waiting_since = time.monotonic()

    def waiting(self) -> bool:
        """True when no request is in progress or queued: the connection waits for a request head.

        That includes a connection so new that aiohttp's request loop has not started yet (its
        first bytes can arrive in the same loop iteration as the connection).
        """
        if self._request_in_progress or self._messages:
            return False
        waiter = self._waiter
        return waiter is None or not waiter.done()

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        waiting = self.waiting()
        super().data_received(data)
        if self._request_count != count:  # a request head is complete
            self._disarm()
        elif waiting and self._head_timer is None and self.transport is not None:
            # The first bytes of a new request head: its whole head must follow in time.
            self._head_timer = self._loop.call_later(self._guard.limits.header_timeout, self._head_expired)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.waiting() and self.transport is not None:
            self._guard.events.dropped("header_timeout")
            self.force_close()

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        self.waiting_since = time.monotonic()
        return result

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer a request aiohttp could not parse (or a handler bug) without echoing its bytes."""
        if status == 500:
            # A bug in the gateway: the traceback is needed to fix it (the handler never holds
            # the raw request bytes; the key and body are not in any exception it raises).
            log.error("unhandled error while answering a request", exc_info=exc)
            response = errors.error_response(
                500, "Internal error in the gateway.", kind="server_error", code="internal_error"
            )
        else:
            # The parser's message quotes the offending bytes, which may hold a key or a prompt:
            # only the exception's class is logged.
            log.info("refused a malformed request (%s): %d", type(exc).__name__, status)
            self._guard.events.rejected(status)
            response = errors.error_response(
                status, "Malformed HTTP request.", kind="invalid_request_error", code="bad_request"
            )
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had started; the connection is closed instead")
        response.force_close()
        return response


class GuardedServer(web.Server):
    """``web.Server`` that hands out :class:`GuardedConnection` and enforces the cap."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Any],
        *,
        limits: ConnectionLimits,
        events: ConnectionEvents,
        **kwargs: Any,
    ) -> None:
        # aiohttp's keep-alive timer is the idle timeout (it also closes a connection whose
        # request head is still incomplete when it fires).
        super().__init__(
            handler, keepalive_timeout=limits.idle_timeout, lingering_time=LINGERING_SECONDS, **kwargs
        )
        self.limits = limits
        self.events = events

    def __call__(self) -> GuardedConnection:
        return GuardedConnection(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if len(self._connections) >= self.limits.max_connections:
            victim = self._longest_waiting()
            if victim is None:
                # Every connection is busy with a request: this one waits for nothing.
                self.events.dropped("refused")
                super().connection_made(handler, transport)
                handler.force_close()
                return
            self.events.dropped("pushed_out")
            victim.force_close()
        super().connection_made(handler, transport)

    def _longest_waiting(self) -> GuardedConnection | None:
        oldest: GuardedConnection | None = None
        for conn in self._connections:
            if (
                isinstance(conn, GuardedConnection)
                and conn.waiting()
                and (oldest is None or conn.waiting_since < oldest.waiting_since)
            ):
                oldest = conn
        return oldest
