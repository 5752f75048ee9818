"""The built-in catalog, tiers and images against the reference facts (docs/catalog.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

import slm_operator
from slm_operator.api.config import Accelerator, CatalogModel, NodeSelectorRequirement, OperatorConfig, Tier
from slm_operator.api.patterns import HF_REPO_PATTERN, OLLAMA_TAG_PATTERN
from slm_operator.catalog.loader import builtin_config
from slm_operator.catalog.sizes import check_sizes, checkpoint_bytes
from slm_operator.contract.runtime import Engine
from slm_operator.planning.memory import kv_bytes_per_token

# The catalog ids every release ships.
CATALOG_IDS = [
    "phi-4-mini",
    "phi-4",
    "phi-3.5-mini",
    "qwen3-0.6b",
    "qwen3-1.7b",
    "qwen3-4b",
    "qwen3-8b",
    "qwen3-14b",
    "qwen3-30b-a3b",
    "qwen2.5-0.5b",
    "qwen2.5-1.5b",
    "qwen2.5-3b",
    "qwen2.5-7b",
    "qwen2.5-14b",
    "gemma-3-270m",
    "gemma-3-1b",
    "gemma-3-4b",
    "gemma-3-12b",
    "gemma-3-27b",
    "llama-3.2-1b",
    "llama-3.2-3b",
    "smollm2-135m",
    "smollm2-360m",
    "smollm2-1.7b",
    "mistral-7b-v0.3",
]

# docs/catalog.md "Models", column "KV B/token (bf16)".
REFERENCE_KV_BYTES_PER_TOKEN = {
    "phi-4-mini": 131_072,
    "phi-4": 204_800,
    "phi-3.5-mini": 393_216,
    "qwen3-0.6b": 114_688,
    "qwen3-1.7b": 114_688,
    "qwen3-4b": 147_456,
    "qwen3-8b": 147_456,
    "qwen3-14b": 163_840,
    "qwen3-30b-a3b": 98_304,
    "qwen2.5-0.5b": 12_288,
    "qwen2.5-1.5b": 28_672,
    "qwen2.5-3b": 36_864,
    "qwen2.5-7b": 57_344,
    "qwen2.5-14b": 196_608,
    "gemma-3-270m": 18_432,
    "gemma-3-1b": 26_624,
    "gemma-3-4b": 139_264,
    "gemma-3-12b": 393_216,
    "gemma-3-27b": 507_904,
    "llama-3.2-1b": 32_768,
    "llama-3.2-3b": 114_688,
    "smollm2-135m": 23_040,
    "smollm2-360m": 40_960,
    "smollm2-1.7b": 196_608,
    "mistral-7b-v0.3": 131_072,
}

# Exact parameter counts (S-KERAS) and the max context the catalog serves without rope scaling.
REFERENCE_PARAMETERS_AND_CONTEXT = {
    "phi-4-mini": (3_836_021_760, 131_072),
    "phi-4": (14_659_507_200, 16_384),
    "phi-3.5-mini": (3_821_079_552, 131_072),
    "qwen3-0.6b": (596_049_920, 32_768),
    "qwen3-1.7b": (1_720_574_976, 32_768),
    "qwen3-4b": (4_022_468_096, 32_768),
    "qwen3-8b": (8_190_735_360, 32_768),
    "qwen3-14b": (14_768_307_200, 32_768),
    "qwen3-30b-a3b": (30_532_122_624, 32_768),
    "qwen2.5-0.5b": (494_032_768, 32_768),
    "qwen2.5-1.5b": (1_543_714_304, 32_768),
    "qwen2.5-3b": (3_085_938_688, 32_768),
    "qwen2.5-7b": (7_615_616_512, 32_768),
    "qwen2.5-14b": (14_770_033_664, 32_768),
    "gemma-3-270m": (268_098_176, 32_768),
    "gemma-3-1b": (999_885_952, 32_768),
    "gemma-3-4b": (4_299_915_632, 131_072),
    "gemma-3-12b": (12_187_079_280, 131_072),
    "gemma-3-27b": (27_432_062_576, 131_072),
    "llama-3.2-1b": (1_235_814_400, 131_072),
    "llama-3.2-3b": (3_212_749_824, 131_072),
    "smollm2-135m": (134_515_008, 8_192),
    "smollm2-360m": (361_821_120, 8_192),
    "smollm2-1.7b": (1_711_376_384, 8_192),
    "mistral-7b-v0.3": (7_248_023_552, 32_768),
}

# Gemma 3 local window and global-layer count (S-TUNIX).
REFERENCE_GEMMA_WINDOWS = {
    "gemma-3-270m": (512, 3),
    "gemma-3-1b": (512, 4),
    "gemma-3-4b": (1024, 5),
    "gemma-3-12b": (1024, 8),
    "gemma-3-27b": (1024, 10),
}

GATED_FAMILIES = ("gemma-3-", "llama-3.2-", "mistral-")

SOURCE_KEYS = {
    "S-MLC",
    "S-TUNIX",
    "S-KERAS",
    "S-QTR",
    "S-QSPEED",
    "S-XINF",
    "S-OLLREADME",
    "S-OLLWEB",
    "S-ALPACA",
    "S-TAGS3P",
    "S-VLLMHW",
    "S-VLLMFP8",
    "S-VLLMGGUF",
    "S-GFD",
    "S-KARP",
    "S-AKS",
    "S-NVCC",
    "S-BITNET",
    "S-PHI4CFG",
    "S-Q25CFG",
    "S-GATE",
    "S-LIC",
    "S-RH",
}

BITS_BY_QUANTIZATION = {
    "none": {16},
    "fp8": {8},
    "int8": {8},
    "q8_0": {8},
    "gptq": {8, 4},
    "int4": {4},
    "awq": {4},
    "q4_k_m": {4},
    "q4_0": {4},
}

# docs/catalog.md "Variant rules": the lowest compute capability vLLM runs each format on.
# FP8 loads from 8.0 (Fp8Config.get_min_capability() == 80, vllm/model_executor/layers/
# quantization/fp8.py) and runs weight-only through FP8 Marlin below 8.9; W8A8 needs 8.9.
MIN_COMPUTE_CAPABILITY = {"none": 7.0, "gptq": 7.0, "awq": 7.5, "int8": 7.5, "int4": 8.0, "fp8": 8.0}
VLLM_QUANTIZATIONS = set(MIN_COMPUTE_CAPABILITY)
OLLAMA_QUANTIZATIONS = {"none", "q8_0", "q4_k_m", "q4_0"}


@pytest.fixture(scope="module")
def config() -> OperatorConfig:
    return builtin_config()


def all_variants(config: OperatorConfig) -> list[tuple[str, int]]:
    return [
        (model_id, index)
        for model_id, model in config.catalog.items()
        for index in range(len(model.variants))
    ]


def test_catalog_has_exactly_the_architecture_ids(config: OperatorConfig) -> None:
    assert sorted(config.catalog) == sorted(CATALOG_IDS)


@pytest.mark.parametrize(("model_id", "expected"), sorted(REFERENCE_KV_BYTES_PER_TOKEN.items()))
def test_kv_bytes_per_token_match_the_reference_table(
    config: OperatorConfig, model_id: str, expected: int
) -> None:
    assert kv_bytes_per_token(config.catalog[model_id], kv_bytes_per_element=2) == expected


@pytest.mark.parametrize(("model_id", "expected"), sorted(REFERENCE_PARAMETERS_AND_CONTEXT.items()))
def test_parameters_and_context_match_the_reference_table(
    config: OperatorConfig, model_id: str, expected: tuple[int, int]
) -> None:
    model = config.catalog[model_id]
    assert (model.parameters, model.max_context) == expected


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_query_heads_are_a_multiple_of_kv_heads(config: OperatorConfig, model_id: str) -> None:
    # Grouped-query attention shares each KV head among a whole number of query heads; a
    # typo in either column breaks this (and tensor-parallel planning relies on both).
    model = config.catalog[model_id]
    assert model.attention_heads % model.kv_heads == 0


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_sliding_window_only_on_gemma_3_with_reference_layout(config: OperatorConfig, model_id: str) -> None:
    model = config.catalog[model_id]
    if model_id in REFERENCE_GEMMA_WINDOWS:
        assert model.sliding_window is not None
        assert (model.sliding_window.window, model.sliding_window.global_layers) == REFERENCE_GEMMA_WINDOWS[
            model_id
        ]
        # One global layer in every six (S-TUNIX GEMMA3_ATTENTION_PATTERN).
        assert model.sliding_window.global_layers == model.layers // 6
    else:
        assert model.sliding_window is None


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_every_model_has_a_vllm_and_an_ollama_variant(config: OperatorConfig, model_id: str) -> None:
    engines = {variant.runtime for variant in config.catalog[model_id].variants}
    assert engines == {Engine.VLLM, Engine.OLLAMA}


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_gated_flags(config: OperatorConfig, model_id: str) -> None:
    assert config.catalog[model_id].gated is model_id.startswith(GATED_FAMILIES)


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_every_model_names_known_sources(config: OperatorConfig, model_id: str) -> None:
    sources = config.catalog[model_id].sources
    assert sources
    assert set(sources) <= SOURCE_KEYS


def test_variant_refs_match_their_runtime_pattern(config: OperatorConfig) -> None:
    for model_id, index in all_variants(config):
        variant = config.catalog[model_id].variants[index]
        pattern = HF_REPO_PATTERN if variant.runtime == Engine.VLLM else OLLAMA_TAG_PATTERN
        assert re.fullmatch(pattern, variant.ref), (model_id, variant.ref)
        if variant.runtime == Engine.OLLAMA:
            # An explicit tag, never the moving "latest".
            _, _, tag = variant.ref.partition(":")
            assert tag
            assert tag != "latest"


def test_variant_quantizations_belong_to_their_runtime(config: OperatorConfig) -> None:
    for model_id, index in all_variants(config):
        variant = config.catalog[model_id].variants[index]
        allowed = VLLM_QUANTIZATIONS if variant.runtime == Engine.VLLM else OLLAMA_QUANTIZATIONS
        assert variant.quantization in allowed, (model_id, variant.ref, variant.quantization)
        assert variant.bits in BITS_BY_QUANTIZATION[variant.quantization], (model_id, variant.ref)


def test_vllm_variants_carry_the_minimum_compute_capability_of_their_format(config: OperatorConfig) -> None:
    for model_id, index in all_variants(config):
        variant = config.catalog[model_id].variants[index]
        if variant.runtime == Engine.OLLAMA:
            assert variant.min_compute_capability is None, (model_id, variant.ref)
            continue
        floor = MIN_COMPUTE_CAPABILITY[variant.quantization]
        assert variant.min_compute_capability is not None, (model_id, variant.ref)
        assert variant.min_compute_capability >= floor, (model_id, variant.ref)
        if variant.quantization == "fp8":
            assert variant.min_compute_capability == 8.0, (model_id, variant.ref)
            assert variant.native_compute_capability == 8.9
        if variant.quantization == "none":
            # bf16 is native from Ampere; below it the planner serves fp16 (--dtype half).
            assert variant.native_compute_capability == 8.0


def test_gptq_moe_needs_marlin(config: OperatorConfig) -> None:
    variant = next(v for v in config.catalog["qwen3-30b-a3b"].variants if v.quantization == "gptq")
    assert variant.min_compute_capability == 8.0


def test_online_fp8_variants_serve_the_original_repo(config: OperatorConfig) -> None:
    online = [
        (model, variant)
        for model in config.catalog.values()
        for variant in model.variants
        if variant.vllm_args
    ]
    assert online
    for model, variant in online:
        assert variant.vllm_args == ["--quantization", "fp8"]
        original = next(v for v in model.variants if v.runtime == Engine.VLLM and v.quantization == "none")
        assert variant.ref == original.ref
        assert variant.quantization == "fp8"


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_original_vllm_weights_are_parameters_times_two(config: OperatorConfig, model_id: str) -> None:
    # The full count stays resident: Gemma 3's vision tower and every expert of Qwen3-30B-A3B.
    model = config.catalog[model_id]
    originals = [v for v in model.variants if v.runtime == Engine.VLLM and v.quantization == "none"]
    assert len(originals) == 1
    assert originals[0].weight_bytes == model.parameters * 2


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_weight_sizes_shrink_with_bits(config: OperatorConfig, model_id: str) -> None:
    model = config.catalog[model_id]
    bf16 = model.parameters * 2
    for variant in model.variants:
        # Catches unit slips (MB for bytes, GiB for GB): never far below bits/16 of the 16-bit
        # size (embeddings, scales and vision towers stay wide) and never above it, except the
        # ~0.1 GB of runtime memory in S-QSPEED's measurements of the smallest models.
        assert variant.weight_bytes >= bf16 * variant.bits / 16 * 0.85, (model_id, variant.ref)
        assert variant.weight_bytes <= bf16 * 1.02 + 100_000_000, (model_id, variant.ref)
    for engine in (Engine.VLLM, Engine.OLLAMA):
        sizes = {
            bits: [v.weight_bytes for v in model.variants if v.runtime == engine and v.bits == bits]
            for bits in (4, 8, 16)
        }
        for fewer, more in ((4, 8), (8, 16), (4, 16)):
            if sizes[fewer] and sizes[more]:
                # Same slack: Qwen3-0.6B-FP8 measures 1,217 MB against 1,192 MB computed for bf16.
                assert max(sizes[fewer]) < min(sizes[more]) + 100_000_000, (model_id, engine, fewer, more)


def test_qwen3_quantized_sizes_are_the_tensor_layout_recount_marked_as_estimates(
    config: OperatorConfig,
) -> None:
    # The Qwen3 speed benchmark's table is GPU memory after load in MiB (runtime buffers
    # included), not checkpoint size: read as MB it put Qwen3-0.6B-FP8 at 1.217 GB, above its
    # bf16 checkpoint (1.192 GB). The catalog states the tensor-layout recount instead, and
    # marks it an estimate because the published files were not read.
    quantized = [
        (model, variant)
        for model_id, model in config.catalog.items()
        if model_id.startswith("qwen3-")
        for variant in model.variants
        if variant.runtime == Engine.VLLM and variant.quantization != "none"
    ]
    assert len(quantized) == 12
    for model, variant in quantized:
        assert not variant.verified, variant.ref
        assert "estimated" in variant.note, variant.ref
        recount = checkpoint_bytes(model, variant)
        assert abs(variant.weight_bytes - recount) <= 1_000_000, variant.ref
    fp8 = next(v for v in config.catalog["qwen3-0.6b"].variants if v.ref == "Qwen/Qwen3-0.6B-FP8")
    assert fp8.weight_bytes < 0.8e9 < config.catalog["qwen3-0.6b"].parameters * 2


def test_mistral_q4_k_m_tag_is_4_4_gb(config: OperatorConfig) -> None:
    variant = next(
        v for v in config.catalog["mistral-7b-v0.3"].variants if v.ref == "mistral:7b-instruct-q4_K_M"
    )
    assert variant.weight_bytes == 4_400_000_000


def test_smollm2_and_qwen3_context_lengths(config: OperatorConfig) -> None:
    # SmolLM2-135M/360M-Instruct config.json: max_position_embeddings 8192 (verbatim copies in
    # mlc-ai/mlc-llm python/mlc_llm/model/model_preset.py, "smollm2_135m", "smollm2_360m").
    assert config.catalog["smollm2-135m"].max_context == 8192
    assert config.catalog["smollm2-360m"].max_context == 8192
    # Qwen3 config.json says 40960 = 32768 of context + 8192 reserved for output (model card);
    # the catalog serves the native 32768 (docs/catalog.md).
    for model_id in ("qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-30b-a3b"):
        assert config.catalog[model_id].max_context == 32768


@pytest.mark.parametrize("model_id", CATALOG_IDS)
def test_architecture_recounts_the_parameters(config: OperatorConfig, model_id: str) -> None:
    model = config.catalog[model_id]
    assert model.architecture is not None
    recount = model.architecture.vision_parameters + model.architecture.text_parameters(
        layers=model.layers,
        attention_heads=model.attention_heads,
        kv_heads=model.kv_heads,
        head_dim=model.head_dim,
    )
    if model.architecture.vision_parameters:
        # Gemma 3 4B+ checkpoints carry 262,208 vocabulary rows; Keras' counts use 262,144.
        assert recount - model.parameters == 64 * model.architecture.hidden_size
    else:
        assert recount == model.parameters


def test_size_check_flags_a_stated_size_off_by_more_than_3_percent(config: OperatorConfig) -> None:
    assert not [c for c in check_sizes(dict(config.catalog)) if c.flagged]
    model = config.catalog["qwen3-0.6b"]
    wrong = [
        v.model_copy(update={"weight_bytes": 1_217_000_000, "verified": True})
        if v.ref == "Qwen/Qwen3-0.6B-FP8"
        else v
        for v in model.variants
    ]
    flagged = [
        c for c in check_sizes({"qwen3-0.6b": model.model_copy(update={"variants": wrong})}) if c.flagged
    ]
    assert [c.variant.ref for c in flagged] == ["Qwen/Qwen3-0.6B-FP8"]
    assert flagged[0].gap > 0.5


def test_check_catalog_script_passes_and_fails(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "check_catalog.py"
    ok = subprocess.run([sys.executable, str(script), "--quiet"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "config.yaml"
    bad.write_text(
        "catalog:\n  smollm2-135m:\n    variants:\n"
        "      - {runtime: vllm, ref: HuggingFaceTB/SmolLM2-135M-Instruct, quantization: none, bits: 16,\n"
        "         weightBytes: 300000000, minComputeCapability: 7.0, source: test}\n",
        encoding="utf-8",
    )
    failed = subprocess.run(
        [sys.executable, str(script), "--quiet", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 1
    assert "SmolLM2-135M-Instruct" in failed.stderr


def test_unverified_facts_carry_a_note(config: OperatorConfig) -> None:
    for model_id, model in config.catalog.items():
        if not model.verified:
            assert model.note, model_id
        for variant in model.variants:
            if not variant.verified:
                assert variant.note, (model_id, variant.ref)
            # Every estimate is marked as such, and nothing estimated passes as verified.
            if "estimated" in variant.note:
                assert not variant.verified, (model_id, variant.ref)
            assert variant.source, (model_id, variant.ref)
    for name, tier in config.tiers.items():
        if not tier.verified:
            assert tier.note, name


# Every fact the research behind docs/catalog.md left unverified, with how
# the catalog resolves it: "confirmed" (verified, the note says where: "V(T)") or "carried"
# (verified: false with a note). A model-level entry has ref None.
REFERENCE_UNVERIFIED: list[tuple[str, str | None, str]] = [
    ("phi-4-mini", None, "confirmed"),  # not gated
    ("phi-4", None, "confirmed"),  # not gated
    ("phi-3.5-mini", None, "confirmed"),  # MIT, not gated
    ("mistral-7b-v0.3", None, "confirmed"),  # Apache-2.0
    ("qwen2.5-3b", None, "carried"),  # not gated
    ("phi-4-mini", "RedHatAI/Phi-4-mini-instruct-FP8-dynamic", "carried"),  # size
    ("phi-4-mini", "phi4-mini:3.8b-fp16", "confirmed"),  # size
    ("phi-4", "RedHatAI/phi-4-FP8-dynamic", "carried"),  # size
    ("phi-4", "RedHatAI/phi-4-quantized.w4a16", "carried"),  # size
    ("phi-4", "phi4:14b-q8_0", "carried"),  # tag and size
    ("phi-3.5-mini", "phi3.5:3.8b", "confirmed"),  # default quantization
    ("qwen3-0.6b", "qwen3:0.6b-q4_K_M", "carried"),  # default quantization
    ("qwen3-8b", "qwen3:8b-q4_K_M", "carried"),
    ("qwen3-30b-a3b", "qwen3:30b-a3b", "carried"),
    ("qwen2.5-7b", "qwen2.5:7b-instruct-q4_K_M", "carried"),
    ("gemma-3-12b", "gemma3:12b", "carried"),  # default quantization
    ("llama-3.2-1b", "llama3.2:1b-instruct-q4_K_M", "carried"),  # size
    ("smollm2-1.7b", "smollm2:1.7b", "carried"),  # default quantization
    ("mistral-7b-v0.3", "mistral:7b", "carried"),  # default quantization
    ("mistral-7b-v0.3", "neuralmagic/Mistral-7B-Instruct-v0.3-GPTQ-4bit", "carried"),  # org redirect
]


@pytest.mark.parametrize(("model_id", "ref", "resolution"), REFERENCE_UNVERIFIED)
def test_reference_unverified_facts_are_confirmed_or_carried(
    config: OperatorConfig, model_id: str, ref: str | None, resolution: str
) -> None:
    model = config.catalog[model_id]
    holder = model if ref is None else next(v for v in model.variants if v.ref == ref)
    if resolution == "confirmed":
        # Confirmed from a third-party copy: the note says so (docs/catalog.md says where).
        assert holder.verified
        assert "V(T)" in holder.note
    else:
        assert not holder.verified
        assert holder.note


def test_qwen2_5_3b_licence_is_non_commercial(config: OperatorConfig) -> None:
    assert "non-commercial" in config.catalog["qwen2.5-3b"].license


def test_images_are_pinned_and_the_gateway_matches_the_package(config: OperatorConfig) -> None:
    images = config.images
    for image in (images.vllm, images.ollama, images.gateway):
        repository, _, tag = image.rpartition(":")
        assert repository
        assert tag
        assert tag != "latest"
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", images.vllm)
    assert re.fullmatch(r"ollama/ollama:\d+\.\d+\.\d+", images.ollama)
    assert images.gateway == f"ghcr.io/slm-operator/slm-operator:{slm_operator.__version__}"


def test_vllm_image_is_new_enough_for_kv_cache_usage_metric(config: OperatorConfig) -> None:
    # vllm:kv_cache_usage_perc (which the dashboards and rules use) is emitted from 0.10.
    major, minor, _ = (int(part) for part in config.images.vllm.rpartition(":v")[2].split("."))
    assert (major, minor) >= (0, 10)


# ---------------------------------------------------------------------------------------
# Tiers
# ---------------------------------------------------------------------------------------

GFD_CAPABILITY_KEYS = {
    "nvidia.com/gpu.memory",
    "nvidia.com/gpu.compute.major",
    "nvidia.com/gpu.compute.minor",
}
PRODUCT_KEY = "nvidia.com/gpu.product"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gfd_labels(product: str, memory_mib: int, capability: str) -> dict[str, str]:
    major, minor = capability.split(".")
    return {
        PRODUCT_KEY: product,
        "nvidia.com/gpu.memory": str(memory_mib),
        "nvidia.com/gpu.compute.major": major,
        "nvidia.com/gpu.compute.minor": minor,
        "nvidia.com/gpu.present": "true",
    }


# Sample nodes as GPU feature discovery labels them (memory as reported, see docs/catalog.md).
NODES: dict[str, dict[str, str]] = {
    "t4": gfd_labels("Tesla-T4", 15360, "7.5"),
    "l4": gfd_labels("NVIDIA-L4", 23034, "8.9"),
    "a10g": gfd_labels("NVIDIA-A10G", 23028, "8.6"),
    "l40s": gfd_labels("NVIDIA-L40S", 46068, "8.9"),
    "a100-40gb": gfd_labels("NVIDIA-A100-SXM4-40GB", 40960, "8.0"),
    "a100-40gb-pcie": gfd_labels("NVIDIA-A100-PCIE-40GB", 40960, "8.0"),
    "a100-80gb": gfd_labels("NVIDIA-A100-SXM4-80GB", 81920, "8.0"),
    "h100": gfd_labels("NVIDIA-H100-80GB-HBM3", 81559, "9.0"),
    "h100-pcie": gfd_labels("NVIDIA-H100-PCIe", 81559, "9.0"),
    # Must not pass as gpu-small: too old (Volta, no AWQ) or too small.
    "v100": gfd_labels("Tesla-V100-SXM2-16GB", 16384, "7.0"),
    "rtx-3060-12gb": gfd_labels("NVIDIA-GeForce-RTX-3060", 12288, "8.6"),
    "cpu": {"kubernetes.io/arch": "amd64"},
}

EXPECTED_ADMISSION = {
    "gpu-small": {
        "t4",
        "l4",
        "a10g",
        "l40s",
        "a100-40gb",
        "a100-40gb-pcie",
        "a100-80gb",
        "h100",
        "h100-pcie",
    },
    "gpu-medium": {"l4", "a10g", "l40s", "a100-40gb", "a100-40gb-pcie", "a100-80gb", "h100", "h100-pcie"},
    "gpu-large": {"a100-80gb", "h100", "h100-pcie"},
    "nvidia-t4": {"t4"},
    "nvidia-l4": {"l4"},
    "nvidia-a10g": {"a10g"},
    "nvidia-l40s": {"l40s"},
    "nvidia-a100-40gb": {"a100-40gb", "a100-40gb-pcie"},
    "nvidia-a100-80gb": {"a100-80gb"},
    "nvidia-h100-80gb": {"h100", "h100-pcie"},
    # CPU tiers select nothing, so they admit every node.
    "cpu": set(NODES),
    "edge": set(NODES),
}


def requirement_matches(requirement: NodeSelectorRequirement, labels: Mapping[str, str]) -> bool:
    """core/v1 NodeSelectorRequirement semantics (Gt/Lt compare integers)."""
    value = labels.get(requirement.key)
    match requirement.operator:
        case "In":
            return value is not None and value in requirement.values
        case "NotIn":
            return value is None or value not in requirement.values
        case "Exists":
            return value is not None
        case "DoesNotExist":
            return value is None
        case "Gt" | "Lt":
            if value is None or len(requirement.values) != 1:
                return False
            try:
                actual, bound = int(value), int(requirement.values[0])
            except ValueError:
                return False
            return actual > bound if requirement.operator == "Gt" else actual < bound
    raise AssertionError(f"unknown operator {requirement.operator}")


def tier_admits(tier: Tier, labels: Mapping[str, str]) -> bool:
    """nodeSelector ANDed with required node affinity (terms ORed, expressions ANDed)."""
    if any(labels.get(key) != value for key, value in tier.node_selector.items()):
        return False
    if not tier.node_affinity:
        return True
    return any(
        all(requirement_matches(requirement, labels) for requirement in term.match_expressions)
        for term in tier.node_affinity
    )


def test_evaluator_follows_kubernetes_semantics() -> None:
    # The evaluator itself: Gt is strict and integer-valued, a missing label never matches.
    gt = NodeSelectorRequirement(key="n", operator="Gt", values=["7"])
    assert requirement_matches(gt, {"n": "8"})
    assert not requirement_matches(gt, {"n": "7"})
    assert not requirement_matches(gt, {"n": "10x"})
    assert not requirement_matches(gt, {})
    assert requirement_matches(NodeSelectorRequirement(key="n", operator="NotIn", values=["a"]), {})
    assert not requirement_matches(NodeSelectorRequirement(key="n", operator="In", values=["a"]), {})


def test_tier_names(config: OperatorConfig) -> None:
    assert set(config.tiers) == set(EXPECTED_ADMISSION)


@pytest.mark.parametrize("tier_name", sorted(EXPECTED_ADMISSION))
def test_tier_admits_exactly_the_gpus_it_claims(config: OperatorConfig, tier_name: str) -> None:
    tier = config.tiers[tier_name]
    admitted = {node for node, labels in NODES.items() if tier_admits(tier, labels)}
    assert admitted == EXPECTED_ADMISSION[tier_name]


@pytest.mark.parametrize("tier_name", sorted(EXPECTED_ADMISSION))
def test_tier_promises_no_more_than_every_admitted_gpu_has(config: OperatorConfig, tier_name: str) -> None:
    # The planner trusts gpuMemoryGiB and computeCapability: every GPU the selector lets in
    # must have at least that much memory and at least that capability.
    tier = config.tiers[tier_name]
    if tier.accelerator != Accelerator.NVIDIA:
        return
    assert tier.gpu_memory_gib is not None
    assert tier.compute_capability is not None
    for node in EXPECTED_ADMISSION[tier_name]:
        labels = NODES[node]
        memory_gib = int(labels["nvidia.com/gpu.memory"]) / 1024
        capability = float(
            f"{labels['nvidia.com/gpu.compute.major']}.{labels['nvidia.com/gpu.compute.minor']}"
        )
        assert tier.gpu_memory_gib <= memory_gib, node
        assert tier.compute_capability <= capability, node


@pytest.mark.parametrize(
    ("tier_name", "capability"), [("gpu-small", 7.5), ("gpu-medium", 8.0), ("gpu-large", 8.0)]
)
def test_generic_tiers_claim_the_minimum_capability_they_select(
    config: OperatorConfig, tier_name: str, capability: float
) -> None:
    assert config.tiers[tier_name].compute_capability == capability


def test_gpu_small_is_satisfiable_by_a_t4(config: OperatorConfig) -> None:
    # "16 GB" cards report 15360 MiB: the tier must not promise more than that.
    tier = config.tiers["gpu-small"]
    assert tier.gpu_memory_gib == 15.0
    assert tier_admits(tier, NODES["t4"])


@pytest.mark.parametrize("tier_name", sorted(EXPECTED_ADMISSION))
def test_gpu_tiers_tolerate_the_gpu_taint_and_select_by_gfd(config: OperatorConfig, tier_name: str) -> None:
    tier = config.tiers[tier_name]
    if tier.accelerator == Accelerator.NONE:
        assert tier.runtime == Engine.OLLAMA
        assert tier.gpus == 0
        assert not tier.tolerations
        assert not tier.node_affinity
        return
    assert tier.runtime == Engine.VLLM
    assert tier.gpus == 1
    assert tier.gpu_memory_utilization == 0.9
    tolerations = [t.model_dump(exclude_none=True) for t in tier.tolerations]
    assert GPU_TOLERATION in tolerations
    keys = set(tier.node_selector) | {
        requirement.key for term in tier.node_affinity for requirement in term.match_expressions
    }
    by_product = keys == {PRODUCT_KEY}
    by_capability = keys <= GFD_CAPABILITY_KEYS and "nvidia.com/gpu.memory" in keys
    assert by_product != by_capability, keys
    assert by_product == tier_name.startswith("nvidia-")


def test_cpu_tiers_budget(config: OperatorConfig) -> None:
    assert config.tiers["cpu"].memory_gib >= config.tiers["edge"].memory_gib
    # The edge tier prefers no node: small clusters rarely label their edge nodes.
    assert not config.tiers["edge"].node_selector


def test_catalog_model_round_trips_through_camel_case(config: OperatorConfig) -> None:
    # The YAML is written in the wire format; dumping and re-reading loses nothing.
    model = config.catalog["gemma-3-4b"]
    data = model.model_dump(by_alias=True, exclude_none=True)
    assert "slidingWindow" in data
    assert "weightBytes" in data["variants"][0]
    assert CatalogModel.model_validate(data) == model


def test_docs_list_every_model_variant_and_tier(config: OperatorConfig) -> None:
    # docs/catalog.md carries the fact table with sources; a catalog change must update it.
    docs = (Path(__file__).resolve().parents[2] / "docs" / "catalog.md").read_text(encoding="utf-8")
    for model_id, model in config.catalog.items():
        assert f"| `{model_id}` | {model.parameters:,} |" in docs, model_id
        for variant in model.variants:
            assert f"`{variant.ref}`" in docs, variant.ref
    for tier_name in config.tiers:
        assert f"| `{tier_name}` |" in docs, tier_name
    assert config.images.vllm in docs
    assert config.images.ollama in docs


@pytest.mark.parametrize("model_id", [m for m in CATALOG_IDS if m.startswith("gemma-3-")])
def test_gemma_3_original_needs_bfloat16(config: OperatorConfig, model_id: str) -> None:
    # vLLM lists gemma3 in _FLOAT16_NOT_SUPPORTED_MODELS: no --dtype half fallback on a T4.
    original = next(
        v for v in config.catalog[model_id].variants if v.quantization == "none" and v.runtime == "vllm"
    )
    assert original.min_compute_capability == 8.0


def test_every_dense_model_has_the_widths_lora_needs() -> None:
    """LoRA memory needs hiddenSize and intermediateSize (their values are recounted against the
    parameter count by make check-catalog)."""
    missing = [
        catalog_id
        for catalog_id, model in builtin_config().catalog.items()
        if model.architecture is None and "experts" not in model.note
    ]
    assert missing == []
