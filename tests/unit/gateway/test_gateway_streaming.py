"""Streaming without buffering, cancellation, timeouts and the error answers of the request path."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest
from gateway_fakes import KEY, MODEL, FakeRuntime, StartGateway, bearer, sample, wait_for

pytestmark = pytest.mark.timeout(20)

CHAT = "/v1/chat/completions"


def chat_body(*, stream: bool, usage: bool = False) -> dict[str, object]:
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    if usage:
        body["stream_options"] = {"include_usage": True}
    return body


def content_of(event: bytes) -> str | None:
    """The content delta of one ``data:`` event line, if it has one."""
    payload = event.removeprefix(b"data: ").strip()
    if not payload or payload == b"[DONE]":
        return None
    choices = json.loads(payload)["choices"]
    return choices[0]["delta"].get("content") if choices else None


async def test_first_chunk_reaches_the_client_while_the_runtime_is_still_generating(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    vllm.script.gate = asyncio.Event()
    gateway = await start(vllm)
    async with client.post(gateway.api_url + CHAT, json=chat_body(stream=True), headers=bearer()) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        received: list[str] = []
        # Read events until the first content token arrives; the runtime is parked on the gate.
        async with asyncio.timeout(5):
            while not received:
                line = await response.content.readline()
                content = content_of(line)
                if content:
                    received.append(content)
        assert received == ["Hello"]
        assert not vllm.stream_finished.is_set(), "the runtime has not produced the rest yet"
        assert sample(gateway, "slm_gateway_in_flight_requests", model=MODEL) == 1
        vllm.script.gate.set()
        rest = await response.read()
    assert vllm.stream_finished.is_set()
    events = [e.strip() for e in rest.split(b"\n\n") if e.strip()]
    assert [content_of(e) for e in events if content_of(e)] == [",", " world", "!"]
    assert events[-1] == b"data: [DONE]"
    await wait_for(lambda: sample(gateway, "slm_gateway_in_flight_requests", model=MODEL) == 0)


async def test_client_disconnect_cancels_the_runtime_request(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    vllm.script.gate = asyncio.Event()  # never set: the runtime would otherwise go on generating
    gateway = await start(vllm)
    response = await client.post(gateway.api_url + CHAT, json=chat_body(stream=True), headers=bearer())
    await asyncio.wait_for(vllm.first_chunk_sent.wait(), 5)
    response.close()  # the client hangs up mid-stream
    await asyncio.wait_for(vllm.client_gone.wait(), 5)
    assert not vllm.stream_finished.is_set()
    await wait_for(
        lambda: sample(gateway, "slm_gateway_requests_total", model=MODEL, route=CHAT, code="499") == 1
    )
    assert sample(gateway, "slm_gateway_in_flight_requests", model=MODEL) == 0


async def test_client_disconnect_before_the_answer_cancels_the_runtime_request(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    vllm.answer_gate = asyncio.Event()
    gateway = await start(vllm)
    request = asyncio.create_task(
        client.post(gateway.api_url + CHAT, json=chat_body(stream=False), headers=bearer())
    )
    await wait_for(lambda: vllm.hits[CHAT] == 1)
    request.cancel()  # the client gives up while the runtime is still thinking
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.wait_for(vllm.client_gone.wait(), 5)
    await wait_for(
        lambda: sample(gateway, "slm_gateway_requests_total", model=MODEL, route=CHAT, code="499") == 1
    )


async def test_a_stalled_stream_is_closed_after_the_upstream_timeout(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    vllm.script.gate = asyncio.Event()  # never set: the runtime stalls after its first token
    gateway = await start(vllm, upstream_timeout=0.3)
    async with client.post(gateway.api_url + CHAT, json=chat_body(stream=True), headers=bearer()) as response:
        assert response.status == 200
        # The connection is cut rather than ended cleanly, so the client knows the answer is partial.
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert sample(gateway, "slm_gateway_upstream_errors_total", model=MODEL, reason="stream_stalled") == 1
    await asyncio.wait_for(vllm.client_gone.wait(), 5)


async def test_an_answer_that_never_starts_gets_504(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    vllm.answer_gate = asyncio.Event()  # never set
    gateway = await start(vllm, upstream_timeout=0.3)
    async with client.post(
        gateway.api_url + CHAT, json=chat_body(stream=False), headers=bearer()
    ) as response:
        assert response.status == 504
        error = (await response.json())["error"]
    assert error["code"] == "upstream_timeout"
    assert sample(gateway, "slm_gateway_upstream_errors_total", model=MODEL, reason="timeout") == 1
    assert sample(gateway, "slm_gateway_requests_total", model=MODEL, route=CHAT, code="504") == 1


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_runtime_gets_502_with_a_json_error(
    start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(f"http://127.0.0.1:{closed_port()}")
    async with client.post(
        gateway.api_url + CHAT, json=chat_body(stream=False), headers=bearer()
    ) as response:
        assert response.status == 502
        error = (await response.json())["error"]
    assert error == {
        "message": "The model runtime is unreachable.",
        "type": "upstream_error",
        "code": "upstream_unavailable",
    }
    assert sample(gateway, "slm_gateway_upstream_errors_total", model=MODEL, reason="connect") == 1


async def test_a_body_over_the_limit_gets_413_without_reaching_the_runtime(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm, max_body_bytes=1024)
    body = json.dumps({"prompt": "x" * 2000}).encode()
    async with client.post(gateway.api_url + "/v1/completions", data=body, headers=bearer()) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "request_too_large"

    async def chunked() -> object:  # no Content-Length: the limit is enforced while reading
        for _ in range(4):
            yield b" " * 400

    async with client.post(gateway.api_url + "/v1/completions", data=chunked(), headers=bearer()) as response:
        assert response.status == 413
    assert vllm.hits["/v1/completions"] == 0


async def test_a_body_at_the_limit_passes(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm, max_body_bytes=1024)
    body = json.dumps({"prompt": "x"}).encode()
    body += b" " * (1024 - len(body))
    async with client.post(gateway.api_url + "/v1/completions", data=body, headers=bearer()) as response:
        assert response.status == 200
    assert vllm.seen[-1].body == body


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"not json", b"[1, 2]", b'"a string"', b"\xff\xfe{}"],
    ids=["empty", "truncated", "text", "array", "string", "not-utf8"],
)
async def test_a_body_that_is_not_a_json_object_gets_400(
    body: bytes, vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    async with client.post(gateway.api_url + CHAT, data=body, headers=bearer()) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_json"
    assert vllm.hits[CHAT] == 0


async def test_original_bytes_go_upstream_without_credentials_or_hop_by_hop_headers(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    # Odd spacing and key order: a re-encoded body would not be byte-identical.
    body = (
        b'{ "stream" : false,\n  "messages": [{"role":"user","content":"caf\\u00e9"}], "model":"qwen3-0-6b" }'
    )
    headers = {
        **bearer(),
        "Content-Type": "application/json",
        "X-Request-Id": "abc-123",
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "must not pass",
        "Proxy-Authorization": "Basic c2VjcmV0",
    }
    async with client.post(gateway.api_url + CHAT + "?trace=1", data=body, headers=headers) as response:
        assert response.status == 200
    seen = vllm.seen[-1]
    assert seen.body == body
    assert seen.path == CHAT + "?trace=1"
    assert "authorization" not in seen.headers
    assert "proxy-authorization" not in seen.headers
    assert "x-hop" not in seen.headers
    assert seen.headers["x-request-id"] == "abc-123"
    assert seen.headers["content-type"] == "application/json"


async def test_runtime_errors_pass_through_unchanged(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    body = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
    async with client.post(gateway.api_url + CHAT, json=body, headers=bearer()) as response:
        assert response.status == 404
        answer = await response.json()
    assert answer == {"object": "error", "message": "The model `no-such-model` does not exist.", "code": 404}
    assert sample(gateway, "slm_gateway_requests_total", model=MODEL, route=CHAT, code="404") == 1
    assert sample(gateway, "slm_gateway_upstream_errors_total", model=MODEL, reason="connect") == 0


async def test_expect_100_continue_is_answered(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    # The client sends the body only after the gateway's interim "100 Continue".
    async with client.post(
        gateway.api_url + CHAT, json=chat_body(stream=False), headers=bearer(), expect100=True
    ) as response:
        assert response.status == 200
    assert "expect" not in vllm.seen[-1].headers


async def raw_runtime(reply: bytes) -> tuple[asyncio.Server, str]:
    """A runtime that reads one request head, sends ``reply`` and hangs up."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_a_runtime_that_hangs_up_before_answering_gets_502(
    start: StartGateway, client: aiohttp.ClientSession
) -> None:
    server, url = await raw_runtime(b"")
    try:
        gateway = await start(url)
        async with client.get(gateway.api_url + "/v1/models", headers=bearer()) as response:
            assert response.status == 502
            assert (await response.json())["error"]["message"] == "The model runtime closed the connection."
    finally:
        server.close()
    assert sample(gateway, "slm_gateway_upstream_errors_total", model=MODEL, reason="disconnected") == 1


