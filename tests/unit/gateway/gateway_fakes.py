"""An in-process stand-in for vLLM's and Ollama's OpenAI-compatible servers.

It serves the same paths with the same document shapes (vLLM: ``/health``, ``/metrics``,
``/v1/models`` with ``id``s; Ollama: ``/api/tags`` with ``name``/``model`` tags), streams
server-sent events chunk by chunk with delays and gates the test controls, and records what it
received and whether its client (the gateway) went away.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from slm_operator.gateway.config import Address
from slm_operator.gateway.server import RunningGateway

KEY = "sk-test-0123456789abcdef"
MODEL = "qwen3-0-6b"
LOCAL = Address("127.0.0.1", 0)

StartGateway = Callable[..., Awaitable[RunningGateway]]


def bearer(key: str = KEY) -> dict[str, str]:
    """The header a client sends."""
    return {"Authorization": f"Bearer {key}"}


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``condition()`` holds, failing the test after ``within`` seconds."""
    async with asyncio.timeout(within):
        # Polling: metric values and similar state have no event to wait on; the deadline bounds it.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def write_key_file(path: Path, content: str | None) -> None:
    """Write (or, with None, delete) a key file; a plain function, as file I/O is instant here."""
    if content is None:
        path.unlink()
    else:
        path.write_text(content)


def sample(running: RunningGateway, name: str, **labels: str) -> float:
    """A sample from the gateway's registry (0 when the series does not exist yet)."""
    value = running.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@dataclass
