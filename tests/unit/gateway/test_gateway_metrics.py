"""Metrics: latency and time to first token against injected delays, token counts, the ports."""

from __future__ import annotations

import json

import aiohttp
import pytest
from gateway_fakes import MODEL, FakeRuntime, StartGateway, bearer, sample
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(20)

CHAT = "/v1/chat/completions"
# Tolerance for the timing checks below: the gateway adds well under a millisecond, the rest is
# scheduling noise on a busy CI machine. Lower bounds are exact (a delay cannot be skipped).
SLACK = 0.5


async def chat(
    client: aiohttp.ClientSession, url: str, *, stream: bool, usage: bool = False, route: str = CHAT
) -> bytes:
    body: dict[str, object] = {"model": MODEL, "stream": stream}
    body.update({"messages": [{"role": "user", "content": "hi"}]} if route == CHAT else {"prompt": "hi"})
    if usage:
        body["stream_options"] = {"include_usage": True}
    async with client.post(url + route, json=body, headers=bearer()) as response:
        assert response.status == 200
        return await response.read()


async def test_stream_ttft_and_duration_follow_the_injected_delays(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    vllm.script.delays = [0.3, 0.1, 0.1, 0.1]  # first token after 0.3 s, the stream ends after 0.6 s
    gateway = await start(vllm)
    await chat(client, gateway.api_url, stream=True)
    labels = {"model": MODEL, "route": CHAT}
    assert sample(gateway, "slm_gateway_time_to_first_token_seconds_count", **labels) == 1
    ttft = sample(gateway, "slm_gateway_time_to_first_token_seconds_sum", **labels)
    duration = sample(gateway, "slm_gateway_request_duration_seconds_sum", **labels)
    assert 0.3 <= ttft < 0.3 + SLACK
    assert 0.6 <= duration < 0.6 + SLACK
    assert ttft < duration


async def test_non_streamed_ttft_is_the_whole_answer(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    vllm.answer_delay = 0.25
    gateway = await start(vllm)
    await chat(client, gateway.api_url, stream=False)
    labels = {"model": MODEL, "route": CHAT}
    ttft = sample(gateway, "slm_gateway_time_to_first_token_seconds_sum", **labels)
    duration = sample(gateway, "slm_gateway_request_duration_seconds_sum", **labels)
    assert 0.25 <= ttft <= duration < 0.25 + SLACK


@pytest.mark.parametrize(
    ("stream", "usage", "reported", "expected"),
    [
        (False, False, 7, 7),  # usage.completion_tokens of the answer
        (False, False, None, 0),  # no usage, nothing to count in a non-streamed answer
        (True, True, 11, 11),  # the final usage chunk wins over counting
        (True, False, 11, 4),  # no usage chunk requested: the four content chunks are counted
        (True, True, None, 4),  # usage requested but not sent: counted
    ],
    ids=["usage", "no-usage", "stream-usage", "stream-counted", "stream-usage-missing"],
)
async def test_output_tokens(
    stream: bool,
    usage: bool,
    reported: int | None,
    expected: int,
    vllm: FakeRuntime,
    start: StartGateway,
    client: aiohttp.ClientSession,
) -> None:
    vllm.usage_completion_tokens = reported
    gateway = await start(vllm)
    await chat(client, gateway.api_url, stream=stream, usage=usage)
    assert sample(gateway, "slm_gateway_output_tokens_total", model=MODEL, route=CHAT) == expected


async def test_completions_stream_tokens_are_counted(
    ollama: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    ollama.models.append(MODEL)
    ollama.script.tokens = ["a", "b", "c"]
    gateway = await start(ollama)
    await chat(client, gateway.api_url, stream=True, route="/v1/completions")
    assert sample(gateway, "slm_gateway_output_tokens_total", model=MODEL, route="/v1/completions") == 3


async def test_responses_usage_is_read(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    async with client.post(gateway.api_url + "/v1/responses", json={"input": "hi"}, headers=bearer()) as r:
        assert r.status == 200
    # usage.output_tokens is 2; "max_output_tokens": 999 in the same answer must not be mistaken for it.
    assert sample(gateway, "slm_gateway_output_tokens_total", model=MODEL, route="/v1/responses") == 2


async def test_metrics_port_exposes_the_gateway_metrics(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    await chat(client, gateway.api_url, stream=False)
    async with client.get(gateway.api_url + "/v1/models") as unauthorized:
        assert unauthorized.status == 401
    async with client.get(gateway.metrics_url + "/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert {
        "slm_gateway_requests",
        "slm_gateway_request_duration_seconds",
        "slm_gateway_time_to_first_token_seconds",
        "slm_gateway_output_tokens",
        "slm_gateway_in_flight_requests",
        "slm_gateway_upstream_up",
    } <= set(families)
    requests = {
        (s.labels["route"], s.labels["code"]): s.value
        for s in families["slm_gateway_requests"].samples
        if s.name == "slm_gateway_requests_total"
    }
    assert requests == {(CHAT, "200"): 1.0, ("/v1/models", "401"): 1.0}


async def test_vllm_runtime_metrics_are_re_exposed(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(vllm)
    async with client.get(gateway.metrics_url + "/metrics/runtime") as response:
        assert response.status == 200
        assert "vllm:num_requests_running" in await response.text()


async def test_ollama_has_no_runtime_metrics(
    ollama: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    gateway = await start(ollama)
    async with client.get(gateway.metrics_url + "/metrics/runtime") as response:
        assert response.status == 404
        assert "ollama exposes no Prometheus metrics" in await response.text()


async def test_two_gateways_keep_separate_registries(
    vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    first = await start(vllm)
    second = await start(vllm)
    await chat(client, first.api_url, stream=False)
    await chat(client, first.api_url, stream=False)
    await chat(client, second.api_url, stream=False)
    assert sample(first, "slm_gateway_requests_total", model=MODEL, route=CHAT, code="200") == 2
    assert sample(second, "slm_gateway_requests_total", model=MODEL, route=CHAT, code="200") == 1


async def test_access_log_line_has_the_fields(
    caplog: pytest.LogCaptureFixture, vllm: FakeRuntime, start: StartGateway, client: aiohttp.ClientSession
) -> None:
    caplog.set_level("INFO", logger="slm_operator.gateway.access")
    gateway = await start(vllm)
    await chat(client, gateway.api_url, stream=True, usage=True)
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "slm_operator.gateway.access"]
    assert line["method"] == "POST"
    assert line["route"] == CHAT
    assert line["status"] == 200
    assert line["model"] == MODEL
    assert line["stream"] is True
    assert line["output_tokens"] == 7
    assert 0 < line["ttft_s"] <= line["duration_s"]
    assert line["error"] is None
