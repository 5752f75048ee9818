"""Which paths reach the runtime, and the probes: /healthz always, /readyz only with the model there."""

from __future__ import annotations

import aiohttp
import pytest
from gateway_fakes import MODEL, FakeRuntime, StartGateway, bearer, sample
from yarl import URL

from slm_operator.gateway.readiness import ollama_tag

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("POST", "/v1/chat/completions", {"model": MODEL, "messages": []}),
        ("POST", "/v1/completions", {"model": MODEL, "prompt": "hi"}),
        ("POST", "/v1/embeddings", {"model": MODEL, "input": "hi"}),
        ("POST", "/v1/responses", {"model": MODEL, "input": "hi"}),
        ("GET", "/v1/models", None),
    ],
)
@pytest.mark.parametrize("runtime", ["vllm", "ollama"])
async def test_openai_routes_pass_through(
    runtime: str,
    method: str,
    route: str,
    body: dict[str, object] | None,
    start: StartGateway,
    client: aiohttp.ClientSession,
) -> None:
    fake = FakeRuntime(runtime, [MODEL])
    await fake.start()
    try:
        gateway = await start(fake)
        async with client.request(method, gateway.api_url + route, json=body, headers=bearer()) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            await response.json()
    finally:
        await fake.stop()
    assert fake.hits[route] == 1
    assert sample(gateway, "slm_gateway_requests_total", model=MODEL, route=route, code="200") == 1


