"""OpenAI-style error answers made by the gateway itself.

Clients written for the OpenAI API read ``error.message``/``type``/``code``, so the gateway's
own refusals use the same shape as the runtimes' errors.
"""

from __future__ import annotations

import json

from aiohttp import web

_JSON = "application/json"


def error_body(message: str, *, kind: str, code: str) -> bytes:
    """The encoded ``{"error": {...}}`` document."""
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


def error_response(status: int, message: str, *, kind: str, code: str) -> web.Response:
    """A JSON error answer with ``status``."""
    return web.Response(status=status, body=error_body(message, kind=kind, code=code), content_type=_JSON)


# Built once: these are the answers the hot path hands out most.
_UNAUTHORIZED = error_body(
    "Missing or invalid API key: send 'Authorization: Bearer <key>'.",
    kind="invalid_request_error",
    code="invalid_api_key",
)
_NOT_FOUND = error_body(
    "Not found: this gateway serves /v1/chat/completions, /v1/completions, /v1/responses, "
    "/v1/embeddings and /v1/models (and, in front of Ollama, /api/chat, /api/generate, /api/embed, "
    "/api/embeddings, /api/show, /api/tags, /api/ps and /api/version).",
    kind="invalid_request_error",
    code="not_found",
)


def unauthorized() -> web.Response:
    """401 with ``WWW-Authenticate: Bearer`` (RFC 6750 §3)."""
    return web.Response(
        status=401, body=_UNAUTHORIZED, content_type=_JSON, headers={"WWW-Authenticate": "Bearer"}
    )


def not_found() -> web.Response:
    """404 for every path outside the forwarded set."""
    return web.Response(status=404, body=_NOT_FOUND, content_type=_JSON)


def upstream_error(status: int, message: str, code: str) -> web.Response:
    """502/503/504 when the runtime could not answer."""
    return error_response(status, message, kind="upstream_error", code=code)