async def test_a_stream_cut_by_the_runtime_is_cut_for_the_client(
    start: StartGateway, client: aiohttp.ClientSession
) -> None:
    event = b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'
    partial = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(event):x}\r\n".encode()
        + event
        + b"\r\n"
    )
    server, url = await raw_runtime(partial)  # ... and no terminating chunk
    try:
        gateway = await start(url)
        async with client.post(
            gateway.api_url + CHAT, json=chat_body(stream=True), headers=bearer()
        ) as response:
            assert response.status == 200
            assert await response.content.readline() == event.splitlines(keepends=True)[0]
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
    finally:
        server.close()
    assert sample(gateway, "slm_gateway_upstream_errors_total", model=MODEL, reason="stream_broken") == 1
    assert sample(gateway, "slm_gateway_output_tokens_total", model=MODEL, route=CHAT) == 1


async def test_ollama_native_ndjson_stream_reaches_the_client_line_by_line(
    ollama: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    ollama.models = [MODEL]
    ollama.script.gate = asyncio.Event()
    gateway = await start(ollama)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}  # Ollama streams by default
    async with client.post(gateway.api_url + "/api/chat", json=body, headers=bearer()) as response:
        assert response.status == 200
        assert response.content_type == "application/x-ndjson"
        async with asyncio.timeout(5):
            first = json.loads(await response.content.readline())
        assert first["message"]["content"] == "Hello"
        assert not ollama.stream_finished.is_set(), "the runtime has not produced the rest yet"
        ollama.script.gate.set()
        lines = [json.loads(line) for line in (await response.read()).splitlines()]
    assert [line["message"]["content"] for line in lines] == [",", " world", "!", ""]
    assert lines[-1]["done"] is True
    # The last line's eval_count is the output token count.
    await wait_for(
        lambda: sample(gateway, "slm_gateway_output_tokens_total", model=MODEL, route="/api/chat") == 4
    )


