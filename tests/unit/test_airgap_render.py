"""With the air-gapped operator configuration, the rendered pods name no public host.

Every image, environment value, argument and command of every container is checked: no
public registry or hub by name, and no image or Ollama tag that silently means one (an image
without a registry host is pulled from Docker Hub, an Ollama tag without a host from
registry.ollama.ai). The same check over the built-in configuration must find such names, so it
is not vacuous.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from slm_operator.api.config import OperatorConfig
from slm_operator.api.parse import parse_document
from slm_operator.catalog.loader import builtin_config, load_config
from slm_operator.desired import desired_state
from slm_operator.documents import config_named_in

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AIRGAP_MODELS = EXAMPLES / "airgap-models.yaml"
PUBLIC_HOSTS = (
    "docker.io",
    "registry-1.docker.io",
    "index.docker.io",
    "ghcr.io",
    "quay.io",
    "gcr.io",
    "registry.k8s.io",
    "nvcr.io",
    "public.ecr.aws",
    "huggingface.co",
    "hf.co",
    "cdn-lfs.huggingface.co",
    "registry.ollama.ai",
    "ollama.com",
    "github.com",
    "objects.githubusercontent.com",
)
_PUBLIC = re.compile(r"(^|[^a-z0-9.-])(" + "|".join(re.escape(h) for h in PUBLIC_HOSTS) + r")($|[^a-z0-9-])")


def _models() -> list[Any]:
    docs = yaml.safe_load_all(AIRGAP_MODELS.read_text(encoding="utf-8"))
    return [parse_document(d) for d in docs if isinstance(d, dict) and d.get("kind") == "SmallLanguageModel"]


def _airgap_config() -> OperatorConfig:
    named = config_named_in(AIRGAP_MODELS)
    assert named is not None
    return load_config(named)


def _pods(config: OperatorConfig) -> Iterator[tuple[str, dict[str, Any]]]:
    for model in _models():
        state = desired_state(model, config, monitoring_available=True)
        for obj in state.objects:
            if obj["kind"] == "Deployment":
                yield model.name, obj["spec"]["template"]["spec"]


def _registry_host(image: str) -> str | None:
    """The registry host an image names, or None when it falls back to Docker Hub."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def public_names_in_pod(name: str, pod: dict[str, Any]) -> list[str]:
    """Every place one pod spec names (or implies) a public host; the cluster tier runs it on the
    pods the API server stores."""
    found: list[str] = []
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        where = f"{name}/{container['name']}"
        image = container["image"]
        if _registry_host(image) is None or _PUBLIC.search(image):
            found.append(f"{where}: image {image}")
        texts = [*container.get("command", []), *container.get("args", [])]
        texts += [f"{e['name']}={e.get('value', '')}" for e in container.get("env", [])]
        found += [f"{where}: {text}" for text in texts if _PUBLIC.search(text)]
        for env in container.get("env", []):
            if env["name"] == "MODEL_TAG" and env["value"].count("/") < 2:
                found.append(f"{where}: Ollama tag {env['value']} is pulled from registry.ollama.ai")
    return found


def public_names(config: OperatorConfig) -> list[str]:
    """Every place a rendered pod names (or implies) a public host."""
    return [text for name, pod in _pods(config) for text in public_names_in_pod(name, pod)]


def test_airgapped_pods_name_no_public_host() -> None:
    assert public_names(_airgap_config()) == []


def test_the_check_finds_public_hosts_with_the_builtin_configuration() -> None:
    found = public_names(builtin_config())
    assert any("image vllm/vllm-openai:v0.11.0" in f for f in found)
    assert any("image ghcr.io/slm-operator/slm-operator:" in f for f in found)
    assert any("is pulled from registry.ollama.ai" in f for f in found)


def test_airgapped_pods_carry_the_pull_secrets() -> None:
    secrets = {
        name: [s["name"] for s in pod.get("imagePullSecrets", [])] for name, pod in _pods(_airgap_config())
    }
    assert secrets == {"qwen3-4b-offline": ["registry-pull", "team-ai-pull"], "qwen3-0-6b": ["registry-pull"]}


def test_offline_model_has_egress_closed_and_reads_the_claim() -> None:
    [offline] = [m for m in _models() if m.name == "qwen3-4b-offline"]
    state = desired_state(offline, _airgap_config(), monitoring_available=True)
    [policy] = [o for o in state.objects if o["kind"] == "NetworkPolicy"]
    ports = [p.get("port") for rule in policy["spec"]["egress"] for p in rule.get("ports", [])]
    assert 443 not in ports  # DNS only
    [deployment] = [o for o in state.objects if o["kind"] == "Deployment"]
    [runtime] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "runtime"]
    assert runtime["args"][0] == "/models/Qwen3-4B"
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in runtime["env"]


@pytest.mark.parametrize(
    "text",
    [
        "https://huggingface.co/Qwen",
        "docker.io/library/x:1",
        "registry.ollama.ai/library/qwen3:4b",
        "HF=hf.co",
    ],
)
def test_public_host_pattern_matches(text: str) -> None:
    assert _PUBLIC.search(text)


@pytest.mark.parametrize(
    "text",
    ["https://hf-mirror.internal.example", "registry.internal.example/ollama/ollama:0.12.6", "myhf.company"],
)
def test_public_host_pattern_ignores_internal_names(text: str) -> None:
    assert not _PUBLIC.search(text)
