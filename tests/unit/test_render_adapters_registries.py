"""Rendering LoRA adapters, image pull secrets and registry settings into the model pod."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slm_operator.api.config import OperatorConfig
from slm_operator.api.errors import ConfigError
from slm_operator.api.parse import parse_document
from slm_operator.catalog.loader import builtin_config, load_config_text
from slm_operator.desired import desired_state
from slm_operator.gateway.cli import build_arg_parser, config_from_args
from slm_operator.render.ollama import ollama_pull_ref
from slm_operator.render.vllm import FETCH_ADAPTERS_SCRIPT

SQL = {"name": "sql", "source": "hf://acme/qwen3-8b-sql-lora"}
SUPPORT = {"name": "support", "source": "pvc://adapters/support/v2"}
BILLING = {"name": "billing", "source": "pvc://adapters/billing"}
LEGAL = {"name": "legal", "source": "pvc://legal-loras"}


def pod_of(config: OperatorConfig | None = None, **spec: Any) -> dict[str, Any]:
    spec.setdefault("model", {"catalog": "qwen3-8b"})
    spec.setdefault("hardware", {"tier": "nvidia-l4"})
    model = parse_document(
        {
            "apiVersion": "slm.dev/v1alpha1",
            "kind": "SmallLanguageModel",
            "metadata": {"name": "qwen", "namespace": "ai"},
            "spec": spec,
        }
    )
    state = desired_state(model, config or builtin_config(), monitoring_available=False)
    [deployment] = [o for o in state.objects if o["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in [*pod.get("initContainers", []), *pod["containers"]] if c["name"] == name]
    return found


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["env"]}


def test_adapters_become_static_lora_modules() -> None:
    pod = pod_of(adapters=[SQL, SUPPORT, BILLING, LEGAL], lora={"maxRank": 32, "maxLoras": 2})
    args = container(pod, "runtime")["args"]
    start = args.index("--enable-lora")
    assert args[start:] == [
        "--enable-lora",
        "--max-loras", "2",
        "--max-lora-rank", "32",
        "--max-cpu-loras", "4",
        "--lora-modules",
        "sql=/var/cache/slm/adapters/sql",
        "support=/adapters/adapters/support/v2",
        "billing=/adapters/adapters/billing",
        "legal=/adapters/legal-loras",
    ]  # fmt: skip


def test_adapter_claims_are_mounted_read_only_once_each() -> None:
    pod = pod_of(adapters=[SQL, SUPPORT, BILLING, LEGAL])
    claims = {
        v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"] if v["name"].startswith("adapters-")
    }
    assert claims == {
        "adapters-0": {"claimName": "adapters", "readOnly": True},
        "adapters-1": {"claimName": "legal-loras", "readOnly": True},
    }
    mounts = {m["name"]: m for m in container(pod, "runtime")["volumeMounts"]}
    assert mounts["adapters-0"] == {"name": "adapters-0", "mountPath": "/adapters/adapters", "readOnly": True}
    assert mounts["adapters-1"] == {
        "name": "adapters-1",
        "mountPath": "/adapters/legal-loras",
        "readOnly": True,
    }
    # The gateway never sees the adapters' files.
    assert not any(m["name"].startswith("adapters-") for m in container(pod, "gateway")["volumeMounts"])


def test_an_adapter_on_the_models_own_claim_is_read_from_models() -> None:
    pod = pod_of(
        model={"source": "pvc://weights/Qwen3-8B", "parametersBillions": 8.2},
        adapters=[{"name": "tickets", "source": "pvc://weights/adapters/tickets"}, LEGAL],
    )
    assert "tickets=/models/adapters/tickets" in container(pod, "runtime")["args"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert sorted(claims) == ["legal-loras", "weights"]  # each claim once


def test_without_adapters_no_lora_flag_and_no_adapter_volume() -> None:
    pod = pod_of()
    assert not [a for a in container(pod, "runtime")["args"] if "lora" in a]
    assert not [v for v in pod["volumes"] if v["name"].startswith("adapters-")]


def test_gated_adapters_download_with_the_models_token_file() -> None:
    pod = pod_of(
        model={"catalog": "gemma-3-4b"},
        modelAccessSecretRef={"name": "hf-token", "key": "token"},
        adapters=[{"name": "triage", "source": "hf://acme/gemma-triage-lora"}],
    )
    fetch = container(pod, "fetch-adapters")
    assert env_of(fetch)["HF_TOKEN_PATH"] == "/var/run/slm/hf-token/token"
    mounts = {m["mountPath"]: m for m in fetch["volumeMounts"]}
    assert mounts["/var/run/slm/hf-token"]["readOnly"] is True
    assert "triage=/var/cache/slm/adapters/triage" in container(pod, "runtime")["args"]


def test_hub_adapters_are_fetched_before_vllm_starts_at_their_revision() -> None:
    pinned = {"name": "sql", "source": "hf://acme/qwen3-8b-sql-lora@0123abc"}
    pod = pod_of(adapters=[pinned, SUPPORT, {"name": "chat", "source": "hf://acme/chat-lora"}])
    [fetch] = pod["initContainers"]
    assert fetch["name"] == "fetch-adapters"
    assert fetch["image"] == container(pod, "runtime")["image"]
    assert fetch["command"] == ["python3", "-c", FETCH_ADAPTERS_SCRIPT]
    env = env_of(fetch)
    assert json.loads(env["ADAPTERS"]) == [
        {"name": "sql", "repo": "acme/qwen3-8b-sql-lora", "revision": "0123abc"},
        {"name": "chat", "repo": "acme/chat-lora", "revision": None},
    ]
    assert env["ADAPTERS_DIR"] == "/var/cache/slm/adapters"
    assert env["PULL_POLICY"] == "always"
    assert env["HF_HOME"] == "/var/cache/slm/huggingface"
    assert "nvidia.com/gpu" not in fetch["resources"].get("limits", {})
    assert {m["mountPath"] for m in fetch["volumeMounts"]} >= {"/var/cache/slm", "/tmp", "/home/slm"}


def test_closed_egress_uses_cached_adapters_offline() -> None:
    pod = pod_of(adapters=[SQL], network={"allowEgress": False})
    env = env_of(container(pod, "fetch-adapters"))
    assert env["PULL_POLICY"] == "if-missing"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_claim_only_adapters_need_no_fetch() -> None:
    assert "initContainers" not in pod_of(adapters=[SUPPORT])


def test_the_gateway_accepts_the_served_name_and_each_adapter() -> None:
    pod = pod_of(adapters=[SQL, SUPPORT])
    args = container(pod, "gateway")["args"]
    parsed = config_from_args(build_arg_parser(environ={}).parse_args(args[1:]), environ={})
    assert parsed.allowed_models == ("qwen", "sql", "support")


def test_pull_secrets_merge_the_operator_default_and_the_models_own() -> None:
    config = load_config_text("registries: {imagePullSecrets: [mirror-pull, shared]}\n", origin="t")
    pod = pod_of(config, imagePullSecrets=[{"name": "team-pull"}, {"name": "shared"}])
    assert pod["imagePullSecrets"] == [{"name": "mirror-pull"}, {"name": "shared"}, {"name": "team-pull"}]
    assert "imagePullSecrets" not in pod_of()


def test_hugging_face_mirror_reaches_vllm_as_hf_endpoint() -> None:
    config = load_config_text(
        "registries: {huggingFaceEndpoint: 'https://hf.mirror.internal/'}\n", origin="t"
    )
    assert env_of(container(pod_of(config), "runtime"))["HF_ENDPOINT"] == "https://hf.mirror.internal"
    assert "HF_ENDPOINT" not in env_of(container(pod_of(), "runtime"))


def test_ollama_registry_applies_to_catalog_tags() -> None:
    config = load_config_text("registries: {ollama: 'ollama.mirror.internal:5000'}\n", origin="t")
    pull = container(pod_of(config, model={"catalog": "qwen3-0.6b"}, hardware={"tier": "cpu"}), "pull-model")
    assert env_of(pull)["MODEL_TAG"].startswith("ollama.mirror.internal:5000/library/qwen3:")
    assert env_of(pull)["SERVED_NAME"] == "qwen"


def test_explicit_ollama_registry_source_is_pulled_as_written() -> None:
    pod = pod_of(model={"source": "ollama://registry.example.com/team/qwen3:4b"}, hardware={"tier": "cpu"})
    assert env_of(container(pod, "pull-model"))["MODEL_TAG"] == "registry.example.com/team/qwen3:4b"


@pytest.mark.parametrize(
    ("ref", "registry", "pulled"),
    [
        ("qwen3:0.6b", None, "qwen3:0.6b"),
        ("qwen3:0.6b", "mirror.internal", "mirror.internal/library/qwen3:0.6b"),
        ("qwen3:0.6b", "mirror.internal/models", "mirror.internal/models/qwen3:0.6b"),
        ("hf.co/org/model:q4", "mirror.internal", "hf.co/org/model:q4"),
        ("team/qwen3:4b", "mirror.internal:5000", "mirror.internal:5000/team/qwen3:4b"),
    ],
)
def test_ollama_pull_ref(ref: str, registry: str | None, pulled: str) -> None:
    assert ollama_pull_ref(ref, registry) == pulled


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("registries: {ollama: 'Bad_Host'}\n", "registries.ollama", "not a lower-case DNS name"),
        ("registries: {ollama: 'mirror.internal/a/b'}\n", "registries.ollama", "not an Ollama namespace"),
        ("registries: {ollama: 'mirror:0'}\n", "registries.ollama", "port 0, outside 1-65535"),
        (
            "registries: {huggingFaceEndpoint: 'hf-mirror'}\n",
            "registries.huggingFaceEndpoint",
            "not an http(s) URL",
        ),
        (
            "registries: {imagePullSecrets: [Pull_Secret]}\n",
            "registries.imagePullSecrets",
            "not a Secret name",
        ),
        ("registries: {mirror: x}\n", "registries.mirror", "unknown field"),
    ],
)
def test_bad_registry_settings_name_the_field(text: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, origin="config.yaml")
    assert f"config.yaml: {path}: " in str(caught.value)
    assert message in str(caught.value)
