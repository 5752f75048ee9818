"""A minimal OpenAI-compatible runtime for the benchmark, run in its own process.

It answers as fast as it can (a worst case for the gateway's relative cost: a real runtime
spends milliseconds per request, this one microseconds): ``/v1/chat/completions`` returns a small
JSON answer, or with ``"stream": true`` an SSE stream of ``--chunks`` content events spaced by
``--chunk-delay`` seconds, then a usage event and ``[DONE]``. ``/health`` and ``/v1/models``
make the gateway's readiness check pass. It prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

MODEL = "bench-model"
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there!"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
).encode()


def event(delta: dict[str, str], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def build_app(chunks: int, chunk_delay: float) -> web.Application:
    role = event({"role": "assistant", "content": ""})
    tokens = [event({"content": f" tok{i}"}) for i in range(chunks)]
    usage = json.dumps(
        {"id": "chatcmpl-bench", "choices": [], "usage": {"completion_tokens": chunks}}
    ).encode()
    tail = event({}, "stop") + b"data: " + usage + b"\n\ndata: [DONE]\n\n"

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if b'"stream": true' not in body and b'"stream":true' not in body:
            return web.Response(body=ANSWER, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        await response.write(role)
        for token in tokens:
            if chunk_delay:
                await asyncio.sleep(chunk_delay)
            await response.write(token)
        await response.write(tail)
        await response.write_eof()
        return response

    async def health(_: web.Request) -> web.Response:
        return web.Response()

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    return app


async def serve(chunks: int, chunk_delay: float) -> None:
    runner = web.AppRunner(build_app(chunks, chunk_delay), access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
    print(f"PORT {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()  # until the benchmark kills the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--chunk-delay", type=float, default=0.001)
    args = parser.parse_args()
    asyncio.run(serve(args.chunks, args.chunk_delay))


if __name__ == "__main__":
    main()
