"""The runtime client on its own, against a raw TCP server that sends exactly the bytes a test wants.

The client hands the answer to a sink by callbacks; the tests use one that records them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from gateway_fakes import StartGateway, bearer

from slm_operator.gateway.upstream import IDEMPOTENT, UpstreamConnection, UpstreamPool

pytestmark = pytest.mark.timeout(10)


class RawServer:
    """Answers each request with the next canned reply; records requests and connections."""

    def __init__(self) -> None:
        self.replies: list[bytes | None] = []  # None: close the connection instead of answering
        self.requests: list[bytes] = []
        self.connections = 0
        self.close_after_reply = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after_reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    await raw.start()
    yield raw
    await raw.stop()


def pool_for(server: RawServer, timeout: float = 2.0) -> UpstreamPool:
    return UpstreamPool(f"http://127.0.0.1:{server.port}", timeout=timeout)


class Sink:
    """Records what the client hands over; ``hold`` pauses reading while that much is unread."""

    def __init__(self, hold: int = 0) -> None:
        self.upstream_conn: UpstreamConnection | None = None
        self.upstream_task: asyncio.Task[None] | None = None
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.length: int | None = None
        self.pieces: list[bytes] = []
        self.unread = 0
        self.most_unread = 0
        self.hold = hold
        self.failed: str | None = None
        self.done = asyncio.Event()

    def upstream_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], length: int | None
    ) -> None:
        self.status = status
        self.headers = {name.lower(): value for name, value in headers}
        self.length = length

    def upstream_body(self, data: bytes) -> None:
        self.pieces.append(data)
        self.unread += len(data)
        self.most_unread = max(self.most_unread, self.unread)
        if self.hold and self.unread >= self.hold and self.upstream_conn is not None:
            self.upstream_conn.pause()

    def upstream_flush(self) -> None:
        pass

    def upstream_end(self) -> None:
        self.done.set()

    def upstream_failed(self, kind: str) -> None:
        self.failed = kind
        self.done.set()

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)


async def exchange(
    pool: UpstreamPool, method: bytes, target: bytes, body: bytes | None = None, headers: bytes = b""
) -> Sink:
    """Send one request and wait for its whole answer (or its failure)."""
    sink = Sink()
    send(pool, sink, method, target, body, headers)
    async with asyncio.timeout(5):
        await sink.done.wait()
    return sink


def send(
    pool: UpstreamPool, sink: Sink, method: bytes, target: bytes, body: bytes | None, headers: bytes = b""
) -> None:
    head = pool.request_line(method, target) + headers
    payload = head + (b"Content-Length: %d\r\n\r\n" % len(body) + body if body is not None else b"\r\n")
    pool.send(payload, sink, idempotent=method in IDEMPOTENT)


JSON_REPLY = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'


async def test_request_bytes_and_keep_alive_reuse(server: RawServer) -> None:
    server.replies = [JSON_REPLY, JSON_REPLY]
    pool = pool_for(server)
    headers = b"Content-Type: application/json\r\nX-Request-Id: r1\r\n"
    for _ in range(2):
        answer = await exchange(pool, b"POST", b"/v1/completions?x=1", b'{"a":1}', headers)
        assert answer.status == 200
        assert answer.headers[b"content-type"] == b"application/json"
        assert answer.length == 12
        assert answer.body == b'{"ok": true}'
    assert server.connections == 1  # the second request reused the first connection
    assert server.requests[0] == (
        b"POST /v1/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Content-Type: application/json\r\nX-Request-Id: r1\r\nContent-Length: 7\r\n\r\n"
        b'{"a":1}' % server.port
    )
    pool.close()


async def test_get_has_no_body_and_no_length(server: RawServer) -> None:
    server.replies = [JSON_REPLY]
    pool = pool_for(server)
    await exchange(pool, b"GET", b"/v1/models")
    assert b"Content-Length" not in server.requests[0]
    pool.close()


async def test_chunked_body_arrives_chunk_by_chunk(server: RawServer) -> None:
    server.replies = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"6\r\ndata: \r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
    ]
    pool = pool_for(server)
    answer = await exchange(pool, b"POST", b"/v1/chat/completions", b"{}")
    assert answer.length is None  # chunked: no length known in advance
    assert answer.pieces == [b"data: ", b"abc"]  # framing, extensions and trailers removed
    assert b"transfer-encoding" in answer.headers
    pool.close()


async def test_a_body_delimited_by_close(server: RawServer) -> None:
    server.replies = [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"]
    server.close_after_reply = True
    pool = pool_for(server)
    answer = await exchange(pool, b"GET", b"/v1/models")
    assert answer.failed is None
    assert answer.body == b"all of it"
    pool.close()


async def test_interim_1xx_answers_are_skipped(server: RawServer) -> None:
    server.replies = [b"HTTP/1.1 100 Continue\r\n\r\n" + JSON_REPLY]
    pool = pool_for(server)
    answer = await exchange(pool, b"POST", b"/v1/completions", b"{}")
    assert answer.status == 200
    assert answer.body == b'{"ok": true}'
    pool.close()


async def test_a_closed_keep_alive_connection_is_retried_once(server: RawServer) -> None:
    # The runtime closes the kept-alive connection instead of answering the second request
    # (the race of an idle timeout); the request goes again on a fresh connection.
    server.replies = [JSON_REPLY, None, JSON_REPLY]
    pool = pool_for(server)
    await exchange(pool, b"GET", b"/v1/models")
    second = await exchange(pool, b"GET", b"/v1/models")
    assert second.status == 200
    assert server.connections == 2
    assert len(server.requests) == 3
    pool.close()


async def test_a_post_is_never_sent_twice(server: RawServer) -> None:
    # The runtime reads the second POST on the kept-alive connection, then closes it without an
    # answer: it may have started generating, so the POST must not go again.
    server.replies = [JSON_REPLY, None, JSON_REPLY]
    pool = pool_for(server)
    await exchange(pool, b"POST", b"/v1/chat/completions", b"{}")
    second = await exchange(pool, b"POST", b"/v1/chat/completions", b'{"n": 2}')
    assert second.failed == "disconnected"
    assert len(server.requests) == 2
    assert server.connections == 1
    pool.close()


async def test_through_the_gateway_a_post_reaches_the_runtime_once(
    server: RawServer, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    server.replies = [JSON_REPLY, None, JSON_REPLY]
    gateway = await start(f"http://127.0.0.1:{server.port}")
    statuses = []
    for n in range(2):
        async with client.post(
            gateway.api_url + "/v1/chat/completions", json={"n": n}, headers=bearer()
        ) as r:
            statuses.append(r.status)
    assert statuses == [200, 502]
    bodies = [request.rpartition(b"\r\n\r\n")[2] for request in server.requests]
    assert bodies == [b'{"n": 0}', b'{"n": 1}']


async def test_a_large_chunk_is_handed_on_as_it_arrives(server: RawServer) -> None:
    # A runtime's chunk can be any size; the client hands on each read's part of it at once
    # rather than collecting the whole chunk.
    size = 4 * 1024 * 1024
    server.replies = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{size:x}\r\n".encode()
        + b"x" * size
        + b"\r\n2\r\nyz\r\n0\r\n\r\n"
    ]
    pool = pool_for(server)
    answer = await exchange(pool, b"POST", b"/api/chat", b"{}")
    assert answer.length is None
    assert len(answer.pieces) > 2
    assert max(len(piece) for piece in answer.pieces) <= 256 * 1024  # one read at most
    assert answer.body == b"x" * size + b"yz"
    pool.close()


async def test_a_large_answer_read_slowly_stays_bounded_in_memory(server: RawServer) -> None:
    size = 16 * 1024 * 1024
    server.replies = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size
        + b" " * size
    ]
    pool = pool_for(server)
    sink = Sink(hold=256 * 1024)  # a client slower than the runtime: the sink pauses reading
    send(pool, sink, b"POST", b"/v1/embeddings", b"{}")
    async with asyncio.timeout(10):
        while not sink.done.is_set():
            await asyncio.sleep(0.001)
            sink.unread = 0  # the client took what was handed on
            if sink.upstream_conn is not None:
                sink.upstream_conn.resume()
    assert len(sink.body) == size
    # Reading from the runtime paused: never more than the hold and one read, not the 16 MiB.
    assert sink.most_unread <= 256 * 1024 + 256 * 1024, sink.most_unread
    pool.close()


async def test_a_fresh_connection_that_closes_is_an_error(server: RawServer) -> None:
    server.replies = [None]
    pool = pool_for(server)
    answer = await exchange(pool, b"GET", b"/v1/models")
    assert answer.failed == "disconnected"
    assert server.connections == 1  # not retried: nothing was reused


@pytest.mark.parametrize(
    "reply",
    [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"],
    ids=["not-http", "bad-header"],
)
async def test_garbage_is_an_error(reply: bytes, server: RawServer) -> None:
    server.replies = [reply]
    pool = pool_for(server)
    answer = await exchange(pool, b"GET", b"/v1/models")
    assert answer.failed == "disconnected"


async def test_silence_is_a_timeout(server: RawServer) -> None:
    server.replies = [b"HTTP/1.1 200 OK\r\n"]  # half a head, then nothing
    pool = pool_for(server, timeout=0.2)
    answer = await exchange(pool, b"GET", b"/v1/models")
    assert answer.failed == "timeout"


async def test_nothing_listening_is_a_connect_error() -> None:
    raw = RawServer()
    await raw.start()
    await raw.stop()  # the port is now closed
    pool = pool_for(raw)
    answer = await exchange(pool, b"GET", b"/v1/models")
    assert answer.failed == "connect"


async def test_a_body_cut_short_is_an_error(server: RawServer) -> None:
    server.replies = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"]
    server.close_after_reply = True
    pool = pool_for(server)
    answer = await exchange(pool, b"GET", b"/v1/models")
    assert answer.pieces == [b"short"]
    assert answer.failed == "disconnected"


def test_only_plain_http() -> None:
    with pytest.raises(ValueError, match="plain http"):
        UpstreamPool("https://127.0.0.1:8443", timeout=1)


async def test_expired_idle_connections_are_retired(
    server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.replies = [JSON_REPLY, JSON_REPLY, JSON_REPLY]
    pool = pool_for(server)
    clock = [1000.0]
    monkeypatch.setattr("slm_operator.gateway.upstream.time.monotonic", lambda: clock[0])
    # Two requests at once open two connections; both go back to the pool.
    await asyncio.gather(exchange(pool, b"GET", b"/v1/models"), exchange(pool, b"GET", b"/v1/models"))
    assert server.connections == 2
    clock[0] += 10  # both are now older than the idle limit
    await exchange(pool, b"GET", b"/v1/models")
    assert server.connections == 3  # the expired ones were not reused
    pool.close()
