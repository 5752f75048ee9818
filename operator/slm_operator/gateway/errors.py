"""Answers made by the gateway itself, as ready-made bytes.

Clients written for the OpenAI API read ``error.message``/``type``/``code``, so the gateway's
own refusals use the same shape as the runtimes' errors. Each answer is built once (at start-up
for the fixed ones) as a head without its final empty line and a body; the connection adds
``Connection: close`` when it closes after the answer, and leaves the body out for ``HEAD``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus

JSON = b"application/json"


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete answer: ``head`` (status line and headers, without the empty line) and ``body``."""

    status: int
    head: bytes
    body: bytes


def status_line(status: int, reason: bytes | None = None) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and its line end."""
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


def answer(status: int, body: bytes, *, content_type: bytes = JSON, extra: bytes = b"") -> Answer:
    """An answer with ``body``; ``extra`` holds further header lines (each ending in CRLF)."""
    head = status_line(status) + b"Content-Type: %s\r\nContent-Length: %d\r\n%s" % (
        content_type,
        len(body),
        extra,
    )
    return Answer(status, head, body)


def error_body(message: str, *, kind: str, code: str) -> bytes:
    """The encoded ``{"error": {...}}`` document."""
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


def error(status: int, message: str, *, kind: str, code: str, extra: bytes = b"") -> Answer:
    """A JSON error answer with ``status``."""
    return answer(status, error_body(message, kind=kind, code=code), extra=extra)


UNAUTHORIZED = error(
    401,
    "Missing or invalid API key: send 'Authorization: Bearer <key>'.",
    kind="invalid_request_error",
    code="invalid_api_key",
    # RFC 6750 §3
    extra=b"WWW-Authenticate: Bearer\r\n",
)
NOT_FOUND = error(
    404,
    "Not found: this gateway serves /v1/chat/completions, /v1/completions, /v1/responses, "
    "/v1/embeddings and /v1/models (and, in front of Ollama, /api/chat, /api/generate, /api/embed, "
    "/api/embeddings, /api/show, /api/tags, /api/ps and /api/version).",
    kind="invalid_request_error",
    code="not_found",
)
MALFORMED = error(400, "Malformed HTTP request.", kind="invalid_request_error", code="bad_request")
HEAD_TOO_LARGE = error(
    431, "The request head is too large.", kind="invalid_request_error", code="bad_request"
)
INVALID_JSON = error(
    400, "Request body must be a JSON object.", kind="invalid_request_error", code="invalid_json"
)
INTERNAL = error(500, "Internal error in the gateway.", kind="server_error", code="internal_error")
UPSTREAM_TIMEOUT = error(
    504, "The model runtime did not answer in time.", kind="upstream_error", code="upstream_timeout"
)
UPSTREAM_UNREACHABLE = error(
    502, "The model runtime is unreachable.", kind="upstream_error", code="upstream_unavailable"
)
UPSTREAM_CLOSED = error(
    502, "The model runtime closed the connection.", kind="upstream_error", code="upstream_unavailable"
)
HEALTHY = answer(200, b'{"status": "ok"}')


def method_not_allowed(path: str, method: str) -> Answer:
    """405 with the ``Allow`` header."""
    return error(
        405,
        f"{path} accepts {method} only",
        kind="invalid_request_error",
        code="method_not_allowed",
        extra=b"Allow: %s\r\n" % method.encode(),
    )


def too_large(limit: int) -> Answer:
    """413 for a body over ``--max-body-bytes``."""
    return error(
        413,
        f"Request body is larger than {limit} bytes.",
        kind="invalid_request_error",
        code="request_too_large",
    )


def body_timeout(seconds: float) -> Answer:
    """408 for a body that did not arrive within ``--body-timeout``."""
    return error(
        408,
        f"The request body did not arrive within {seconds:g} s.",
        kind="invalid_request_error",
        code="request_timeout",
    )