async def test_a_large_answer_is_relayed_as_it_arrives_with_bounded_memory(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    vllm.big_answer = 8 * 1024 * 1024
    gateway = await start(vllm)
    async with client.post(
        gateway.api_url + "/v1/embeddings", json={"model": MODEL, "input": "x"}, headers=bearer()
    ) as response:
        assert response.status == 200
        assert response.content_length == vllm.big_answer
        received = 0
        async with asyncio.timeout(5):  # the runtime holds the rest until the client has the start
            while received < 512 * 1024:
                received += len(await response.content.readany())
        vllm.big_gate.set()
        received += len(await response.read())
    assert received == vllm.big_answer


async def test_a_client_that_does_not_read_holds_the_runtime_back(
    vllm: FakeRuntime, start: StartGateway
) -> None:
    # Flow control: while the client reads nothing, the gateway stops reading from the runtime
    # once its write buffer to the client is full, instead of buffering the whole answer.
    size = 32 * 1024 * 1024
    vllm.big_answer = size
    vllm.big_gate.set()
    gateway = await start(vllm)
    body = json.dumps({"model": MODEL, "input": "x"}).encode()
    reader, writer = await asyncio.open_connection(gateway.api.host, gateway.api.port)
    try:
        writer.write(
            (
                f"POST /v1/embeddings HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            + body
        )
        await writer.drain()
        await asyncio.wait_for(vllm.first_chunk_sent.wait(), 5)
        await asyncio.sleep(1.0)  # the runtime has had ample time to send everything
        [connection] = gateway.api_server.connections
        assert connection.transport is not None
        assert connection.transport.get_write_buffer_size() <= 1024 * 1024
        async with asyncio.timeout(15):
            received = len(await reader.read())
    finally:
        writer.close()
    assert received > size  # the head and the whole body arrived in the end
