"""The SmallLanguageModel spec contract (docs/api.md): what is accepted, what is refused, and
that every refusal names the user's field path and says something specific.

The invalid table is shared with tests/contract/test_crd_contract.py: cases whose last element
names a CEL rule message must also be refused by that rule of the generated CRD.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from slm_operator.api.errors import SpecError
from slm_operator.api.modelfile_params import OLLAMA_PARAMETERS
from slm_operator.api.parse import parse_document, parse_spec
from slm_operator.api.spec import SmallLanguageModelSpec
from slm_operator.api.vllm_args import VLLM_ALLOWED_FLAGS, parse_vllm_args, vllm_flag_values

ROOT = Path(__file__).resolve().parents[2]

MINIMAL_DOC: dict[str, Any] = {
    "apiVersion": "slm.dev/v1alpha1",
    "kind": "SmallLanguageModel",
    "metadata": {"name": "phi-4-mini", "namespace": "ai"},
    "spec": {"model": {"catalog": "phi-4-mini"}},
}

# The full example of docs/api.md, field for field (commented alternatives left out).
FULL_DOC: dict[str, Any] = yaml.safe_load(
    """
apiVersion: slm.dev/v1alpha1
kind: SmallLanguageModel
metadata: {name: phi-4-mini, namespace: ai}
spec:
  model:
    catalog: phi-4-mini
    revision: main
    servedName: phi-4-mini
    contextLength: 8192
  hardware:
    tier: gpu-small
    gpus: 1
  runtime: auto
  quantization: auto
  maxConcurrency: 8
  replicas: 1
  autoscaling:
    enabled: false
    minReplicas: 1
    maxReplicas: 4
    targetCPUUtilizationPercentage: 70
    targetInFlightRequests: 4
  auth:
    enabled: true
    apiKeySecretRef: {name: my-key, key: api-key}
  modelAccessSecretRef: {name: hf, key: token}
  network:
    allowFrom:
      - namespaceSelector: {matchLabels: {team: web}}
    allowEgress: true
  monitoring:
    serviceMonitor: auto
    prometheusRule: auto
  storage:
    size: 20Gi
    storageClassName: standard
    accessMode: ReadWriteMany
  ollama:
    modelfile:
      system: "You are a concise assistant."
      parameters: {temperature: 0.3, num_ctx: 8192}
  vllm:
    extraArgs: ["--enable-prefix-caching"]
  resources: {}
  scheduling: {nodeSelector: {}, tolerations: [], affinity: {}, priorityClassName: ""}
  image: ""
