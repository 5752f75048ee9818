"""Merging a user configuration over the built-ins, and the errors a bad one produces."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import slm_operator
from slm_operator.api.config import OperatorConfig
from slm_operator.api.errors import ConfigError
from slm_operator.catalog.loader import (
    builtin_config,
    gateway_image,
    load_config,
    load_config_text,
    merge_config,
)
from slm_operator.planning.memory import kv_bytes_per_token

ORIGIN = "config.yaml"


def load(text: str) -> OperatorConfig:
    return load_config_text(textwrap.dedent(text), origin=ORIGIN)


# ---------------------------------------------------------------------------------------
# Merge semantics
# ---------------------------------------------------------------------------------------


def test_no_file_is_the_builtin_configuration() -> None:
    assert load_config() is builtin_config()
    assert load_config(None) == builtin_config()


def test_empty_file_is_the_builtin_configuration() -> None:
    assert load("") == builtin_config()
    assert load("# only a comment\n") == builtin_config()


def test_empty_sections_change_nothing() -> None:
    # "catalog:" with every entry commented out is null, not a request to drop the catalog.
    assert load("tiers:\ncatalog:\n#  my-model: {}\nimages:\ndefaults:\n") == builtin_config()


def test_override_one_field_of_a_tier_keeps_the_rest() -> None:
    config = load(
        """
        tiers:
          gpu-small:
            gpuMemoryGiB: 14.5
        """
    )
    builtin = builtin_config().tiers["gpu-small"]
    tier = config.tiers["gpu-small"]
    assert tier.gpu_memory_gib == 14.5
    assert tier.model_copy(update={"gpu_memory_gib": builtin.gpu_memory_gib}) == builtin
    assert tier.node_affinity == builtin.node_affinity
    assert tier.tolerations == builtin.tolerations


def test_lists_are_replaced_not_appended() -> None:
    config = load(
        """
        tiers:
          nvidia-t4:
            tolerations:
              - {key: dedicated, operator: Equal, value: inference, effect: NoSchedule}
        """
    )
    tolerations = config.tiers["nvidia-t4"].tolerations
    assert [(t.key, t.value) for t in tolerations] == [("dedicated", "inference")]


def test_add_a_tier() -> None:
    config = load(
        """
        tiers:
          gke-l4:
            description: L4 node pool on GKE
            accelerator: nvidia
            runtime: vllm
            gpus: 1
            gpuMemoryGiB: 22
            computeCapability: 8.9
            memoryGiB: 24
            cpu: "6"
            nodeSelector: {cloud.google.com/gke-accelerator: nvidia-l4}
            tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
        """
    )
    tier = config.tiers["gke-l4"]
    assert tier.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert tier.compute_capability == 8.9
    assert set(config.tiers) == set(builtin_config().tiers) | {"gke-l4"}


def test_remove_a_tier_with_null() -> None:
    config = load(
        """
        tiers:
          gpu-large: null
          nvidia-h100-80gb: ~
        """
    )
    assert set(builtin_config().tiers) - set(config.tiers) == {"gpu-large", "nvidia-h100-80gb"}
    # The cached built-ins are untouched by a merge.
    assert "gpu-large" in builtin_config().tiers


def test_remove_a_model_with_null() -> None:
    config = load("catalog: {qwen2.5-3b: null}\n")
    assert "qwen2.5-3b" not in config.catalog
    assert "qwen2.5-7b" in config.catalog


def test_add_a_catalog_model() -> None:
    config = load(
        """
        catalog:
          granite-3.3-2b:
            displayName: Granite 3.3 2B Instruct
            family: granite
            parameters: 2530000000
            layers: 40
            attentionHeads: 32
            kvHeads: 8
            headDim: 64
            maxContext: 131072
            license: Apache-2.0
            gated: false
            variants:
              - {runtime: vllm, ref: ibm-granite/granite-3.3-2b-instruct, quantization: none, bits: 16,
                 weightBytes: 5060000000, minComputeCapability: 7.0}
              - {runtime: ollama, ref: "granite3.3:2b", quantization: q4_k_m, bits: 4,
                 weightBytes: 1500000000}
        """
    )
    model = config.catalog["granite-3.3-2b"]
    assert kv_bytes_per_token(model, kv_bytes_per_element=2) == 2 * 40 * 8 * 64 * 2
    assert [v.runtime for v in model.variants] == ["vllm", "ollama"]
    assert len(config.catalog) == len(builtin_config().catalog) + 1


def test_override_a_model_field_keeps_its_variants() -> None:
    config = load("catalog: {phi-4: {maxContext: 8192}}\n")
    assert config.catalog["phi-4"].max_context == 8192
    assert config.catalog["phi-4"].variants == builtin_config().catalog["phi-4"].variants


def test_replace_a_models_variants() -> None:
    config = load(
        """
        catalog:
          smollm2-135m:
            variants:
              - {runtime: ollama, ref: "registry.local/smollm2:135m", quantization: none, bits: 16,
                 weightBytes: 271000000}
        """
    )
    assert [v.ref for v in config.catalog["smollm2-135m"].variants] == ["registry.local/smollm2:135m"]


def test_override_images() -> None:
    config = load(
        """
        images:
          vllm: registry.local/vllm/vllm-openai:v0.11.0
        """
    )
    assert config.images.vllm == "registry.local/vllm/vllm-openai:v0.11.0"
    assert config.images.ollama == builtin_config().images.ollama
    assert config.images.gateway == builtin_config().images.gateway


def test_gateway_image_defaults_to_the_package_version_and_can_be_pinned() -> None:
    assert builtin_config().images.gateway == f"ghcr.io/slm-operator/slm-operator:{slm_operator.__version__}"
    assert gateway_image("1.2.3") == "ghcr.io/slm-operator/slm-operator:1.2.3"
    digest = "sha256:" + "a" * 64
    config = load(f"images: {{gateway: 'registry.local/slm-operator@{digest}'}}\n")
    assert config.images.gateway == f"registry.local/slm-operator@{digest}"


def test_override_defaults() -> None:
    config = load(
        """
        defaults:
          contextLength: 4096
          overheads: {vllmGiB: 2.0}
        """
    )
    assert config.defaults.context_length == 4096
    assert config.defaults.overheads.vllm_gib == 2.0
    assert config.defaults.overheads.ollama_gib == builtin_config().defaults.overheads.ollama_gib
    assert config.defaults.monitoring_namespace == builtin_config().defaults.monitoring_namespace


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("tiers: {edge: {memoryGiB: 2}}\n", encoding="utf-8")
    assert load_config(path).tiers["edge"].memory_gib == 2
    assert load_config(str(path)).tiers["edge"].memory_gib == 2


def test_merge_config_rules() -> None:
    base = {"a": {"x": 1, "y": [1, 2], "z": {"k": 1}}, "b": 2}
    override = {"a": {"y": [3], "z": {"j": 2}, "x": None}, "c": {"n": None, "m": 1}}
    merged = merge_config(base, override)
    assert merged == {"a": {"y": [3], "z": {"k": 1, "j": 2}}, "b": 2, "c": {"m": 1}}
    # Neither input is modified.
    assert base == {"a": {"x": 1, "y": [1, 2], "z": {"k": 1}}, "b": 2}
    assert override["a"] == {"y": [3], "z": {"j": 2}, "x": None}


# ---------------------------------------------------------------------------------------
# Errors name the file and the field path
# ---------------------------------------------------------------------------------------

GPU_TIER_WITHOUT_CAPABILITY = """
tiers:
  my-gpu:
    accelerator: nvidia
    runtime: vllm
    gpus: 1
    gpuMemoryGiB: 22
    memoryGiB: 16
