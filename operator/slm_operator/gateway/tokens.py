"""Reading token counts out of answers the gateway forwards, without changing a byte of them.

Non-streamed answers carry ``usage.completion_tokens`` (chat, completions),
``usage.output_tokens`` (responses) or, in Ollama's native API, ``eval_count``; a regular
expression finds it in the raw bytes instead of decoding the whole JSON document. It cannot be
fooled by generated text: inside a JSON string every ``"`` is escaped, so
``"completion_tokens"`` followed by ``:`` only occurs as a real key. Ollama's native streams are
newline-delimited JSON whose last line carries ``eval_count``; the same expression finds it.

Streams are server-sent events; each ``data:`` event is decoded to see whether it carries
content (one content chunk is about one token in vLLM and Ollama) or a final usage block
(vLLM with ``stream_options.include_usage``; the Responses API's ``response.completed``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_USAGE_RE = re.compile(rb'"(?:completion_tokens|output_tokens|eval_count)"\s*:\s*(\d+)')
# A chat or completions chunk carries content when one of these keys has a non-empty string (or
# tool_calls a non-empty list). As with usage, a key in quotes followed by a colon cannot come
# from generated text, whose quotes are escaped; logprobs' "content" is a list, not a string.
_CONTENT_RE = re.compile(
    rb'"(?:content|reasoning_content|reasoning|text)"\s*:\s*"[^"]|"tool_calls"\s*:\s*\[\s*\{'
)
# A usage key and its number are far shorter than this; the scanner keeps this much of the
# previous piece so that a key split across two pieces is still found.
_OVERLAP = 64
# An event larger than this without a separator is not SSE we can read; stop looking (the bytes
# are still forwarded untouched).
MAX_EVENT_BYTES = 1024 * 1024


def usage_tokens(body: bytes) -> int | None:
    """Output tokens reported in a non-streamed JSON answer, or None when it reports none."""
    matches = _USAGE_RE.findall(body)
    return int(matches[-1]) if matches else None


def _has_content(event: dict[str, Any]) -> bool:
    choices = event.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict) and (
                delta.get("content")
                or delta.get("reasoning_content")
                or delta.get("reasoning")
                or delta.get("tool_calls")
            ):
                return True
            if choice.get("text"):  # /v1/completions
                return True
        return False
    # Responses API: response.output_text.delta, response.reasoning_text.delta, ...
    kind = event.get("type")
    return isinstance(kind, str) and kind.endswith(".delta") and bool(event.get("delta"))


def _usage_of(event: dict[str, Any]) -> int | None:
    usage = event.get("usage")
    if not isinstance(usage, dict):
        response = event.get("response")  # Responses API: response.completed carries the usage
        usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None
    value = usage.get("completion_tokens", usage.get("output_tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class UsageScanner:
    """Finds the usage count in a body relayed piece by piece (not SSE), in bounded memory."""

    __slots__ = ("_tail", "usage_tokens")

    def __init__(self) -> None:
        self._tail = b""
        self.usage_tokens: int | None = None

    @property
    def output_tokens(self) -> int | None:
        """The last count the body reported, or None."""
        return self.usage_tokens

    def feed(self, chunk: bytes) -> bool:
        """Take the next piece; always True (any piece of a generating answer is output)."""
        data = self._tail + chunk
        found = usage_tokens(data)
        if found is not None:
            self.usage_tokens = found
        self._tail = data[-_OVERLAP:]
        return True


class StreamObserver:
    """Follows an SSE stream chunk by chunk (events may be split anywhere across chunks)."""

    __slots__ = ("_buffer", "_given_up", "content_chunks", "usage_tokens")

    def __init__(self) -> None:
        self._buffer = b""
        self._given_up = False
        self.content_chunks = 0
        self.usage_tokens: int | None = None

    @property
    def output_tokens(self) -> int:
        """The runtime's own count when it sent one, else the content chunks seen."""
        return self.usage_tokens if self.usage_tokens is not None else self.content_chunks

    def feed(self, chunk: bytes) -> bool:
        """Take the next chunk; True when it completed at least one event carrying content."""
        if self._given_up:
            return False
        if b"\r" in chunk:  # SSE allows CRLF and CR line ends; vLLM and Ollama send LF
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        data = self._buffer + chunk if self._buffer else chunk
        found = False
        start = 0
        while True:
            end = data.find(b"\n\n", start)
            if end < 0:
                break
            found |= self._event(data[start:end])
            start = end + 2
        self._buffer = data[start:]
        if len(self._buffer) > MAX_EVENT_BYTES:
            self._buffer = b""
            self._given_up = True
        return found

    def _event(self, raw: bytes) -> bool:
        content = False
        for line in raw.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if not payload or payload == b"[DONE]":
                continue
            if b'"choices"' in payload and b'"usage"' not in payload and payload.endswith(b"}"):
                # A chat or completions chunk without usage, the bulk of every stream: whether it
                # carries content is read from its keys, without decoding it (see _CONTENT_RE).
                if payload.startswith(b"{") and _CONTENT_RE.search(payload):
                    self.content_chunks += 1
                    content = True
                continue
            try:
                event = orjson.loads(payload)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if _has_content(event):
                self.content_chunks += 1
                content = True
            usage = _usage_of(event)
            if usage is not None:
                self.usage_tokens = usage
        return content
