"""``slmctl gateway``: the rendered command line, environment variables, refusals, a real process."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from gateway_fakes import KEY, MODEL, FakeRuntime, bearer

from slm_operator.contract.names import API_KEY_MOUNT_DIR, GATEWAY_PORT, METRICS_PORT
from slm_operator.contract.runtime import Engine
from slm_operator.gateway.cli import build_arg_parser, config_from_args, env_name, main
from slm_operator.gateway.config import Address, GatewayConfig, GatewayConfigError

pytestmark = pytest.mark.timeout(30)

LISTENING = re.compile(rb"on 127\.0\.0\.1:(\d+) \(metrics on 127\.0\.0\.1:(\d+)\)")

# The command line the renderer writes into the Deployment (render/gateway_sidecar.py); the rendered one
# itself is checked in tests/unit/test_rendered_gateway_command.py.
RENDERED_VLLM = (
    "--upstream http://127.0.0.1:8001 --runtime vllm --model phi-4-mini "
    "--listen 0.0.0.0:8000 --metrics-listen 0.0.0.0:9090 --allow-model phi-4-mini --allow-model sql "
    "--api-key-file /var/run/slm/api-key/api-key"
)
RENDERED_OLLAMA = (
    "--upstream http://127.0.0.1:11434 --runtime ollama --model qwen3-1-7b "
    "--listen 0.0.0.0:8000 --metrics-listen 0.0.0.0:9090 --allow-model qwen3-1-7b --no-auth"
)

# Everything but the key decision.
BARE = "--upstream http://127.0.0.1:1 --runtime vllm --model m"


def parse(argv: str, environ: dict[str, str] | None = None) -> GatewayConfig:
    env = environ or {}
    return config_from_args(build_arg_parser(env).parse_args(shlex.split(argv)), env)


def test_the_rendered_vllm_command_line() -> None:
    config = parse(RENDERED_VLLM)
    assert config == GatewayConfig(
        upstream="http://127.0.0.1:8001",
        runtime="vllm",
        model="phi-4-mini",
        listen=Address("0.0.0.0", GATEWAY_PORT),
        metrics_listen=Address("0.0.0.0", METRICS_PORT),
        api_key_file=Path(API_KEY_MOUNT_DIR) / "api-key",
        allowed_models=("phi-4-mini", "sql"),
    )
    assert config.auth_enabled


def test_the_rendered_ollama_command_line_without_auth() -> None:
    config = parse(RENDERED_OLLAMA)
    assert config.runtime == "ollama"
    assert config.upstream == "http://127.0.0.1:11434"
    assert not config.auth_enabled


def test_the_runtime_is_stored_as_the_engine_the_renderer_names() -> None:
    assert parse(RENDERED_VLLM).runtime is Engine.VLLM
    assert parse(RENDERED_OLLAMA).runtime is Engine.OLLAMA


def test_an_unknown_runtime_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(BARE.replace("vllm", "tgi") + " --no-auth")
    assert "--runtime: invalid choice: 'tgi' (choose from 'vllm', 'ollama')" in capsys.readouterr().err
    # The environment is not checked by argparse; the configuration refuses it the same way.
    with pytest.raises(
        GatewayConfigError, match=re.escape("--runtime: expected one of vllm, ollama, got 'tgi'")
    ):
        parse("--upstream http://127.0.0.1:1 --model m --no-auth", {"SLM_GATEWAY_RUNTIME": "tgi"})


def test_defaults() -> None:
    config = parse("--upstream http://127.0.0.1:8001 --runtime vllm --model m --api-key-file /k")
    assert config.listen == Address("0.0.0.0", 8000)
    assert config.metrics_listen == Address("0.0.0.0", 9090)
    assert config.max_body_bytes == 1024 * 1024
    assert (config.header_timeout, config.body_timeout, config.idle_timeout) == (10.0, 30.0, 60.0)
    assert config.max_connections == 1000


def test_every_flag_from_the_environment() -> None:
    environ = {
        "SLM_GATEWAY_UPSTREAM": "http://127.0.0.1:11434/",
        "SLM_GATEWAY_RUNTIME": "ollama",
        "SLM_GATEWAY_MODEL": "phi4-mini",
        "SLM_GATEWAY_LISTEN": "127.0.0.1:18000",
        "SLM_GATEWAY_METRICS_LISTEN": "[::1]:19090",
        "SLM_GATEWAY_API_KEY_FILE": "/keys/api-key",
        "SLM_GATEWAY_MAX_BODY_BYTES": "2048",
        "SLM_GATEWAY_UPSTREAM_TIMEOUT": "12.5",
        "SLM_GATEWAY_HEADER_TIMEOUT": "3",
        "SLM_GATEWAY_BODY_TIMEOUT": "4.5",
        "SLM_GATEWAY_IDLE_TIMEOUT": "20",
        "SLM_GATEWAY_MAX_CONNECTIONS": "256",
    }
    config = parse("", environ)
    assert config.upstream == "http://127.0.0.1:11434"
    assert config.runtime == "ollama"
    assert config.model == "phi4-mini"
    assert config.listen == Address("127.0.0.1", 18000)
    assert config.metrics_listen == Address("::1", 19090)
    assert config.api_key_file == Path("/keys/api-key")
    assert config.max_body_bytes == 2048
    assert config.upstream_timeout == 12.5
    assert (config.header_timeout, config.body_timeout, config.idle_timeout) == (3.0, 4.5, 20.0)
    assert config.max_connections == 256


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes", "on"])
def test_no_auth_from_the_environment(value: str) -> None:
    config = parse("--upstream http://127.0.0.1:1 --runtime vllm --model m", {"SLM_GATEWAY_NO_AUTH": value})
    assert not config.auth_enabled


def test_a_flag_wins_over_the_environment() -> None:
    config = parse(RENDERED_VLLM, {"SLM_GATEWAY_MODEL": "from-env", "SLM_GATEWAY_LISTEN": "127.0.0.1:1"})
    assert config.model == "phi-4-mini"
    assert config.listen == Address("0.0.0.0", 8000)


def test_env_names() -> None:
    assert env_name("--api-key-file") == "SLM_GATEWAY_API_KEY_FILE"
    assert env_name("--no-auth") == "SLM_GATEWAY_NO_AUTH"


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (
            "--upstream http://127.0.0.1:1 --runtime vllm --model m",
            {},
            "refusing to start without an API key",
        ),
        (
            "--upstream http://127.0.0.1:1 --runtime vllm --model m",
            {"SLM_GATEWAY_NO_AUTH": "false"},
            "refusing to start without an API key",
        ),
        (RENDERED_VLLM + " --no-auth", {}, "not both"),
        (RENDERED_VLLM, {"SLM_GATEWAY_NO_AUTH": "true"}, "not both"),
        (
            "--upstream http://127.0.0.1:1 --runtime vllm --model m",
            {"SLM_GATEWAY_NO_AUTH": "maybe"},
            "true or false",
        ),
        (RENDERED_VLLM.replace("0.0.0.0:8000", "8000"), {}, "--listen"),
        (RENDERED_VLLM.replace("0.0.0.0:9090", "0.0.0.0:99999"), {}, "--metrics-listen"),
        (RENDERED_VLLM.replace("0.0.0.0:8000", "::1:8000"), {}, "brackets"),
        (RENDERED_VLLM.replace("http://127.0.0.1:8001", "127.0.0.1:8001"), {}, "--upstream"),
        (RENDERED_VLLM + " --max-body-bytes 1MiB", {}, "--max-body-bytes"),
        (RENDERED_VLLM + " --max-body-bytes 0", {}, "--max-body-bytes"),
        (RENDERED_VLLM + " --upstream-timeout -1", {}, "--upstream-timeout"),
        (RENDERED_VLLM + " --header-timeout 0", {}, "--header-timeout"),
        (RENDERED_VLLM + " --body-timeout soon", {}, "--body-timeout"),
        (RENDERED_VLLM + " --idle-timeout nan", {}, "--idle-timeout"),
        (RENDERED_VLLM + " --max-connections 0", {}, "--max-connections"),
        (RENDERED_VLLM + " --max-connections many", {}, "--max-connections"),
        (RENDERED_VLLM, {"SLM_GATEWAY_RUNTIME": "tgi", "SLM_GATEWAY_MODEL": ""}, None),
    ],
)
def test_settings_that_cannot_work_are_refused(
    argv: str, environ: dict[str, str], message: str | None
) -> None:
    if message is None:  # flags win: the bad environment is never looked at
        parse(argv, environ)
        return
    with pytest.raises(GatewayConfigError, match=re.escape(message)):
        parse(argv, environ)


def test_main_refuses_to_start_without_a_key_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLM_GATEWAY_NO_AUTH", raising=False)
    monkeypatch.delenv("SLM_GATEWAY_API_KEY_FILE", raising=False)
    assert main(["--upstream", "http://127.0.0.1:8001", "--runtime", "vllm", "--model", "m"]) == 2
    err = capsys.readouterr().err
    assert "refusing to start without an API key" in err
    assert "--no-auth" in err


def test_main_reports_a_missing_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLM_GATEWAY_UPSTREAM", raising=False)
    assert main(["--runtime", "vllm", "--model", "m", "--no-auth"]) == 2
    assert "--upstream" in capsys.readouterr().err


async def test_a_real_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    fake = FakeRuntime("vllm", [MODEL])
    await fake.start()
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "slm_operator.gateway",
        *shlex.split(f"--upstream {fake.url} --runtime vllm --model {MODEL}"),
        *shlex.split(f"--listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --api-key-file {key_file}"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        assert process.stdout is not None
        async with asyncio.timeout(15):  # start-up of a fresh interpreter, bounded
            while True:
                line = await process.stderr.readline()
                assert line, "the gateway exited before it was listening"
                if started := LISTENING.search(line):
                    break
        api, metrics = (int(port) for port in started.groups())
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
            async with client.get(f"http://127.0.0.1:{api}/readyz") as response:
                assert response.status == 200
            async with client.get(f"http://127.0.0.1:{api}/v1/models", headers=bearer()) as response:
                assert response.status == 200
            async with client.get(f"http://127.0.0.1:{metrics}/metrics") as response:
                assert "slm_gateway_requests_total" in await response.text()
        # One JSON access-log line per request on stdout, in order.
        access = [json.loads(await asyncio.wait_for(process.stdout.readline(), 5)) for _ in range(2)]
        assert [(line["route"], line["status"]) for line in access] == [("/readyz", 200), ("/v1/models", 200)]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await fake.stop()