"""

BAD_CONFIGS = [
    pytest.param(
        "tiers: {gpu-small: {gpuMemoryGiB: 0}}\n",
        "config.yaml: tiers.gpu-small.gpuMemoryGiB: Input should be greater than 0",
        id="zero-gpu-memory",
    ),
    pytest.param(
        "tiers: {cpu: {memoryGiB: lots}}\n",
        "config.yaml: tiers.cpu.memoryGiB: Input should be a valid number",
        id="bad-type",
    ),
    pytest.param(
        "tier: {cpu: {memoryGiB: 8}}\n",
        "config.yaml: tier: unknown top-level key; did you mean tiers? "
        "(expected one of tiers, catalog, images, defaults, registries)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        "tiers: {cpu: {memoryGB: 8}}\n",
        "config.yaml: tiers.cpu.memoryGB: unknown field; did you mean memoryGiB",
        id="unknown-tier-field",
    ),
    pytest.param(
        "images: {vllm: 'vllm/vllm-openai:latest'}\n",
        "config.yaml: images.vllm: images must be pinned to an exact tag or digest, never ':latest'",
        id="latest-image",
    ),
    pytest.param(
        "images: {ollama: ollama/ollama}\n",
        "config.yaml: images.ollama: String should match pattern",
        id="untagged-image",
    ),
    pytest.param(
        "tiers:\n  cpu:\n    memoryGiB: [8\n",
        "config.yaml: line 4, column 1: YAML syntax error:",
        id="yaml-syntax-error",
    ),
    pytest.param(
        GPU_TIER_WITHOUT_CAPABILITY,
        "config.yaml: tiers.my-gpu: GPU tiers need gpus >= 1, gpuMemoryGiB and computeCapability",
        id="gpu-tier-without-compute-capability",
    ),
    pytest.param(
        "tiers: {cpu: {gpus: 1}}\n",
        "config.yaml: tiers.cpu: tiers without an accelerator must have gpus: 0",
        id="cpu-tier-with-gpus",
    ),
    pytest.param(
        "tiers: {cpu: {nodeAffinity: [{matchExpressions: [{key: a, operator: Above, values: ['1']}]}]}}\n",
        "config.yaml: tiers.cpu.nodeAffinity[0].matchExpressions[0].operator: Input should be",
        id="bad-affinity-operator",
    ),
    pytest.param(
        "tiers: {GPU_Small: {memoryGiB: 8, runtime: ollama}}\n",
        "config.yaml: tiers.GPU_Small: invalid name",
        id="tier-name-not-usable-in-a-spec",
    ),
    pytest.param(
        "tiers: [cpu, edge]\n",
        "config.yaml: tiers: must be a mapping, got a list",
        id="tiers-not-a-mapping",
    ),
    pytest.param(
        "catalog: {phi-4: phi4}\n",
        "config.yaml: catalog.phi-4: must be a mapping or null, got str 'phi4'",
        id="model-not-a-mapping",
    ),
    pytest.param(
        "catalog: {phi-4: {variants: [{runtime: vllm, ref: 'not a repo', quantization: none, bits: 16,"
        " weightBytes: 1}]}}\n",
        "config.yaml: catalog.phi-4.variants[0]: ref 'not a repo' is not a valid vllm reference",
        id="variant-bad-ref",
    ),
    pytest.param(
        "catalog: {phi-4: {variants: [{runtime: ollama, ref: 'phi4:14b', quantization: q4_k_m, bits: 5,"
        " weightBytes: 1}]}}\n",
        "config.yaml: catalog.phi-4.variants[0].bits: Input should be 16, 8 or 4",
        id="variant-bad-bits",
    ),
    pytest.param(
        "catalog: {phi-4: {variants: [{runtime: ollama, ref: 'phi4:14b', quantization: auto, bits: 4,"
        " weightBytes: 1}]}}\n",
        "config.yaml: catalog.phi-4.variants[0]: a variant's quantization cannot be auto",
        id="variant-auto-quantization",
    ),
    pytest.param(
        "catalog: {phi-4: {variants: []}}\n",
        "config.yaml: catalog.phi-4.variants: List should have at least 1 item",
        id="model-without-variants",
    ),
    pytest.param(
        "tiers: {}\n---\ncatalog: {}\n",
        "config.yaml: expected one YAML document, found 2",
        id="two-documents",
    ),
    pytest.param(
        "- tiers\n",
        "config.yaml: the configuration must be a mapping, got a list",
        id="not-a-mapping",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_configuration_names_file_and_path(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, origin=ORIGIN)
    assert expected in str(caught.value)


def test_every_problem_is_reported_on_its_own_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load("tiers: {cpu: {memoryGiB: -1, cpu: 4, extra: 1}}\n")
    lines = str(caught.value).splitlines()
    assert len(lines) >= 3
    assert all(line.startswith("config.yaml: tiers.cpu.") for line in lines)


def test_error_names_the_file_it_read(tmp_path: Path) -> None:
    path = tmp_path / "values-config.yaml"
    path.write_text("tiers: {edge: {memoryGiB: 0}}\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"values-config\.yaml: tiers\.edge\.memoryGiB: Input should be greater"
    ):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read the configuration file"):
        load_config(path)


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("tiers: {cpu: {description: 'caf\u00e9'}}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: the configuration file is not UTF-8 text"):
        load_config(path)


def test_removing_a_builtin_image_is_an_error() -> None:
    # null removes a key; the runtime images have no default, so removing one must fail loudly.
    with pytest.raises(ConfigError, match=r"config\.yaml: images\.vllm: Field required"):
        load("images: {vllm: null}\n")