"""
)


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every SmallLanguageModel document in examples/*.yaml, as (file#index, document)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict) and doc.get("kind") == "SmallLanguageModel":
                found.append((f"{path.name}#{index}", doc))
    return found


def with_spec(**changes: Any) -> dict[str, Any]:
    """The minimal document with top-level spec keys replaced."""
    doc = copy.deepcopy(MINIMAL_DOC)
    doc["spec"].update(changes)
    return doc


def vllm(*args: str) -> dict[str, Any]:
    return with_spec(vllm={"extraArgs": list(args)})


def modelfile(**fields: Any) -> dict[str, Any]:
    return with_spec(ollama={"modelfile": fields})


def params(**parameters: Any) -> dict[str, Any]:
    return modelfile(parameters=parameters)


def named(name: Any) -> dict[str, Any]:
    doc = copy.deepcopy(MINIMAL_DOC)
    doc["metadata"]["name"] = name
    return doc


# (id, document, field path of the problem, text the message must contain, CEL rule message or None)
INVALID_CASES: list[tuple[str, dict[str, Any], str, str, str | None]] = [
    ("model-missing", MINIMAL_DOC | {"spec": {}}, "spec.model", "required", None),
    (
        "model-both",
        with_spec(model={"catalog": "phi-4-mini", "source": "hf://microsoft/Phi-4-mini-instruct"}),
        "spec.model",
        "exactly one of catalog and source",
        "spec.model: exactly one of catalog and source",
    ),
    (
        "model-neither",
        with_spec(model={"contextLength": 4096}),
        "spec.model",
        "exactly one of catalog and source",
        "spec.model: exactly one of catalog and source",
    ),
    (
        "context-too-small",
        with_spec(model={"catalog": "phi-4-mini", "contextLength": 100}),
        "spec.model.contextLength",
        "greater than or equal to 256",
        None,
    ),
    (
        "source-scheme",
        with_spec(model={"source": "http://x/y"}),
        "spec.model.source",
        "should match pattern",
        None,
    ),
    (
        "source-shell",
        with_spec(model={"source": "ollama://qwen3;rm -rf /"}),
        "spec.model.source",
        "should match pattern",
        None,
    ),
    (
        "source-traversal",
        with_spec(model={"source": "pvc://models/../../etc"}),
        "spec.model.source",
        "'..' segments",
        "spec.model.source: a path may not contain",
    ),
    (
        "catalog-case",
        with_spec(model={"catalog": "Phi-4"}),
        "spec.model.catalog",
        "should match pattern",
        None,
    ),
    (
        "params-zero",
        with_spec(model={"source": "hf://a/b", "parametersBillions": 0}),
        "spec.model.parametersBillions",
        "greater than 0",
        None,
    ),
    ("unknown-field", with_spec(modle={"catalog": "x"}), "spec.modle", "unknown field", None),
    ("runtime-enum", with_spec(runtime="tgi"), "spec.runtime", "'auto', 'vllm' or 'ollama'", None),
    ("quant-enum", with_spec(quantization="q5"), "spec.quantization", "'q4_k_m'", None),
    (
        "concurrency-zero",
        with_spec(maxConcurrency=0),
        "spec.maxConcurrency",
        "greater than or equal to 1",
        None,
    ),
    ("replicas-negative", with_spec(replicas=-1), "spec.replicas", "greater than or equal to 0", None),
    (
        "autoscaling-bounds",
        with_spec(autoscaling={"enabled": True, "minReplicas": 5, "maxReplicas": 2}),
        "spec.autoscaling",
        "minReplicas (5) must not exceed maxReplicas (2)",
        "spec.autoscaling: minReplicas must not exceed maxReplicas",
    ),
    (
        "autoscaling-default-max",
        with_spec(autoscaling={"minReplicas": 5}),
        "spec.autoscaling",
        "maxReplicas (4)",
        "spec.autoscaling: minReplicas must not exceed maxReplicas",
    ),
    (
        "autoscaling-engine-enum",
        with_spec(autoscaling={"enabled": True, "engine": "vpa"}),
        "spec.autoscaling.engine",
        "'hpa' or 'keda'",
        None,
    ),
    (
        "autoscaling-cpu",
        with_spec(autoscaling={"targetCPUUtilizationPercentage": 150}),
        "spec.autoscaling.targetCPUUtilizationPercentage",
        "less than or equal to 100",
        None,
    ),
    (
        "gpus-zero",
        with_spec(hardware={"tier": "gpu-small", "gpus": 0}),
        "spec.hardware.gpus",
        "greater than or equal to 1",
        None,
    ),
    (
        "tier-name",
        with_spec(hardware={"tier": "GPU_Small"}),
        "spec.hardware.tier",
        "should match pattern",
        None,
    ),
    (
        "secret-ref-key",
        with_spec(auth={"apiKeySecretRef": {"name": "k"}}),
        "spec.auth.apiKeySecretRef.key",
        "required",
        None,
    ),
    (
        "hf-secret-name",
        with_spec(modelAccessSecretRef={"name": "HF Token", "key": "token"}),
        "spec.modelAccessSecretRef.name",
        "should match pattern",
        None,
    ),
    (
        "peer-empty",
        with_spec(network={"allowFrom": [{}]}),
        "spec.network.allowFrom[0]",
        "needs namespaceSelector, podSelector or ipBlock",
        "spec.network.allowFrom: a peer needs",
    ),
    (
        "peer-mixed",
        with_spec(network={"allowFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}),
        "spec.network.allowFrom[0]",
        "cannot be combined",
        "spec.network.allowFrom: ipBlock cannot be combined",
    ),
    (
        "peer-cidr",
        with_spec(network={"allowFrom": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}),
        "spec.network.allowFrom[0].ipBlock.cidr",
        "is not a CIDR",
        None,
    ),
    (
        "selector-values",
        with_spec(
            network={
                "allowFrom": [
                    {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}}
                ]
            }
        ),
        "spec.network.allowFrom[0].namespaceSelector.matchExpressions[0]",
        "values are required when operator is In",
        "matchExpressions: values are required",
    ),
    (
        "monitoring-enum",
        with_spec(monitoring={"serviceMonitor": "yes"}),
        "spec.monitoring.serviceMonitor",
        "'auto'",
        None,
    ),
    ("storage-size", with_spec(storage={"size": "20GB"}), "spec.storage.size", "should match pattern", None),
    (
        "storage-rwo-replicas",
        with_spec(replicas=2, storage={"size": "20Gi"}),
        "spec.storage.accessMode",
        "ReadWriteOnce attaches to one node only, but up to 2 replicas",
        "spec.storage.accessMode: ReadWriteOnce attaches to one node only",
    ),
    (
        "storage-rwo-autoscaling",
        with_spec(
            autoscaling={"enabled": True, "maxReplicas": 3}, storage={"accessMode": "ReadWriteOncePod"}
        ),
        "spec.storage.accessMode",
        "up to 3 replicas",
        "spec.storage.accessMode: ReadWriteOnce attaches to one node only",
    ),
    (
        "image-latest",
        with_spec(image="vllm/vllm-openai:latest"),
        "spec.image",
        "never ':latest'",
        "spec.image: pin a tag or digest, never ':latest'",
    ),
    ("image-untagged", with_spec(image="vllm/vllm-openai"), "spec.image", "should match pattern", None),
    (
        "resources-quantity",
        with_spec(resources={"limits": {"memory": "lots"}}),
        "spec.resources.limits.memory",
        "should match pattern",
        None,
    ),
    (
        "toleration-exists-value",
        with_spec(scheduling={"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
        "spec.scheduling.tolerations[0]",
        "value must be empty when operator is Exists",
        "tolerations: value must be empty when operator is Exists",
    ),
    (
        "toleration-seconds",
        with_spec(scheduling={"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]}),
        "spec.scheduling.tolerations[0]",
        "only valid with effect NoExecute",
        "tolerations: tolerationSeconds is only valid with effect NoExecute",
    ),
    (
        "vllm-owned-len",
        vllm("--max-model-len", "4096"),
        "spec.vllm.extraArgs[0]",
        "use spec.model.contextLength",
        None,
    ),
    ("vllm-owned-seqs", vllm("--max-num-seqs=4"), "spec.vllm.extraArgs[0]", "use spec.maxConcurrency", None),
    ("vllm-owned-key", vllm("--api-key", "sk-1"), "spec.vllm.extraArgs[0]", "use spec.auth", None),
    ("vllm-owned-dtype", vllm("--dtype=half"), "spec.vllm.extraArgs[0]", "use spec.quantization", None),
    ("vllm-owned-short", vllm("-tp", "2"), "spec.vllm.extraArgs[0]", "use spec.hardware.gpus", None),
    (
        "vllm-remote-code",
        vllm("--enable-prefix-caching", "--trust-remote-code"),
        "spec.vllm.extraArgs[1]",
        "runs Python code from the model repository",
        "spec.vllm.extraArgs: --trust-remote-code is refused",
    ),
    (
        "vllm-tool-choice",
        vllm("--enable-auto-tool-choice"),
        "spec.vllm.extraArgs[0]",
        "needs --tool-call-parser",
        "spec.vllm.extraArgs: --enable-auto-tool-choice needs --tool-call-parser",
    ),
    ("vllm-int", vllm("--max-num-batched-tokens=abc"), "spec.vllm.extraArgs[0]", "takes an integer", None),
    (
        "vllm-range",
        vllm("--max-num-batched-tokens", "0"),
        "spec.vllm.extraArgs[1]",
        "must be between 1",
        None,
    ),
    ("vllm-no-value", vllm("--seed"), "spec.vllm.extraArgs[0]", "needs a value", None),
    ("vllm-empty-value", vllm("--seed="), "spec.vllm.extraArgs[0]", "non-empty value", None),
    (
        "vllm-choice",
        vllm("--kv-cache-dtype", "fp4"),
        "spec.vllm.extraArgs[1]",
        "must be one of auto, fp8",
        None,
    ),
    ("vllm-switch-value", vllm("--enforce-eager=true"), "spec.vllm.extraArgs[0]", "takes no value", None),
    ("vllm-positional", vllm("microsoft/Phi-4-mini-instruct"), "spec.vllm.extraArgs[0]", "positional", None),
    (
        "vllm-unknown",
        vllm("--load-format", "dummy"),
        "spec.vllm.extraArgs[0]",
        "not an accepted vLLM flag",
        None,
    ),
    ("vllm-twice", vllm("--seed=1", "--seed", "2"), "spec.vllm.extraArgs[1]", "given twice", None),
    (
        "vllm-contradiction",
        vllm("--enable-prefix-caching", "--no-enable-prefix-caching"),
        "spec.vllm.extraArgs[1]",
        "contradicts --enable-prefix-caching",
        None,
    ),
    ("vllm-chat-template", vllm("--chat-template", "/t.jinja"), "spec.vllm.extraArgs[0]", "is refused", None),
    ("vllm-removed-flag", vllm("--disable-log-requests"), "spec.vllm.extraArgs[0]", "no longer logs", None),
    (
        "vllm-url",
        vllm("--otlp-traces-endpoint=ftp://x"),
        "spec.vllm.extraArgs[0]",
        "http(s):// or grpc://",
        None,
    ),
    (
        "modelfile-fake-param",
        params(context_length=8192),
        "spec.ollama.modelfile.parameters.context_length",
        "use num_ctx",
        None,
    ),
    ("modelfile-num-gpu", params(num_gpu=1), "spec.ollama.modelfile.parameters.num_gpu", "layers", None),
    (
        "modelfile-unknown",
        params(mirostat_eta=0.1),
        "spec.ollama.modelfile.parameters.mirostat_eta",
        "not an Ollama Modelfile PARAMETER",
        None,
    ),
    (
        "modelfile-temp",
        params(temperature=-0.5),
        "spec.ollama.modelfile.parameters.temperature",
        "at least 0",
        None,
    ),
    ("modelfile-int", params(num_ctx=1.5), "spec.ollama.modelfile.parameters.num_ctx", "integer", None),
    ("modelfile-bool", params(seed=True), "spec.ollama.modelfile.parameters.seed", "integer", None),
    ("modelfile-top-p", params(top_p=2), "spec.ollama.modelfile.parameters.top_p", "at most 1", None),
    ("modelfile-stop", params(stop=["ok", ""]), "spec.ollama.modelfile.parameters.stop", "non-empty", None),
    (
        "modelfile-stop-quote",
        params(stop='say "x"'),
        "spec.ollama.modelfile.parameters.stop",
        "without quotes",
        None,
    ),
    ("modelfile-nul", modelfile(system="a\x00b"), "spec.ollama.modelfile.system", "NUL", None),
    (
        "modelfile-quotes",
        modelfile(template='{{ .Prompt }}"""\nFROM x'),
        "spec.ollama.modelfile.template",
        '"""',
        None,
    ),
    (
        "modelfile-role",
        modelfile(messages=[{"role": "tool", "content": "x"}]),
        "spec.ollama.modelfile.messages[0].role",
        "'system', 'user' or 'assistant'",
        None,
    ),
    (
        "modelfile-num-ctx-over",
        with_spec(
            model={"catalog": "phi-4-mini", "contextLength": 4096},
            ollama={"modelfile": {"parameters": {"num_ctx": 8192}}},
        ),
        "spec.ollama.modelfile.parameters.num_ctx",
        "exceeds spec.model.contextLength (4096)",
        None,
    ),
    (
        "runtime-ollama-vllm-args",
        with_spec(runtime="ollama", vllm={"extraArgs": ["--enforce-eager"]}),
        "spec.vllm.extraArgs",
        "only used by vLLM",
        "spec.vllm.extraArgs: only used by vLLM",
    ),
    (
        "runtime-vllm-modelfile",
        with_spec(runtime="vllm", ollama={"modelfile": {"system": "hi"}}),
        "spec.ollama.modelfile",
        "only used by Ollama",
        "spec.ollama.modelfile: only used by Ollama",
    ),
    (
        "adapters-duplicate-name",
        with_spec(
            runtime="vllm",
            adapters=[
                {"name": "sql", "source": "hf://org/sql-lora"},
                {"name": "sql", "source": "pvc://loras/sql"},
            ],
        ),
        "spec.adapters[1].name",
        "'sql' is used by an earlier adapter",
        "spec.adapters: adapter names must be unique",
    ),
    (
        "adapters-with-ollama",
        with_spec(runtime="ollama", adapters=[{"name": "sql", "source": "hf://org/sql-lora"}]),
        "spec.adapters",
        "served by vLLM only, but spec.runtime is ollama",
        "spec.adapters: LoRA adapters are served by vLLM only",
    ),
    (
        "adapter-source-ollama",
        with_spec(adapters=[{"name": "sql", "source": "ollama://sql:latest"}]),
        "spec.adapters[0].source",
        "use hf://org/repo[@revision] or pvc://claim/path",
        None,
    ),
    (
        "adapter-source-dot-segment",
        with_spec(adapters=[{"name": "sql", "source": "pvc://loras/../secrets"}]),
        "spec.adapters[0].source",
        "'.' or '..' segments",
        "spec.adapters.source: a path may not contain",
    ),
    (
        "adapter-name-format",
        with_spec(adapters=[{"name": "SQL_adapter", "source": "hf://org/sql-lora"}]),
        "spec.adapters[0].name",
        "should match pattern",
        None,
    ),
    (
        "lora-rank-not-vllm",
        with_spec(adapters=[{"name": "sql", "source": "hf://org/sql-lora"}], lora={"maxRank": 24}),
        "spec.lora.maxRank",
        "24 is not a rank vLLM accepts",
        "spec.lora.maxRank: must be one of",
    ),
    (
        "lora-rank-too-large",
        with_spec(adapters=[{"name": "sql", "source": "hf://org/sql-lora"}], lora={"maxRank": 1024}),
        "spec.lora.maxRank",
        "less than or equal to 512",
        None,
    ),
    (
        "lora-max-loras-zero",
        with_spec(adapters=[{"name": "sql", "source": "hf://org/sql-lora"}], lora={"maxLoras": 0}),
        "spec.lora.maxLoras",
        "greater than or equal to 1",
        None,
    ),
    (
        "lora-without-adapters",
        with_spec(lora={"maxRank": 16}),
        "spec.lora",
        "only used with spec.adapters",
        "spec.lora: only used with spec.adapters",
    ),
    (
        "ollama-registry-host",
        with_spec(model={"source": "ollama://Registry_Example/library/qwen3:4b"}),
        "spec.model.source",
        "registry host 'Registry_Example' is not a lower-case DNS name",
        None,
    ),
    (
        "ollama-registry-port",
        with_spec(model={"source": "ollama://registry.example.com:70000/library/qwen3:4b"}),
        "spec.model.source",
        "port 70000, outside 1-65535",
        None,
    ),
    (
        "ollama-source-four-parts",
        with_spec(model={"source": "ollama://registry.example.com/a/b/c"}),
        "spec.model.source",
        "at most three parts",
        None,
    ),
    (
        "pull-secret-name",
        with_spec(imagePullSecrets=[{"name": "Regcred"}]),
        "spec.imagePullSecrets[0].name",
        "should match pattern",
        None,
    ),
    ("spec-not-mapping", MINIMAL_DOC | {"spec": "phi"}, "spec", "must be a mapping", None),
    ("name-long", named("m" * 54), "metadata.name", "at most 53", "metadata.name: at most 53 characters"),
    ("name-format", named("Phi_4"), "metadata.name", "DNS-1035", "metadata.name: must be a DNS-1035 label"),
    ("name-missing", MINIMAL_DOC | {"metadata": {"namespace": "ai"}}, "metadata.name", "required", None),
    (
        "api-version",
        MINIMAL_DOC | {"apiVersion": "slm.dev/v1"},
        "apiVersion",
        "must be slm.dev/v1alpha1",
        None,
    ),
    ("kind", MINIMAL_DOC | {"kind": "Model"}, "kind", "must be SmallLanguageModel", None),
]


