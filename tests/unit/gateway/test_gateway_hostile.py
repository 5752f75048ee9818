"""Clients that are slow, malformed or malicious, over raw sockets: what they may never achieve."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import aiohttp
import pytest
from gateway_fakes import KEY, MODEL, FakeRuntime, StartGateway, bearer, sample, wait_for, write_key_file

from slm_operator.gateway.server import RunningGateway

pytestmark = pytest.mark.timeout(30)

# How long the gateway goes on reading (and dropping) a body it has already answered.
LINGERING_SECONDS = 2.0

CHAT = "/v1/chat/completions"
PROMPT = "my-very-private-prompt-text"
SECRET = KEY


def write_key_bytes(path: Path, content: bytes) -> None:
    """Write a key file byte for byte (a plain function: file I/O is instant here)."""
    path.write_bytes(content)


async def open_raw(gateway: RunningGateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(gateway.api.host, gateway.api.port)


async def exchange(gateway: RunningGateway, raw: bytes) -> bytes:
    """Send raw bytes, read until the gateway closes the connection (bounded in time)."""
    reader, writer = await open_raw(gateway)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


def chat_request(body: bytes, *, key: str = KEY, extra: str = "") -> bytes:
    return (
        f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True when the peer closes the connection within ``seconds`` (reading and dropping bytes)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


# --- 1. nothing of a request ever reaches a log -------------------------------------------------


MALFORMED = [
    # A NUL in the Authorization value.
    (
        f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {SECRET}\x00\r\n"
        f"Content-Length: 2\r\n\r\n{{}}"
    ).encode(),
    # A whole request with bare LF line ends, its key and its prompt.
    (
        f"POST {CHAT} HTTP/1.1\nHost: gw\nAuthorization: Bearer {SECRET}\n"
        f'Content-Type: application/json\nContent-Length: 40\n\n{{"messages": "{PROMPT}"}}'
    ).encode(),
    # A bad request line carrying the prompt.
    f"POST /v1/{PROMPT} HTTP/1.1 junk\r\nAuthorization: Bearer {SECRET}\r\n\r\n".encode(),
    # A header name with a space, then the key.
    (
        f"GET /v1/models HTTP/1.1\r\nHost: gw\r\nBad Header: {PROMPT}\r\n"
        f"Authorization: Bearer {SECRET}\r\n\r\n"
    ).encode(),
]


@pytest.mark.parametrize("raw", MALFORMED, ids=["nul-in-auth", "bare-lf", "bad-request-line", "bad-name"])
async def test_malformed_requests_leave_no_request_bytes_in_any_log(
    raw: bytes, vllm: FakeRuntime, start: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await start(vllm)
    caplog.set_level(logging.DEBUG)
    answer = await exchange(gateway, raw)
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:80]
    # Every level, the message and any traceback: neither the key nor the prompt.
    logged = "\n".join(
        record.getMessage()
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert SECRET not in logged
    assert PROMPT not in logged
    assert SECRET.encode() not in answer
    assert PROMPT.encode() not in answer
    # 8. The parser's refusals are counted like any other answer.
    await wait_for(
        lambda: sample(gateway, "slm_gateway_requests_total", model=MODEL, route="other", code="400") == 1
    )
    assert vllm.hits[CHAT] == 0


# --- 2. slow clients are cut off; keyed requests still get through at the cap ------------------


async def test_a_request_head_trickling_in_is_cut_at_the_header_timeout(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm, header_timeout=0.5, idle_timeout=30.0)
    reader, writer = await open_raw(gateway)
    began = time.monotonic()
    writer.write(b"GET /v1/models HTTP/1.1\r\n")
    for _ in range(3):  # one header byte at a time, each well inside the idle timeout
        await asyncio.sleep(0.2)
        if writer.is_closing():
            break
        writer.write(b"X")
    assert await closed_within(reader, 3.0)
    assert time.monotonic() - began < 3.0
    writer.close()
    assert sample(gateway, "slm_gateway_connections_dropped_total", model=MODEL, reason="header_timeout") == 1


class RecordingTransport(asyncio.Transport):
    """Just enough of a transport for a connection handler driven by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = asyncio.Event()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def is_closing(self) -> bool:
        return self.closed.is_set()

    def close(self) -> None:
        self.closed.set()

    def abort(self) -> None:
        self.closed.set()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_bytes_arriving_with_the_connection_start_the_header_timer(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    # With uvloop the first bytes can be delivered in the same loop iteration as the connection;
    # they must start the header timer all the same. The API port's protocol is driven by hand.
    gateway = await start(vllm, header_timeout=0.3, idle_timeout=30.0)
    transport = RecordingTransport()
    connection = gateway.api_server.protocol()
    connection.connection_made(transport)
    connection.data_received(b"GET /v1/models HTTP/1.1\r\nX-Slow: ")  # before any await
    async with asyncio.timeout(3):
        await transport.closed.wait()
    assert sample(gateway, "slm_gateway_connections_dropped_total", model=MODEL, reason="header_timeout") == 1
    connection.connection_lost(None)
    await asyncio.sleep(0)


async def test_an_idle_keep_alive_connection_is_closed(vllm: FakeRuntime, start: StartGateway) -> None:
    gateway = await start(vllm, idle_timeout=0.5)
    reader, writer = await open_raw(gateway)
    writer.write(f"GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    # The answer was complete and kept alive; after that, silence is closed within the idle timeout.
    assert await closed_within(reader, 3.0)
    writer.close()


async def test_a_keyed_body_trickling_in_gets_408_at_the_body_timeout(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm, body_timeout=0.5)
    reader, writer = await open_raw(gateway)
    body = json.dumps({"model": MODEL, "messages": []}).encode()
    request = chat_request(body)
    writer.write(request[: len(request) - len(body) + 3])
    began = time.monotonic()

    async def trickle() -> None:  # a byte every 0.2 s: never silent for long, never done in time
        while not writer.is_closing():
            await asyncio.sleep(0.2)
            writer.write(b" ")

    trickling = asyncio.create_task(trickle())
    try:
        async with asyncio.timeout(5):
            answer = await reader.readuntil(b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:60]
        assert time.monotonic() - began < 3.0
        # What still trickles in is read and dropped for a short while at most, then the
        # connection is closed.
        assert await closed_within(reader, LINGERING_SECONDS + 1.0)
    finally:
        trickling.cancel()
        writer.close()
    assert vllm.hits[CHAT] == 0
    assert sample(gateway, "slm_gateway_connections_dropped_total", model=MODEL, reason="body_timeout") == 1


async def test_at_the_connection_cap_slow_clients_make_room_for_keyed_requests(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm, max_connections=8, header_timeout=30.0, idle_timeout=30.0)
    slow = []
    for _ in range(8):  # fill the cap with connections that never finish a request head
        reader, writer = await open_raw(gateway)
        writer.write(b"GET /v1/models HTTP/1.1\r\nX-Slow: ")
        slow.append((reader, writer))
    await asyncio.sleep(0.1)
    for round_ in range(3):
        async with client.get(
            gateway.api_url + "/v1/models", headers={**bearer(), "Connection": "close"}
        ) as r:
            assert r.status == 200
        # The keyed request pushed out the slow connection that had waited longest, and only that.
        closed = [await closed_within(reader, 0.2) for reader, _ in slow]
        assert closed == [True] * (round_ + 1) + [False] * (len(slow) - round_ - 1)
        # Another slow client takes the free place: the cap is full again.
        reader, writer = await open_raw(gateway)
        writer.write(b"GET /v1/models HTTP/1.1\r\nX-Slow: ")
        slow.append((reader, writer))
        await asyncio.sleep(0.05)
    assert sample(gateway, "slm_gateway_connections_dropped_total", model=MODEL, reason="pushed_out") == 3
    for _, writer in slow:
        writer.close()


# --- 3. bad input is a 4xx, never a 500 ---------------------------------------------------------


async def test_a_token_that_is_not_utf8_is_401(
    vllm: FakeRuntime, start: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await start(vllm)
    raw = (
        b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
    )
    answer = await exchange(gateway, raw)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:60]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_deeply_nested_body_is_400(vllm: FakeRuntime, start: StartGateway) -> None:
    gateway = await start(vllm)
    depth = 100_000
    body = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    answer = await exchange(gateway, chat_request(body))
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:60]
    assert b"invalid_json" in answer
    assert vllm.hits[CHAT] == 0


# --- 4. what reaches the runtime ----------------------------------------------------------------


async def test_credentials_forwarding_and_hop_by_hop_headers_are_the_gateways(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm)
    body = json.dumps({"model": MODEL, "messages": []}).encode()
    extra = (
        f"X-Api-Key: {KEY}\r\nApi-Key: {KEY}\r\nCookie: session={KEY}\r\n"
        "X-Forwarded-For: 10.9.9.9\r\nForwarded: for=10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\n"
        "X-Forwarded-Host: evil.example\r\n"
        "Connection: keep-alive, X-First\r\nConnection: X-Second\r\n"
        "X-First: 1\r\nX-Second: 2\r\nX-Kept: yes\r\n"
    )
    raw = (
        f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    reader, writer = await open_raw(gateway)
    writer.write(raw)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.close()
    seen = vllm.seen[-1].headers
    assert not any(KEY in value for value in seen.values()), seen
    for name in ("authorization", "x-api-key", "api-key", "cookie", "forwarded", "x-forwarded-host"):
        assert name not in seen
    assert "x-first" not in seen
    assert "x-second" not in seen
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-real-ip"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-kept"] == "yes"


async def test_readyz_does_not_show_the_key_files_path(
    vllm: FakeRuntime, start: StartGateway, key_file: Path, client: aiohttp.ClientSession
) -> None:
    write_key_file(key_file, None)
    gateway = await start(vllm)
    async with client.get(gateway.api_url + "/readyz") as response:
        assert response.status == 503
        text = await response.text()
    assert str(key_file.parent) not in text
    assert "no API key loaded" in json.loads(text)["reason"]


# --- 8. a key file with a BOM or invalid UTF-8 is an error /readyz reports ---------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"\xef\xbb\xbf" + KEY.encode() + b"\n", "byte-order mark"), (KEY.encode() + b"\xff\n", "UTF-8")],
    ids=["bom", "invalid-utf8"],
)
async def test_a_key_file_that_is_not_plain_utf8_is_reported(
    content: bytes,
    problem: str,
    vllm: FakeRuntime,
    start: StartGateway,
    key_file: Path,
    client: aiohttp.ClientSession,
) -> None:
    write_key_bytes(key_file, content)
    gateway = await start(vllm)
    async with client.get(gateway.api_url + "/readyz") as response:
        assert response.status == 503
        reason = (await response.json())["reason"]
    assert problem in reason
    async with client.get(gateway.api_url + "/v1/models", headers=bearer()) as response:
        assert response.status == 401


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    vllm.answer_gate = asyncio.Event()
    gateway = await start(vllm, max_connections=2)
    body = {"model": MODEL, "messages": []}
    busy = [
        asyncio.create_task(client.post(gateway.api_url + CHAT, json=body, headers=bearer()))
        for _ in range(2)
    ]
    await wait_for(lambda: vllm.hits[CHAT] == 2)
    reader, writer = await open_raw(gateway)
    assert await closed_within(reader, 2.0)  # nothing to push out: both are being answered
    writer.close()
    assert sample(gateway, "slm_gateway_connections_dropped_total", model=MODEL, reason="refused") == 1
    vllm.answer_gate.set()
    for task in busy:
        response = await task
        assert response.status == 200
        response.release()