class Seen:
    """One request as the runtime received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StreamScript:
    """How the next streamed answer unfolds."""

    tokens: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    # Seconds to wait before each content chunk (missing entries mean no wait).
    delays: list[float] = field(default_factory=list)
    # When set, the stream pauses after its first content chunk until the test sets the event.
    gate: asyncio.Event | None = None


class FakeRuntime:
    """A fake vLLM (``runtime="vllm"``) or Ollama (``runtime="ollama"``) on 127.0.0.1."""

    def __init__(self, runtime: str, models: list[str]) -> None:
        self.runtime = runtime
        self.models = models
        self.healthy = True
        self.script = StreamScript()
        # Non-streamed answers: wait this long, or for this event, before sending anything.
        self.answer_delay = 0.0
        self.answer_gate: asyncio.Event | None = None
        # usage.completion_tokens to report; None leaves usage out of the answer.
        self.usage_completion_tokens: int | None = 7
        # /v1/embeddings: when set, answer with this many bytes (Content-Length), sending the
        # first megabyte, then waiting for big_gate before the rest.
        self.big_answer = 0
        self.big_gate = asyncio.Event()
        self.seen: list[Seen] = []
        self.hits: Counter[str] = Counter()
        self.first_chunk_sent = asyncio.Event()
        self.stream_finished = asyncio.Event()
        self.client_gone = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Listen on an ephemeral port of 127.0.0.1; returns the base URL."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/models", self._models)
        if self.runtime == "vllm":
            app.router.add_get("/health", self._health)
            app.router.add_get("/metrics", self._metrics)
            app.router.add_post("/tokenize", self._tokenize)
        else:
            app.router.add_get("/api/tags", self._tags)
            app.router.add_get("/", self._root)
            # Ollama's native API (https://github.com/ollama/ollama/blob/main/docs/api.md).
            app.router.add_post("/api/chat", self._native_chat)
            app.router.add_post("/api/generate", self._native_chat)
            for path in ("/api/embed", "/api/embeddings", "/api/show"):
                app.router.add_post(path, self._native_json)
            for path in ("/api/ps", "/api/version"):
                app.router.add_get(path, self._native_json)
            # Model management, which the gateway must never let through.
            for path in ("/api/pull", "/api/push", "/api/create", "/api/copy"):
                app.router.add_post(path, self._native_json)
            app.router.add_delete("/api/delete", self._native_json)
            app.router.add_route("*", "/api/blobs/{digest}", self._native_json)
        # handler_cancellation: like uvicorn and Go's net/http, the fake notices a vanished client.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> bytes:
        body = await request.read()
        self.hits[request.path] += 1
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.seen.append(Seen(request.method, request.path_qs, headers, body))
        return body

    # --- control paths -------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=200 if self.healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(
            text='# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 0.0\n',
            content_type="text/plain",
        )

    async def _tokenize(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"tokens": [1, 2, 3]})

    async def _tags(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {"models": [{"name": m, "model": m, "size": 1, "digest": "sha256:0"} for m in self.models]}
        )

    async def _root(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(text="Ollama is running")

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        owner = "vllm" if self.runtime == "vllm" else "library"
        return web.json_response(
            {"object": "list", "data": [{"id": m, "object": "model", "owned_by": owner} for m in self.models]}
        )

    # --- inference paths -----------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        document = json.loads(await self._record(request))
        if document.get("model") not in self.models:  # vLLM's answer for a name it does not serve
            message = f"The model `{document.get('model')}` does not exist."
            return web.json_response({"object": "error", "message": message, "code": 404}, status=404)
        if document.get("stream"):
            return await self._sse(request, document, lambda tok: {"delta": {"content": tok}}, chat=True)
        text = "".join(self.script.tokens)
        answer = {"object": "chat.completion", "choices": [{"index": 0, "message": {"content": text}}]}
        return await self._answer(answer)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        document = json.loads(await self._record(request))
        if document.get("stream"):
            return await self._sse(request, document, lambda tok: {"text": tok}, chat=False)
        return await self._answer(
            {"object": "text_completion", "choices": [{"text": "".join(self.script.tokens)}]}
        )

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if self.big_answer:
            return await self._big(request)
        return web.json_response(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    async def _responses(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {
                "object": "response",
                "max_output_tokens": 999,
                "output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}],
                "usage": {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6},
            }
        )

    async def _big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = self.big_answer
        await response.prepare(request)
        first = min(self.big_answer, 1024 * 1024)
        await response.write(b" " * first)
        self.first_chunk_sent.set()
        await self._wait_or_note_gone(self.big_gate)
        rest = self.big_answer - first
        while rest:
            piece = min(rest, 1024 * 1024)
            await response.write(b" " * piece)
            rest -= piece
        await response.write_eof()
        return response

    async def _native_json(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"path": request.path, "ok": True})

    async def _native_chat(self, request: web.Request) -> web.StreamResponse:
        """Ollama's /api/chat and /api/generate: NDJSON lines, streamed unless ``stream`` is false."""
        document = json.loads(await self._record(request))
        key = "message" if request.path == "/api/chat" else "response"

        def piece(token: str) -> dict[str, Any]:
            return {"message": {"role": "assistant", "content": token}} if key == "message" else {key: token}

        final = {
            "model": self.models[0],
            "done": True,
            "done_reason": "stop",
            "eval_count": 4,
            "prompt_eval_count": 9,
        }
        if document.get("stream") is False:
            return web.json_response({**piece("".join(self.script.tokens)), **final})
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            for index, token in enumerate(self.script.tokens):
                line = {"model": self.models[0], **piece(token), "done": False}
                await response.write(json.dumps(line).encode() + b"\n")
                if index == 0:
                    self.first_chunk_sent.set()
                    if self.script.gate is not None:
                        await self.script.gate.wait()
            await response.write(json.dumps({**piece(""), **final}).encode() + b"\n")
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            self.client_gone.set()
            raise
        self.stream_finished.set()
        return response

    async def _answer(self, answer: dict[str, Any]) -> web.Response:
        if self.answer_gate is not None:
            await self._wait_or_note_gone(self.answer_gate)
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        if self.usage_completion_tokens is not None:
            answer["usage"] = {
                "prompt_tokens": 5,
                "completion_tokens": self.usage_completion_tokens,
                "total_tokens": 5 + self.usage_completion_tokens,
            }
        return web.json_response(answer)

    async def _wait_or_note_gone(self, event: asyncio.Event) -> None:
        try:
            await event.wait()
        except asyncio.CancelledError:
            self.client_gone.set()
            raise

    async def _sse(
        self, request: web.Request, document: dict[str, Any], piece: Any, *, chat: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        kind = "chat.completion.chunk" if chat else "text_completion"

        async def event(choice: dict[str, Any] | None, usage: dict[str, int] | None = None) -> None:
            chunk: dict[str, Any] = {
                "id": "cmpl-1",
                "object": kind,
                "model": self.models[0] if self.models else "",
            }
            chunk["choices"] = [] if choice is None else [{"index": 0, **choice, "finish_reason": None}]
            if usage is not None:
                chunk["usage"] = usage
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        try:
            if chat:  # vLLM and Ollama open a chat stream with an empty assistant delta
                await event({"delta": {"role": "assistant", "content": ""}})
            for index, token in enumerate(self.script.tokens):
                if index < len(self.script.delays) and self.script.delays[index]:
                    await asyncio.sleep(self.script.delays[index])
                await event(piece(token))
                if index == 0:
                    self.first_chunk_sent.set()
                    if self.script.gate is not None:
                        await self.script.gate.wait()
            await event({"delta": {}} if chat else {"text": ""})
            options = document.get("stream_options") or {}
            if options.get("include_usage") and self.usage_completion_tokens is not None:
                n = self.usage_completion_tokens
                await event(None, {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n})
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            self.client_gone.set()
            raise
        self.stream_finished.set()
        return response
