"""The fixed set of paths the gateway serves, and the headers it never forwards.

Only these OpenAI-compatible routes reach the runtime; anything else (Ollama's native
``/api/*``, vLLM's ``/health``, ``/tokenize``, ``/metrics`` ...) is answered 404 by the gateway.
The route template doubles as the metric label, so label values form a fixed, small set.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    """One forwarded route."""

    path: str
    method: str
    # POST routes carry a JSON object that the gateway validates before forwarding.
    json_body: bool
    # Routes whose answers report generated tokens (chat, completions, responses).
    generates: bool


API_ROUTES: dict[str, Route] = {
    route.path: route
    for route in (
        Route("/v1/chat/completions", "POST", json_body=True, generates=True),
        Route("/v1/completions", "POST", json_body=True, generates=True),
        Route("/v1/responses", "POST", json_body=True, generates=True),
        Route("/v1/embeddings", "POST", json_body=True, generates=False),
        Route("/v1/models", "GET", json_body=False, generates=False),
    )
}

HEALTHZ = "/healthz"
READYZ = "/readyz"
# Label for every path outside the fixed set (never the raw path: unbounded cardinality).
OTHER = "other"
ROUTE_LABELS: tuple[str, ...] = (*API_ROUTES, HEALTHZ, READYZ, OTHER)

# RFC 9110 §7.6.1 connection-specific headers, plus the ones the proxy itself must set:
# the body length (re-framed on each hop), Host (the upstream's), the client's credentials
# (the runtime never sees the API key) and Accept-Encoding (the gateway reads usage from the
# bytes it forwards, and compression on the loopback hop buys nothing).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED_UPSTREAM = HOP_BY_HOP | {"host", "content-length", "authorization", "accept-encoding", "expect"}
# The gateway's server frames its own responses and says its own name.
NOT_FORWARDED_DOWNSTREAM = HOP_BY_HOP | {"content-length", "server", "date"}
