"""The renderer and the gateway agree: every rendered Deployment starts `slmctl gateway` with a
command line the gateway's own parser accepts, pointing at the runtime's real port and at a key
file that is actually mounted into the gateway container."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from slm_operator.api.parse import parse_document
from slm_operator.catalog.loader import builtin_config, load_config
from slm_operator.contract.names import GATEWAY_PORT, METRICS_PORT, OLLAMA_PORT, VLLM_PORT
from slm_operator.desired import desired_state
from slm_operator.documents import config_named_in
from slm_operator.gateway.cli import build_arg_parser, config_from_args

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example_models() -> list[tuple[str, dict[str, Any], Path]]:
    cases = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for body in yaml.safe_load_all(path.read_text()):
            if isinstance(body, dict) and body.get("kind") == "SmallLanguageModel":
                cases.append((f"{path.stem}/{body['metadata']['name']}", body, path))
    return cases


def _config_for(path: Path) -> Any:
    named = config_named_in(path)
    return builtin_config() if named is None else load_config(named)


def _deployment(body: dict[str, Any], path: Path) -> tuple[Any, dict[str, Any]]:
    state = desired_state(
        parse_document(body), _config_for(path), monitoring_available=True, keda_available=True
    )
    [deployment] = [o for o in state.objects if o["kind"] == "Deployment"]
    return state.plan, deployment


CASES = _example_models()
NO_AUTH = {
    "apiVersion": "slm.dev/v1alpha1",
    "kind": "SmallLanguageModel",
    "metadata": {"name": "open", "namespace": "t"},
    "spec": {"model": {"catalog": "qwen3-0.6b"}, "hardware": {"tier": "cpu"}, "auth": {"enabled": False}},
}


@pytest.mark.parametrize(("body", "path"), [(b, p) for _, b, p in CASES], ids=[c[0] for c in CASES])
def test_rendered_gateway_command_is_accepted_by_the_gateway(body: dict[str, Any], path: Path) -> None:
    plan, deployment = _deployment(body, path)
    pod = deployment["spec"]["template"]["spec"]
    [gateway] = [c for c in pod["containers"] if c["name"] == "gateway"]
    args = gateway["args"]
    assert args[0] == "gateway"  # the image's entrypoint is slmctl

    config = config_from_args(build_arg_parser(environ={}).parse_args(args[1:]), environ={})

    runtime_port = VLLM_PORT if plan.runtime == "vllm" else OLLAMA_PORT
    assert config.upstream == f"http://127.0.0.1:{runtime_port}"
    assert config.runtime == plan.runtime
    assert config.model == plan.served_name
    assert config.listen.port == GATEWAY_PORT
    assert config.metrics_listen.port == METRICS_PORT
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports == {"http": GATEWAY_PORT, "metrics": METRICS_PORT}

    # The key file lies inside a read-only mount of the API-key Secret in the gateway container.
    assert config.api_key_file is not None
    key_dir = PurePosixPath(config.api_key_file).parent
    [mount] = [m for m in gateway["volumeMounts"] if PurePosixPath(m["mountPath"]) == key_dir]
    assert mount["readOnly"] is True
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret_name = (
        body["spec"].get("auth", {}).get("apiKeySecretRef", {}).get("name") or f"{plan.name}-api-key"
    )
    assert volume["secret"]["secretName"] == secret_name
    assert {item["path"] for item in volume["secret"]["items"]} == {config.api_key_file.name}


def test_auth_disabled_renders_no_auth_which_the_gateway_accepts() -> None:
    _, deployment = _deployment(NO_AUTH, EXAMPLES / "phi-4-mini-cpu.yaml")
    [gateway] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "gateway"]
    assert "--no-auth" in gateway["args"]
    assert "--api-key-file" not in gateway["args"]
    config = config_from_args(build_arg_parser(environ={}).parse_args(gateway["args"][1:]), environ={})
    assert config.api_key_file is None