def problems_of(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        parse_document(doc)
    return [(p.field, p.message) for p in caught.value.problems]


@pytest.mark.parametrize(
    "doc",
    [MINIMAL_DOC, FULL_DOC, *(doc for _, doc in example_documents())],
    ids=["minimal", "architecture-example", *(name for name, _ in example_documents())],
)
def test_valid_documents_parse(doc: dict[str, Any]) -> None:
    model = parse_document(doc)
    assert model.name == doc["metadata"]["name"]
    assert model.spec.model.catalog == doc["spec"]["model"].get("catalog")
    assert model.spec.model.source == doc["spec"]["model"].get("source")


def test_examples_exist() -> None:
    # The contract tests validate the examples against the CRD; an empty list would prove nothing.
    assert len(example_documents()) >= 3


def test_invalid_table_is_large_and_unique() -> None:
    assert len(INVALID_CASES) >= 30
    assert len({case[0] for case in INVALID_CASES}) == len(INVALID_CASES)


@pytest.mark.parametrize(
    ("doc", "field", "text"), [case[1:4] for case in INVALID_CASES], ids=[case[0] for case in INVALID_CASES]
)
def test_invalid_documents_name_the_field(doc: dict[str, Any], field: str, text: str) -> None:
    problems = problems_of(doc)
    at_field = [message for path, message in problems if path == field]
    assert at_field, f"no problem at {field}; got {problems}"
    assert any(text in message for message in at_field), f"{text!r} not in {at_field}"


def test_full_example_round_trips_field_names() -> None:
    """Every field of the §2 example is known to the model (a typo would be 'unknown field')."""
    spec = parse_spec(FULL_DOC["spec"])
    dumped = spec.model_dump(by_alias=True, exclude_unset=True)
    assert dumped["autoscaling"]["targetCPUUtilizationPercentage"] == 70
    assert dumped["ollama"]["modelfile"]["parameters"] == {"temperature": 0.3, "num_ctx": 8192}
    assert dumped["network"]["allowFrom"][0]["namespaceSelector"] == {"matchLabels": {"team": "web"}}


def test_defaults() -> None:
    spec = parse_spec({"model": {"catalog": "phi-4-mini"}})
    assert spec.model.context_length is None  # the planner decides: min(model max, 8192)
    assert spec.model.served_name is None  # metadata.name
    assert spec.hardware.tier == "cpu"
    assert spec.hardware.gpus is None
    assert spec.runtime == "auto"
    assert spec.quantization == "auto"
    assert spec.replicas == 1
    assert spec.max_concurrency == 8
    assert spec.autoscaling.enabled is False
    assert (spec.autoscaling.min_replicas, spec.autoscaling.max_replicas) == (1, 4)
    assert spec.auth.enabled is True
    assert spec.auth.api_key_secret_ref is None
    assert spec.network.allow_egress is True
    assert spec.network.allow_from == []
    assert spec.monitoring.service_monitor == "auto"
    assert spec.monitoring.prometheus_rule == "auto"
    assert spec.storage is None
    assert spec.vllm.extra_args == []
    assert spec.ollama.modelfile is None
    assert spec.image == ""


def test_document_namespace_defaults_to_default() -> None:
    doc = copy.deepcopy(MINIMAL_DOC)
    del doc["metadata"]["namespace"]
    assert parse_document(doc).namespace == "default"


def test_every_problem_is_reported_at_once() -> None:
    doc = with_spec(replicas=-1, image="x:latest", vllm={"extraArgs": ["--seed", "x", "--dtype", "half"]})
    doc["metadata"]["name"] = "Bad_Name"
    fields = {field for field, _ in problems_of(doc)}
    assert {
        "metadata.name",
        "spec.replicas",
        "spec.image",
        "spec.vllm.extraArgs[1]",
        "spec.vllm.extraArgs[2]",
    } <= fields


@pytest.mark.parametrize(
    "args",
    [
        ["--max-num-batched-tokens", "8192"],
        ["--max-num-batched-tokens=8192"],
        ["--enable-auto-tool-choice", "--tool-call-parser", "phi4_mini_json"],
        ["--tool-call-parser=hermes", "--enable-auto-tool-choice"],
        ["--enable-lora", "--max-loras", "4", "--max-lora-rank=64"],
        ["--kv-cache-dtype", "fp8", "--enforce-eager", "--cpu-offload-gb", "2.5"],
        ["--otlp-traces-endpoint", "http://otel-collector.observability:4317"],
        ["--seed", "0", "--generation-config", "vllm", "--disable-log-stats"],
        ["--no-enable-prefix-caching", "--enable-chunked-prefill", "--reasoning-parser", "qwen3"],
    ],
)
def test_allowed_vllm_args_parse(args: list[str]) -> None:
    flags, problems = parse_vllm_args(args)
    assert problems == []
    assert set(flags) <= set(VLLM_ALLOWED_FLAGS)
    assert (
        parse_spec({"model": {"catalog": "phi-4-mini"}, "vllm": {"extraArgs": args}}).vllm.extra_args == args
    )


def test_vllm_flag_values_reads_both_forms() -> None:
    values = vllm_flag_values(["--kv-cache-dtype=fp8", "--max-num-batched-tokens", "4096", "--enforce-eager"])
    assert values == {"--kv-cache-dtype": "fp8", "--max-num-batched-tokens": "4096", "--enforce-eager": None}


def test_refused_flag_value_is_not_a_second_problem() -> None:
    _, problems = parse_vllm_args(["--max-model-len", "4096", "--enforce-eager"])
    assert [index for index, _ in problems] == [0]


@pytest.mark.parametrize(
    "parameters",
    [
        {"num_ctx": 4096, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05},
        {"repeat_last_n": -1, "repeat_penalty": 1.1, "seed": 42, "num_predict": -2},
        {"stop": "<|im_end|>"},
        {"stop": ["<|user|>", "<|end|>"], "temperature": 0},
    ],
)
def test_valid_modelfile_parameters(parameters: dict[str, Any]) -> None:
    spec = parse_spec({"model": {"catalog": "qwen3-4b"}, "ollama": {"modelfile": {"parameters": parameters}}})
    assert spec.ollama.modelfile is not None
    assert spec.ollama.modelfile.parameters == parameters
    # numbers keep their YAML type, so the Modelfile renders "num_ctx 4096", not "4096.0"
    for name, value in parameters.items():
        assert type(spec.ollama.modelfile.parameters[name]) is type(value)


def test_documented_parameter_list() -> None:
    """The Modelfile reference's "Valid Parameters and Values" (except the newest, draft_num_predict)."""
    assert set(OLLAMA_PARAMETERS) == {
        "num_ctx",
        "repeat_last_n",
        "repeat_penalty",
        "temperature",
        "seed",
        "stop",
        "num_predict",
        "top_k",
        "top_p",
        "min_p",
    }


def test_model_validate_applies_the_same_rules() -> None:
    """Code that bypasses parse_spec still cannot build an invalid spec."""
    with pytest.raises(ValueError, match="--trust-remote-code"):
        SmallLanguageModelSpec.model_validate(
            {"model": {"catalog": "phi-4-mini"}, "vllm": {"extraArgs": ["--trust-remote-code"]}}
        )


@pytest.mark.parametrize(
    ("spec", "field", "suggestion"),
    [
        ({"modle": {"catalog": "phi-4-mini"}}, "spec.modle", "model"),
        (
            {"model": {"catalog": "phi-4-mini", "contextLenght": 4096}},
            "spec.model.contextLenght",
            "contextLength",
        ),
        ({"model": {"catalog": "phi-4-mini"}, "maxconcurrency": 2}, "spec.maxconcurrency", "maxConcurrency"),
        ({"model": {"catalog": "phi-4-mini"}, "hardware": {"tire": "cpu"}}, "spec.hardware.tire", "tier"),
        (
            {"model": {"catalog": "phi-4-mini"}, "ollama": {"modelfile": {"sytem": "Be brief."}}},
            "spec.ollama.modelfile.sytem",
            "system",
        ),
        (
            {"model": {"catalog": "phi-4-mini"}, "network": {"allowFrom": [{"podSelectr": {}}]}},
            "spec.network.allowFrom[0].podSelectr",
            "podSelector",
        ),
        (
            {
                "model": {"catalog": "phi-4-mini"},
                "network": {"allowFrom": [{"ipBlock": {"cidr": "10.0.0.0/8", "excpt": []}}]},
            },
            "spec.network.allowFrom[0].ipBlock.excpt",
            "except",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_misspelled_fields_get_did_you_mean(spec: dict[str, Any], field: str, suggestion: str) -> None:
    problems = problems_of({**MINIMAL_DOC, "spec": spec})
    at_field = [message for path, message in problems if path == field]
    assert at_field, problems
    assert f"unknown field; did you mean {suggestion}" in at_field[0]


def test_unknown_field_far_from_any_name_gets_no_guess() -> None:
    problems = problems_of({**MINIMAL_DOC, "spec": {"model": {"catalog": "phi-4-mini"}, "zzz": 1}})
    assert ("spec.zzz", "unknown field (check the spelling; see `kubectl explain slm.spec`)") in problems