@pytest.mark.parametrize(
    "path",
    ["/api/tags", "/api/generate", "/api/pull", "/", "/health", "/metrics", "/tokenize", "/version", "/v1"],
)
async def test_everything_else_is_404_at_the_gateway(
    path: str, vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    for method in ("GET", "POST"):
        async with client.request(method, gateway.api_url + path, headers=bearer()) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "not_found"
    assert vllm.hits["/tokenize"] == 0
    assert vllm.hits["/metrics"] == 0
    # The raw path never becomes a label value.
    assert sample(gateway, "slm_gateway_requests_total", model=MODEL, route="other", code="404") == 2


async def test_unknown_v1_paths_ask_for_the_key_first(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    async with client.post(gateway.api_url + "/v1/audio/transcriptions") as response:
        assert response.status == 401
    async with client.post(gateway.api_url + "/v1/audio/transcriptions", headers=bearer()) as response:
        assert response.status == 404


async def test_dot_segments_cannot_reach_native_paths(
    ollama: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(ollama)
    url = URL(gateway.api_url + "/v1/../api/tags", encoded=True)
    async with client.get(url, headers=bearer()) as response:
        assert response.status == 404
    assert ollama.hits["/api/tags"] == 0


async def test_wrong_method_gets_405(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    async with client.get(gateway.api_url + "/v1/chat/completions", headers=bearer()) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
    async with client.post(gateway.api_url + "/v1/models", headers=bearer()) as response:
        assert response.status == 405


async def test_healthz_answers_without_a_key_even_with_the_runtime_down(
    start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start("http://127.0.0.1:9")  # discard port: nothing answers
    async with client.get(gateway.api_url + "/healthz") as response:
        assert response.status == 200
    async with client.get(gateway.metrics_url + "/healthz") as response:
        assert response.status == 200
    async with client.get(gateway.api_url + "/readyz") as response:
        assert response.status == 503
        assert not (await response.json())["ready"]
    assert sample(gateway, "slm_gateway_upstream_up", model=MODEL) == 0


async def test_vllm_readyz_waits_for_health_and_the_served_model(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    vllm.models = []
    vllm.healthy = False
    gateway = await start(vllm)

    async def readyz() -> tuple[int, str]:
        async with client.get(gateway.api_url + "/readyz") as response:
            return response.status, (await response.json())["reason"]

    assert await readyz() == (503, "vllm /health answered 503")
    vllm.healthy = True
    assert await readyz() == (503, f"vllm does not serve model {MODEL!r} yet")
    assert sample(gateway, "slm_gateway_upstream_up", model=MODEL) == 0
    vllm.models = ["some-other-model"]
    assert (await readyz())[0] == 503
    vllm.models = ["some-other-model", MODEL]
    assert await readyz() == (200, f"vllm serves {MODEL!r}")
    assert sample(gateway, "slm_gateway_upstream_up", model=MODEL) == 1


@pytest.mark.parametrize(
    ("configured", "listed", "ready"),
    [
        ("phi4-mini", [], False),
        ("phi4-mini", ["phi4-mini:latest"], True),
        ("phi4-mini", ["phi4-mini:3.8b-q4_K_M"], False),
        ("phi4-mini:3.8b-q4_K_M", ["phi4-mini:3.8b-q4_K_M"], True),
        ("phi4-mini:latest", ["phi4-mini"], True),
        ("qwen3-0-6b", ["qwen3-0-6b-base:latest"], False),
    ],
)
async def test_ollama_readyz_matches_tags(
    configured: str,
    listed: list[str],
    ready: bool,
    ollama: FakeRuntime,
    start: StartGateway,
    client: aiohttp.ClientSession,
) -> None:
    ollama.models = listed
    gateway = await start(ollama, model=configured)
    async with client.get(gateway.api_url + "/readyz") as response:
        assert response.status == (200 if ready else 503)
    assert sample(gateway, "slm_gateway_upstream_up", model=configured) == (1 if ready else 0)


async def test_ollama_readyz_turns_true_when_the_model_appears(
    ollama: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    ollama.models = []
    gateway = await start(ollama, model="phi4-mini")
    async with client.get(gateway.api_url + "/readyz") as response:
        assert response.status == 503
    ollama.models = ["phi4-mini:latest"]  # the init container's `ollama create` finished
    async with client.get(gateway.api_url + "/readyz") as response:
        assert response.status == 200


async def test_readiness_is_cached_so_probes_do_not_hammer_the_runtime(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm, readiness_cache_seconds=60.0)
    for _ in range(5):
        async with client.get(gateway.api_url + "/readyz") as response:
            assert response.status == 200
    assert vllm.hits["/health"] == 1
    assert vllm.hits["/v1/models"] == 1


def test_ollama_tag_defaults_to_latest() -> None:
    assert ollama_tag("phi4-mini") == "phi4-mini:latest"
    assert ollama_tag("phi4-mini:q8_0") == "phi4-mini:q8_0"
    assert ollama_tag("registry.local:5000/team/model") == "registry.local:5000/team/model:latest"


NATIVE_ALLOWED = [
    ("POST", "/api/chat", {"model": MODEL, "messages": [], "stream": False}),
    ("POST", "/api/generate", {"model": MODEL, "prompt": "hi", "stream": False}),
    ("POST", "/api/embed", {"model": MODEL, "input": "hi"}),
    ("POST", "/api/embeddings", {"model": MODEL, "prompt": "hi"}),
    ("POST", "/api/show", {"model": MODEL}),
    ("GET", "/api/tags", None),
    ("GET", "/api/ps", None),
    ("GET", "/api/version", None),
]


@pytest.mark.parametrize(("method", "route", "body"), NATIVE_ALLOWED)
async def test_ollamas_native_api_passes_with_a_key(
    method: str,
    route: str,
    body: dict[str, object] | None,
    ollama: FakeRuntime,
    start: StartGateway,
    client: aiohttp.ClientSession,
) -> None:
    gateway = await start(ollama)
    async with client.request(method, gateway.api_url + route, json=body) as response:
        assert response.status == 401  # never without the key
    async with client.request(method, gateway.api_url + route, json=body, headers=bearer()) as response:
        assert response.status == 200
        await response.json()
    assert ollama.hits[route] == 1
    assert sample(gateway, "slm_gateway_requests_total", model=MODEL, route=route, code="200") == 1
    assert sample(gateway, "slm_gateway_requests_total", model=MODEL, route=route, code="401") == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/pull"),
        ("POST", "/api/push"),
        ("POST", "/api/create"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/blobs/sha256:0123"),
        ("HEAD", "/api/blobs/sha256:0123"),
        ("POST", "/api/../api/pull"),
        ("POST", "/api/chat/../pull"),
    ],
)
async def test_ollamas_model_management_stays_closed(
    method: str, path: str, ollama: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(ollama)
    url = URL(gateway.api_url + path, encoded=True)
    async with client.request(method, url, json={"model": MODEL}, headers=bearer()) as response:
        assert response.status == 404
    assert not [seen for seen in ollama.seen if seen.path.startswith("/api/") and seen.path != "/api/tags"]
    # Counted under the bounded label, never the raw path.
    assert sample(gateway, "slm_gateway_requests_total", model=MODEL, route="other", code="404") == 1


async def test_the_native_api_is_ollamas_only(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    async with client.post(
        gateway.api_url + "/api/chat", json={"model": MODEL}, headers=bearer()
    ) as response:
        assert response.status == 404
