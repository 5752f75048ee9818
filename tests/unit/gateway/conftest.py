"""Fixtures: a fake runtime, a key file and a gateway in front of them, all on 127.0.0.1."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gateway_fakes import KEY, LOCAL, MODEL, FakeRuntime, StartGateway

from slm_operator.gateway.config import GatewayConfig
from slm_operator.gateway.server import RunningGateway, start_gateway


@pytest.fixture
async def vllm() -> AsyncIterator[FakeRuntime]:
    fake = FakeRuntime("vllm", [MODEL])
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def ollama() -> AsyncIterator[FakeRuntime]:
    fake = FakeRuntime("ollama", ["phi4-mini:latest"])
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text(KEY + "\n")
    return path


@pytest.fixture
async def start(key_file: Path) -> AsyncIterator[StartGateway]:
    """Start gateways in front of fake runtimes; all are stopped after the test."""
    started: list[RunningGateway] = []

    async def _start(runtime: FakeRuntime | str, **overrides: Any) -> RunningGateway:
        upstream = runtime if isinstance(runtime, str) else runtime.url
        kind = overrides.pop("runtime", "vllm" if isinstance(runtime, str) else runtime.runtime)
        config = GatewayConfig(
            upstream=upstream,
            runtime=kind,
            model=MODEL,
            listen=LOCAL,
            metrics_listen=LOCAL,
            api_key_file=key_file,
            readiness_cache_seconds=0.0,
            key_recheck_seconds=0.0,
            shutdown_grace_seconds=1.0,
        )
        running = await start_gateway(dataclasses.replace(config, **overrides))
        started.append(running)
        return running

    yield _start
    for running in started:
        await running.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session
