"""The fixed set of paths the gateway serves, and the headers it never forwards.

Only these routes reach the runtime: the OpenAI-compatible ones for both runtimes and, for
Ollama, the read-and-infer part of its native API (``/api/chat``, ``/api/tags`` ...; the
model-management part, ``/api/pull``, ``/api/delete`` and the like, stays closed). Anything else
(vLLM's ``/health``, ``/tokenize``, ``/metrics`` ...) is answered 404 by the gateway. The route
template doubles as the metric label, so label values form a fixed, small set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slm_operator.contract.runtime import Engine


@dataclass(frozen=True, slots=True)
class Route:
    """One forwarded route."""

    path: str
    method: str
    # POST routes carry a JSON object that the gateway validates before forwarding.
    json_body: bool
    # Routes whose answers report generated tokens (chat, completions, responses, generate).
    generates: bool
    # The path and method as the HTTP parser hands them over (bytes), for the request path.
    path_bytes: bytes = field(init=False, repr=False, compare=False)
    method_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path_bytes", self.path.encode())
        object.__setattr__(self, "method_bytes", self.method.encode())


OPENAI_ROUTES: tuple[Route, ...] = (
    Route("/v1/chat/completions", "POST", json_body=True, generates=True),
    Route("/v1/completions", "POST", json_body=True, generates=True),
    Route("/v1/responses", "POST", json_body=True, generates=True),
    Route("/v1/embeddings", "POST", json_body=True, generates=False),
    Route("/v1/models", "GET", json_body=False, generates=False),
)

# Ollama's native API (https://github.com/ollama/ollama/blob/main/docs/api.md), which clients such
# as Open WebUI, LangChain's Ollama integration and Continue speak. Inference and read-only
# listing only: /api/pull, /api/push, /api/create, /api/copy, /api/delete and /api/blobs/* would
# let a key holder change what the pod serves, so they are not here and get 404.
OLLAMA_ROUTES: tuple[Route, ...] = (
    Route("/api/chat", "POST", json_body=True, generates=True),
    Route("/api/generate", "POST", json_body=True, generates=True),
    Route("/api/embed", "POST", json_body=True, generates=False),
    Route("/api/embeddings", "POST", json_body=True, generates=False),
    Route("/api/show", "POST", json_body=True, generates=False),
    Route("/api/tags", "GET", json_body=False, generates=False),
    Route("/api/ps", "GET", json_body=False, generates=False),
    Route("/api/version", "GET", json_body=False, generates=False),
)

RUNTIME_ROUTES: dict[Engine, tuple[Route, ...]] = {
    Engine.VLLM: OPENAI_ROUTES,
    Engine.OLLAMA: OPENAI_ROUTES + OLLAMA_ROUTES,
}


def routes_for(runtime: Engine) -> dict[str, Route]:
    """The forwarded routes of ``runtime``, by path."""
    return {route.path: route for route in RUNTIME_ROUTES[runtime]}


# Every forwarded route of every runtime (the tests and the metrics' label set use it).
API_ROUTES: dict[str, Route] = {route.path: route for route in OPENAI_ROUTES + OLLAMA_ROUTES}
# Paths under which an unknown path asks for the key first, so an anonymous caller learns nothing.
KEYED_PREFIXES = ("/v1/", "/api/")

HEALTHZ = "/healthz"
READYZ = "/readyz"
# Label for every path outside the fixed set (never the raw path: unbounded cardinality); also
# the label of requests that the HTTP parser rejected before there was a path.
OTHER = "other"
ROUTE_LABELS: tuple[str, ...] = (*API_ROUTES, HEALTHZ, READYZ, OTHER)

# RFC 9110 §7.6.1 connection-specific headers. The headers named by every ``Connection`` header
# are dropped too (see ``frontend``).
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
# Credentials in every spelling clients use: the runtime never sees a key (OpenAI clients send
# Authorization; Anthropic- and Azure-style clients send x-api-key / api-key).
CREDENTIALS = frozenset({"authorization", "x-api-key", "api-key", "cookie"})
# Forwarding headers a client could forge; the gateway sets its own instead.
FORWARDING = frozenset(
    {"forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip"}
)
# Besides the above: the body length (re-framed on each hop), Host (the upstream's), Expect (the
# gateway already read the body) and Accept-Encoding (the gateway reads usage from the bytes it
# forwards, and compression on the loopback hop buys nothing).
NOT_FORWARDED_UPSTREAM = (
    HOP_BY_HOP | CREDENTIALS | FORWARDING | {"host", "content-length", "accept-encoding", "expect"}
)
# The gateway frames its own responses; the runtime's name and cookies stay inside the pod.
NOT_FORWARDED_DOWNSTREAM = HOP_BY_HOP | {"content-length", "server", "set-cookie"}
