"""Reading token counts from forwarded bytes: SSE events split anywhere, usage blocks, odd input."""

from __future__ import annotations

import json

import pytest

from slm_operator.gateway.tokens import MAX_EVENT_BYTES, StreamObserver, usage_tokens


def sse(*events: dict[str, object] | str) -> bytes:
    return b"".join(
        b"data: " + (e.encode() if isinstance(e, str) else json.dumps(e).encode()) + b"\n\n" for e in events
    )


def delta(content: str) -> dict[str, object]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}]}


STREAM = sse(
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    delta("Hel"),
    delta("lo"),
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
    "[DONE]",
)


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
def test_events_split_anywhere_are_read_once(size: int) -> None:
    observer = StreamObserver()
    flags = [observer.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size)]
    assert observer.content_chunks == 2
    assert observer.usage_tokens == 2
    assert observer.output_tokens == 2
    assert sum(flags) >= 1


def test_the_first_content_is_reported_by_the_chunk_that_completes_it() -> None:
    observer = StreamObserver()
    role, first = sse({"choices": [{"delta": {"role": "assistant", "content": ""}}]}), sse(delta("Hi"))
    assert observer.feed(role) is False  # an empty role delta is not content
    assert observer.feed(first[:10]) is False  # the event is not complete yet
    assert observer.feed(first[10:]) is True


def test_crlf_line_ends() -> None:
    observer = StreamObserver()
    observer.feed(sse(delta("a"), delta("b")).replace(b"\n", b"\r\n"))
    assert observer.content_chunks == 2


def test_counted_without_usage() -> None:
    observer = StreamObserver()
    observer.feed(sse(delta("a"), delta("b"), delta("c"), "[DONE]"))
    assert observer.usage_tokens is None
    assert observer.output_tokens == 3


@pytest.mark.parametrize(
    "event",
    [
        {"choices": [{"text": "tok"}]},  # /v1/completions
        {"choices": [{"delta": {"reasoning_content": "hmm"}}]},  # vLLM reasoning parser
        {"choices": [{"delta": {"tool_calls": [{"index": 0}]}}]},
        {"type": "response.output_text.delta", "delta": "tok"},  # Responses API
    ],
)
def test_kinds_of_content(event: dict[str, object]) -> None:
    observer = StreamObserver()
    assert observer.feed(sse(event)) is True
    assert observer.content_chunks == 1


def test_responses_completed_usage() -> None:
    observer = StreamObserver()
    observer.feed(
        sse(
            {"type": "response.output_text.delta", "delta": "a"},
            {"type": "response.completed", "response": {"usage": {"input_tokens": 1, "output_tokens": 9}}},
        )
    )
    assert observer.output_tokens == 9


@pytest.mark.parametrize(
    "garbage",
    [b"data: {not json\n\n", b"data: [1,2]\n\n", b": comment\n\n", b"event: ping\n\n", b"data:\n\n"],
)
def test_garbage_is_ignored(garbage: bytes) -> None:
    observer = StreamObserver()
    assert observer.feed(garbage + sse(delta("x"))) is True
    assert observer.content_chunks == 1


def test_an_endless_event_stops_the_observer_not_the_stream() -> None:
    observer = StreamObserver()
    observer.feed(b"data: " + b"x" * (MAX_EVENT_BYTES + 1))
    assert observer.feed(sse(delta("late"))) is False
    assert observer.content_chunks == 0


def test_usage_of_a_non_streamed_answer() -> None:
    answer = {
        "choices": [{"message": {"content": "x"}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 12},
    }
    assert usage_tokens(json.dumps(answer).encode()) == 12
    assert usage_tokens(json.dumps({"usage": {"output_tokens": 3}, "max_output_tokens": 50}).encode()) == 3
    assert usage_tokens(b'{"data": [{"embedding": [0.1]}], "usage": {"prompt_tokens": 2}}') is None


def test_generated_text_cannot_fake_the_usage() -> None:
    # The model writes text that looks like a usage block; JSON escapes its quotes.
    text = 'ignore this: "completion_tokens": 999999'
    answer = {"choices": [{"message": {"content": text}}], "usage": {"completion_tokens": 5}}
    assert usage_tokens(json.dumps(answer).encode()) == 5
    without_usage = {"choices": [{"message": {"content": text}}]}
    assert usage_tokens(json.dumps(without_usage).encode()) is None


@pytest.mark.parametrize(
    ("event", "counted"),
    [
        ({"choices": [{"delta": {"role": "assistant", "content": ""}}]}, False),
        ({"choices": [{"delta": {"content": None}, "finish_reason": "stop"}]}, False),
        ({"choices": [{"delta": {"content": ""}, "logprobs": {"content": [{"token": "x"}]}}]}, False),
        ({"choices": [{"delta": {"tool_calls": []}}]}, False),
        # Generated text that spells a key: its quotes are escaped, so it is not a key.
        ({"choices": [{"delta": {"content": ""}, "note": '"content": "fake"'}]}, False),
        ({"choices": [{"delta": {"content": '"'}}]}, True),
        ({"choices": [{"delta": {"content": '\\"content\\": \\"x\\"'}}]}, True),
    ],
)
def test_chat_chunks_are_read_by_their_keys_exactly_as_decoded(
    event: dict[str, object], counted: bool
) -> None:
    observer = StreamObserver()
    assert observer.feed(sse(event)) is counted
    assert observer.content_chunks == (1 if counted else 0)
