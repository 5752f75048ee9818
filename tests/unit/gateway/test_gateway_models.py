"""--allow-model: the gateway passes on the served model and its LoRA adapters, and nothing else;
vLLM's adapter admin routes never reach the runtime."""

from __future__ import annotations

import aiohttp
import pytest
from gateway_fakes import MODEL, FakeRuntime, StartGateway, bearer, sample

from slm_operator.gateway.cli import build_arg_parser, config_from_args
from slm_operator.gateway.config import GatewayConfigError

pytestmark = pytest.mark.timeout(20)

CHAT = "/v1/chat/completions"
ADAPTERS = ("sql", "support")


def chat(model: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("name", [MODEL, *ADAPTERS])
async def test_served_name_and_adapters_pass(
    name: str, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    fake = FakeRuntime("vllm", [MODEL, *ADAPTERS])  # vLLM lists each --lora-modules name
    await fake.start()
    try:
        gateway = await start(fake, allowed_models=(MODEL, *ADAPTERS))
        async with client.post(gateway.api_url + CHAT, json=chat(name), headers=bearer()) as response:
            assert response.status == 200
    finally:
        await fake.stop()
    assert fake.hits[CHAT] == 1


@pytest.mark.parametrize("name", ["other-model", "SQL", f"{MODEL}-sql", 42, None])
async def test_other_names_are_refused_before_the_runtime(
    name: object, vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm, allowed_models=(MODEL, *ADAPTERS))
    async with client.post(gateway.api_url + CHAT, json=chat(name), headers=bearer()) as response:
        assert response.status == 404
        error = (await response.json())["error"]
    assert error["code"] == "model_not_found"
    assert error["message"].endswith(f"this endpoint serves: {MODEL}, sql, support.")
    assert vllm.hits[CHAT] == 0
    assert sample(gateway, "slm_gateway_requests_total", model=MODEL, route=CHAT, code="404") == 1


async def test_a_body_without_model_goes_to_the_runtime_default(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm, allowed_models=(MODEL,))
    body = {"messages": [{"role": "user", "content": "hi"}]}
    async with client.post(gateway.api_url + CHAT, json=body, headers=bearer()):
        pass
    assert vllm.hits[CHAT] == 1  # the runtime decides (vLLM serves its first model)


async def test_without_the_flag_every_name_is_passed_on(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    async with client.post(gateway.api_url + CHAT, json=chat("other-model"), headers=bearer()) as response:
        assert response.status == 404  # the runtime's own answer
        assert (await response.json()).get("object") == "error"
    assert vllm.hits[CHAT] == 1


async def test_ollama_names_match_with_or_without_latest(
    start: StartGateway, client: aiohttp.ClientSession
) -> None:
    # Ollama answers both spellings of a tag-less name; the fake lists both.
    fake = FakeRuntime("ollama", ["phi4-mini", "phi4-mini:latest", "phi4-mini:3.8b"])
    await fake.start()
    try:
        gateway = await start(fake, allowed_models=("phi4-mini",))
        for name, status in (("phi4-mini", 200), ("phi4-mini:latest", 200), ("phi4-mini:3.8b", 404)):
            async with client.post(gateway.api_url + CHAT, json=chat(name), headers=bearer()) as response:
                assert response.status == status, name
    finally:
        await fake.stop()


@pytest.mark.parametrize("path", ["/v1/load_lora_adapter", "/v1/unload_lora_adapter"])
async def test_vllm_adapter_admin_routes_never_reach_the_runtime(
    path: str, vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm, allowed_models=(MODEL, *ADAPTERS))
    body = {"lora_name": "evil", "lora_path": "/tmp/evil"}
    async with client.post(gateway.api_url + path, json=body, headers=bearer()) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    async with client.post(gateway.api_url + path, json=body) as response:
        assert response.status == 401  # and an anonymous caller learns nothing
    assert vllm.hits[path] == 0


def test_flag_repeats_and_environment_list() -> None:
    argv = ["--upstream", "http://127.0.0.1:1", "--runtime", "vllm", "--model", "m", "--no-auth"]
    parsed = config_from_args(
        build_arg_parser({}).parse_args([*argv, "--allow-model", "m", "--allow-model", "a"]), {}
    )
    assert parsed.allowed_models == ("m", "a")
    env = {"SLM_GATEWAY_ALLOW_MODEL": "m, a,b"}
    assert config_from_args(build_arg_parser(env).parse_args(argv), env).allowed_models == ("m", "a", "b")
    assert config_from_args(build_arg_parser({}).parse_args(argv), {}).allowed_models == ()
    with pytest.raises(GatewayConfigError, match="--allow-model: must not be empty"):
        config_from_args(build_arg_parser({}).parse_args([*argv, "--allow-model", " "]), {})
