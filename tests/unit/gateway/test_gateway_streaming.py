"""Streaming without buffering, cancellation, timeouts and the error answers of the request path."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest
from gateway_fakes import MODEL, FakeRuntime, StartGateway, bearer, sample, wait_for

pytestmark = pytest.mark.timeout(20)

CHAT = "/v1/chat/completions"


def chat_body(*, stream: bool, usage: bool = False) -> dict[str, object]:
    body: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
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
