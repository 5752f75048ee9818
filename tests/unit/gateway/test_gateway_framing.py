"""HTTP/1.1 framing on the API port, over raw sockets: pipelining, chunked bodies, 100-continue,
and requests whose length is ambiguous (request smuggling)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from gateway_fakes import KEY, MODEL, FakeRuntime, StartGateway

from slm_operator.gateway.server import RunningGateway

pytestmark = pytest.mark.timeout(30)

CHAT = "/v1/chat/completions"
CLOSE = "Connection: close\r\n"
BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()


def head(extra: str = "", *, key: str = KEY, close: bool = False) -> bytes:
    return (
        f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\n{extra}{CLOSE if close else ''}\r\n"
    ).encode()


def with_length(body: bytes, *, close: bool = False) -> bytes:
    return head(f"Content-Length: {len(body)}\r\n", close=close) + body


async def read_answers(gateway: RunningGateway, raw: bytes) -> bytes:
    """Send ``raw`` in one write and read until the gateway closes the connection."""
    reader, writer = await asyncio.open_connection(gateway.api.host, gateway.api.port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


def statuses(raw: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.[01] (\d{3}) ", raw)]


async def test_pipelined_requests_are_answered_in_order_and_each_sent_once(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm)
    first = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "first"}]}).encode()
    second = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "second"}]}).encode()
    raw = await read_answers(gateway, with_length(first) + with_length(second, close=True))
    assert statuses(raw) == [200, 200]
    assert [seen.body for seen in vllm.seen] == [first, second]


async def test_a_chunked_request_body_is_forwarded_whole_with_its_length(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm)
    half = len(BODY) // 2
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (BODY[:half], BODY[half:]))
    raw = await read_answers(
        gateway, head("Transfer-Encoding: chunked\r\n", close=True) + chunks + b"0\r\n\r\n"
    )
    assert statuses(raw) == [200]
    assert vllm.seen[-1].body == BODY
    # The runtime gets a plain body with its length, never the client's framing.
    assert vllm.seen[-1].headers.get("content-length") == str(len(BODY))
    assert "transfer-encoding" not in vllm.seen[-1].headers


async def test_expect_100_continue_gets_the_go_ahead_then_the_answer(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm)
    reader, writer = await asyncio.open_connection(gateway.api.host, gateway.api.port)
    try:
        writer.write(head(f"Content-Length: {len(BODY)}\r\nExpect: 100-continue\r\n", close=True))
        await writer.drain()
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 ")
        assert vllm.seen == []  # nothing forwarded before the body
        writer.write(BODY)
        await writer.drain()
        async with asyncio.timeout(5):
            rest = await reader.read()
    finally:
        writer.close()
    assert statuses(rest) == [200]
    assert vllm.seen[-1].body == BODY
    assert "expect" not in vllm.seen[-1].headers


async def test_expect_100_continue_without_a_key_is_refused_before_the_body(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm)
    reader, writer = await asyncio.open_connection(gateway.api.host, gateway.api.port)
    try:
        writer.write(
            head(f"Content-Length: {len(BODY)}\r\nExpect: 100-continue\r\n", key="sk-wrong-key-000000")
        )
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert vllm.seen == []


@pytest.mark.parametrize(
    "framing",
    [
        # Both lengths: which one a proxy believes decides where the next request starts.
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        # Two different Content-Lengths.
        f"Content-Length: {len(BODY)}\r\nContent-Length: 4\r\n",
        # A transfer coding the gateway does not know, or chunked not last.
        "Transfer-Encoding: gzip, chunked\r\nTransfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
    ],
)
async def test_ambiguous_request_framing_is_refused_and_nothing_is_forwarded(
    framing: str, vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm)
    smuggled = f"GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode()
    chunks = f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\n\r\n"
    raw = await read_answers(gateway, head(framing) + chunks + smuggled)
    assert statuses(raw) == [400]
    await asyncio.sleep(0.1)  # anything forwarded by mistake would have reached the runtime by now
    assert vllm.seen == []
    assert vllm.hits["/v1/models"] == 0


async def test_a_chunked_body_over_the_limit_is_413_without_forwarding(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm, max_body_bytes=64)
    padded = json.dumps({"model": MODEL, "messages": [], "pad": "x" * 200}).encode()
    chunks = b"".join(
        f"{len(padded[i : i + 50]):x}\r\n".encode() + padded[i : i + 50] + b"\r\n"
        for i in range(0, len(padded), 50)
    )
    raw = await read_answers(gateway, head("Transfer-Encoding: chunked\r\n") + chunks + b"0\r\n\r\n")
    assert statuses(raw) == [413]
    await asyncio.sleep(0.1)  # anything forwarded by mistake would have reached the runtime by now
    assert vllm.seen == []


async def test_a_request_head_over_the_limit_is_431_and_nothing_is_forwarded(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm)
    huge = "X-Pad: " + "a" * (128 * 1024) + "\r\n"
    raw = await read_answers(gateway, head(huge + f"Content-Length: {len(BODY)}\r\n") + BODY)
    assert statuses(raw) == [431]
    assert b"a" * 100 not in raw  # the answer never echoes the request
    assert vllm.seen == []


async def test_http_1_0_is_answered_and_closed(vllm: FakeRuntime, start: StartGateway) -> None:
    gateway = await start(vllm)
    raw = await read_answers(
        gateway, f"GET /v1/models HTTP/1.0\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode()
    )
    assert statuses(raw) == [200]
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["object"] == "list"


async def test_an_http_1_0_stream_ends_with_the_connection(vllm: FakeRuntime, start: StartGateway) -> None:
    gateway = await start(vllm)
    body = json.dumps({"model": MODEL, "messages": [], "stream": True}).encode()
    raw = await read_answers(
        gateway,
        (
            f"POST {CHAT} HTTP/1.0\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body,
    )
    head_part, _, events = raw.partition(b"\r\n\r\n")
    assert statuses(head_part) == [200]
    assert b"transfer-encoding" not in head_part.lower()  # HTTP/1.0 has no chunked encoding
    assert events.rstrip().endswith(b"data: [DONE]")


async def test_an_upgrade_is_never_passed_on(vllm: FakeRuntime, start: StartGateway) -> None:
    gateway = await start(vllm)
    raw = await read_answers(
        gateway,
        (
            f"GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n"
            "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        ).encode(),
    )
    assert statuses(raw) == [200]  # answered as a plain request, then closed
    assert "upgrade" not in vllm.seen[-1].headers
    assert "connection" not in vllm.seen[-1].headers


async def test_a_refusal_before_the_body_keeps_the_connection_when_the_body_follows(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm)
    reader, writer = await asyncio.open_connection(gateway.api.host, gateway.api.port)
    try:
        # A wrong key: the 401 goes out on the head, before the body has arrived.
        writer.write(head(f"Content-Length: {len(BODY)}\r\n", key="sk-wrong-key-000000"))
        await writer.drain()
        async with asyncio.timeout(5):
            first = await reader.readuntil(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 401 ")
        length = int(re.search(rb"Content-Length: (\d+)", first).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        # The body follows and is dropped; the next request on the connection is served.
        writer.write(BODY + with_length(BODY, close=True))
        await writer.drain()
        async with asyncio.timeout(5):
            rest = await reader.read()
    finally:
        writer.close()
    assert statuses(rest) == [200]
    assert [seen.body for seen in vllm.seen] == [BODY]


async def test_a_refusal_queued_behind_a_request_is_answered_in_order(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm)
    refused = f"GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer wrong\r\n{CLOSE}\r\n".encode()
    raw = await read_answers(gateway, with_length(BODY) + refused)
    assert statuses(raw) == [200, 401]
    assert len(vllm.seen) == 1


async def test_a_head_that_never_ends_is_cut_at_the_limit(vllm: FakeRuntime, start: StartGateway) -> None:
    gateway = await start(vllm, header_timeout=30.0)
    reader, writer = await asyncio.open_connection(gateway.api.host, gateway.api.port)
    try:
        writer.write(b"GET /v1/models HTTP/1.1\r\nX-Pad: ")
        for _ in range(16):  # 16 times 8 KiB of one header value, never finished
            if writer.is_closing():
                break
            writer.write(b"a" * 8192)
            await writer.drain()
            await asyncio.sleep(0.01)
        async with asyncio.timeout(5):  # long before the header timeout
            raw = await reader.read()
    finally:
        writer.close()
    assert statuses(raw) == [431]
    assert vllm.seen == []


async def test_an_absolute_form_target_reaches_its_route(vllm: FakeRuntime, start: StartGateway) -> None:
    gateway = await start(vllm)
    raw = await read_answers(
        gateway,
        (
            f"GET http://gw/v1/models?x=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n{CLOSE}\r\n"
        ).encode(),
    )
    assert statuses(raw) == [200]
    assert vllm.seen[-1].path == "/v1/models?x=1"


@pytest.mark.parametrize(
    "request_line",
    ["CONNECT 127.0.0.1:9 HTTP/1.1", "GET * HTTP/1.1", "GET /v1/models HTTP/2.0", "GET /v1/models"],
    ids=["connect", "asterisk", "http2", "http09"],
)
async def test_targets_and_versions_outside_http_1_are_refused(
    request_line: str, vllm: FakeRuntime, start: StartGateway
) -> None:
    gateway = await start(vllm)
    raw = await read_answers(
        gateway, f"{request_line}\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n{CLOSE}\r\n".encode()
    )
    assert statuses(raw)[0] in (400, 404)
    await asyncio.sleep(0.1)  # anything forwarded by mistake would have reached the runtime by now
    assert vllm.seen == []
