"""The planner's contract as a table: one representative model of every catalog family on every
default tier, at the defaults (contextLength min(model max, 8192), maxConcurrency 8).

Each row is the expected variant (repo id or Ollama tag), quantization, dtype and GPU count, or
the expectation that nothing fits, or that the tier's GPUs can run no variant. The rows were
derived from the rules in docs/planner.md and the catalog's sizes and reviewed by hand (e.g.
Qwen3-8B takes FP8 on an L4 because bf16 needs 26.5 GiB against 19.8 and FP8 runs natively from
compute capability 8.9, and weight-only on the 8.0-8.6 Ampere tiers; T4-class tiers serve
float16 because Turing has no bfloat16, except for
Gemma 3, which vLLM refuses to run in float16; Phi-3.5-mini has no GQA, so its 24 GiB KV cache
at 8 x 8192 tokens fits only the 40 GB-and-larger GPUs). When the catalog changes, review the diff of
this table as carefully as the catalog change itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from slm_operator.api.errors import FitError, SpecError
from slm_operator.api.parse import parse_document
from slm_operator.api.plan import Plan
from slm_operator.catalog.loader import builtin_config
from slm_operator.planning.planner import plan_model

CONFIG = builtin_config()


@dataclass(frozen=True)
class Ok:
    ref: str
    quantization: str
    dtype: str
    gpus: int


DOES_NOT_FIT = "does not fit"
CANNOT_RUN = "cannot run"  # no variant the tier's GPUs can run (e.g. Gemma 3 needs bf16, so >= 8.0)

TABLE: list[tuple[str, str, Ok | str]] = [
    # Ollama's compute graph for phi3 (no flash attention: gqa x KV / 6 = 4 GiB at 8192 x 8) leaves
    # no room for q8_0 next to the 8 GiB KV cache.
    ("phi-4-mini", "cpu", Ok("phi4-mini:3.8b-q4_K_M", "q4_k_m", "q4_K_M", 0)),
    ("phi-4-mini", "edge", DOES_NOT_FIT),
    ("phi-4-mini", "gpu-large", Ok("microsoft/Phi-4-mini-instruct", "none", "bfloat16", 1)),
    ("phi-4-mini", "gpu-medium", Ok("microsoft/Phi-4-mini-instruct", "none", "bfloat16", 1)),
    ("phi-4-mini", "gpu-small", DOES_NOT_FIT),
    ("phi-4-mini", "nvidia-a100-40gb", Ok("microsoft/Phi-4-mini-instruct", "none", "bfloat16", 1)),
    ("phi-4-mini", "nvidia-a100-80gb", Ok("microsoft/Phi-4-mini-instruct", "none", "bfloat16", 1)),
    ("phi-4-mini", "nvidia-a10g", Ok("microsoft/Phi-4-mini-instruct", "none", "bfloat16", 1)),
    ("phi-4-mini", "nvidia-h100-80gb", Ok("microsoft/Phi-4-mini-instruct", "none", "bfloat16", 1)),
    ("phi-4-mini", "nvidia-l4", Ok("microsoft/Phi-4-mini-instruct", "none", "bfloat16", 1)),
    ("phi-4-mini", "nvidia-l40s", Ok("microsoft/Phi-4-mini-instruct", "none", "bfloat16", 1)),
    ("phi-4-mini", "nvidia-t4", DOES_NOT_FIT),
    ("phi-4", "cpu", DOES_NOT_FIT),
    ("phi-4", "edge", DOES_NOT_FIT),
    ("phi-4", "gpu-large", Ok("microsoft/phi-4", "none", "bfloat16", 1)),
    ("phi-4", "gpu-medium", DOES_NOT_FIT),
    ("phi-4", "gpu-small", DOES_NOT_FIT),
    # FP8 runs weight-only (FP8 Marlin) on Ampere and ranks above INT8 W8A8.
    ("phi-4", "nvidia-a100-40gb", Ok("RedHatAI/phi-4-FP8-dynamic", "fp8", "bfloat16", 1)),
    ("phi-4", "nvidia-a100-80gb", Ok("microsoft/phi-4", "none", "bfloat16", 1)),
    ("phi-4", "nvidia-a10g", DOES_NOT_FIT),
    ("phi-4", "nvidia-h100-80gb", Ok("microsoft/phi-4", "none", "bfloat16", 1)),
    ("phi-4", "nvidia-l4", DOES_NOT_FIT),
    ("phi-4", "nvidia-l40s", Ok("RedHatAI/phi-4-FP8-dynamic", "fp8", "bfloat16", 1)),
    ("phi-4", "nvidia-t4", DOES_NOT_FIT),
    ("phi-3.5-mini", "cpu", DOES_NOT_FIT),
    ("phi-3.5-mini", "edge", DOES_NOT_FIT),
    ("phi-3.5-mini", "gpu-large", Ok("microsoft/Phi-3.5-mini-instruct", "none", "bfloat16", 1)),
    ("phi-3.5-mini", "gpu-medium", DOES_NOT_FIT),
    ("phi-3.5-mini", "gpu-small", DOES_NOT_FIT),
    ("phi-3.5-mini", "nvidia-a100-40gb", Ok("microsoft/Phi-3.5-mini-instruct", "none", "bfloat16", 1)),
    ("phi-3.5-mini", "nvidia-a100-80gb", Ok("microsoft/Phi-3.5-mini-instruct", "none", "bfloat16", 1)),
    ("phi-3.5-mini", "nvidia-a10g", DOES_NOT_FIT),
    ("phi-3.5-mini", "nvidia-h100-80gb", Ok("microsoft/Phi-3.5-mini-instruct", "none", "bfloat16", 1)),
    ("phi-3.5-mini", "nvidia-l4", DOES_NOT_FIT),
    ("phi-3.5-mini", "nvidia-l40s", Ok("microsoft/Phi-3.5-mini-instruct", "none", "bfloat16", 1)),
    ("phi-3.5-mini", "nvidia-t4", DOES_NOT_FIT),
    ("qwen3-8b", "cpu", Ok("qwen3:8b-q4_K_M", "q4_k_m", "q4_K_M", 0)),
    ("qwen3-8b", "edge", DOES_NOT_FIT),
    ("qwen3-8b", "gpu-large", Ok("Qwen/Qwen3-8B", "none", "bfloat16", 1)),
    ("qwen3-8b", "gpu-medium", Ok("Qwen/Qwen3-8B-FP8", "fp8", "bfloat16", 1)),
    ("qwen3-8b", "gpu-small", DOES_NOT_FIT),
    ("qwen3-8b", "nvidia-a100-40gb", Ok("Qwen/Qwen3-8B", "none", "bfloat16", 1)),
    ("qwen3-8b", "nvidia-a100-80gb", Ok("Qwen/Qwen3-8B", "none", "bfloat16", 1)),
    ("qwen3-8b", "nvidia-a10g", Ok("Qwen/Qwen3-8B-FP8", "fp8", "bfloat16", 1)),
    ("qwen3-8b", "nvidia-h100-80gb", Ok("Qwen/Qwen3-8B", "none", "bfloat16", 1)),
    ("qwen3-8b", "nvidia-l4", Ok("Qwen/Qwen3-8B-FP8", "fp8", "bfloat16", 1)),
    ("qwen3-8b", "nvidia-l40s", Ok("Qwen/Qwen3-8B", "none", "bfloat16", 1)),
    ("qwen3-8b", "nvidia-t4", DOES_NOT_FIT),
    ("qwen2.5-7b", "cpu", Ok("qwen2.5:7b-instruct-q4_K_M", "q4_k_m", "q4_K_M", 0)),
    ("qwen2.5-7b", "edge", DOES_NOT_FIT),
    ("qwen2.5-7b", "gpu-large", Ok("Qwen/Qwen2.5-7B-Instruct", "none", "bfloat16", 1)),
    ("qwen2.5-7b", "gpu-medium", Ok("Qwen/Qwen2.5-7B-Instruct", "fp8", "bfloat16", 1)),
    ("qwen2.5-7b", "gpu-small", Ok("Qwen/Qwen2.5-7B-Instruct-AWQ", "awq", "float16", 1)),
    ("qwen2.5-7b", "nvidia-a100-40gb", Ok("Qwen/Qwen2.5-7B-Instruct", "none", "bfloat16", 1)),
    ("qwen2.5-7b", "nvidia-a100-80gb", Ok("Qwen/Qwen2.5-7B-Instruct", "none", "bfloat16", 1)),
    ("qwen2.5-7b", "nvidia-a10g", Ok("Qwen/Qwen2.5-7B-Instruct", "fp8", "bfloat16", 1)),
    ("qwen2.5-7b", "nvidia-h100-80gb", Ok("Qwen/Qwen2.5-7B-Instruct", "none", "bfloat16", 1)),
    ("qwen2.5-7b", "nvidia-l4", Ok("Qwen/Qwen2.5-7B-Instruct", "fp8", "bfloat16", 1)),
    ("qwen2.5-7b", "nvidia-l40s", Ok("Qwen/Qwen2.5-7B-Instruct", "none", "bfloat16", 1)),
    ("qwen2.5-7b", "nvidia-t4", Ok("Qwen/Qwen2.5-7B-Instruct-AWQ", "awq", "float16", 1)),
    ("gemma-3-4b", "cpu", Ok("gemma3:4b-it-q8_0", "q8_0", "q8_0", 0)),
    ("gemma-3-4b", "edge", DOES_NOT_FIT),
    ("gemma-3-4b", "gpu-large", Ok("google/gemma-3-4b-it", "none", "bfloat16", 1)),
    ("gemma-3-4b", "gpu-medium", Ok("google/gemma-3-4b-it", "none", "bfloat16", 1)),
    ("gemma-3-4b", "gpu-small", CANNOT_RUN),
    ("gemma-3-4b", "nvidia-a100-40gb", Ok("google/gemma-3-4b-it", "none", "bfloat16", 1)),
    ("gemma-3-4b", "nvidia-a100-80gb", Ok("google/gemma-3-4b-it", "none", "bfloat16", 1)),
    ("gemma-3-4b", "nvidia-a10g", Ok("google/gemma-3-4b-it", "none", "bfloat16", 1)),
    ("gemma-3-4b", "nvidia-h100-80gb", Ok("google/gemma-3-4b-it", "none", "bfloat16", 1)),
    ("gemma-3-4b", "nvidia-l4", Ok("google/gemma-3-4b-it", "none", "bfloat16", 1)),
    ("gemma-3-4b", "nvidia-l40s", Ok("google/gemma-3-4b-it", "none", "bfloat16", 1)),
    ("gemma-3-4b", "nvidia-t4", CANNOT_RUN),
    # llama without flash attention: the 4 GiB attention-score buffer pushes fp16 out.
    ("llama-3.2-3b", "cpu", Ok("llama3.2:3b-instruct-q8_0", "q8_0", "q8_0", 0)),
    ("llama-3.2-3b", "edge", DOES_NOT_FIT),
    ("llama-3.2-3b", "gpu-large", Ok("meta-llama/Llama-3.2-3B-Instruct", "none", "bfloat16", 1)),
    ("llama-3.2-3b", "gpu-medium", Ok("meta-llama/Llama-3.2-3B-Instruct", "none", "bfloat16", 1)),
    ("llama-3.2-3b", "gpu-small", Ok("RedHatAI/Llama-3.2-3B-Instruct-quantized.w8a8", "int8", "float16", 1)),
    ("llama-3.2-3b", "nvidia-a100-40gb", Ok("meta-llama/Llama-3.2-3B-Instruct", "none", "bfloat16", 1)),
    ("llama-3.2-3b", "nvidia-a100-80gb", Ok("meta-llama/Llama-3.2-3B-Instruct", "none", "bfloat16", 1)),
    ("llama-3.2-3b", "nvidia-a10g", Ok("meta-llama/Llama-3.2-3B-Instruct", "none", "bfloat16", 1)),
    ("llama-3.2-3b", "nvidia-h100-80gb", Ok("meta-llama/Llama-3.2-3B-Instruct", "none", "bfloat16", 1)),
    ("llama-3.2-3b", "nvidia-l4", Ok("meta-llama/Llama-3.2-3B-Instruct", "none", "bfloat16", 1)),
    ("llama-3.2-3b", "nvidia-l40s", Ok("meta-llama/Llama-3.2-3B-Instruct", "none", "bfloat16", 1)),
    ("llama-3.2-3b", "nvidia-t4", Ok("RedHatAI/Llama-3.2-3B-Instruct-quantized.w8a8", "int8", "float16", 1)),
    # No GQA: 12 GiB of KV at 8192 x 8, plus a 4 GiB graph without flash attention.
    ("smollm2-1.7b", "cpu", DOES_NOT_FIT),
    ("smollm2-1.7b", "edge", DOES_NOT_FIT),
    ("smollm2-1.7b", "gpu-large", Ok("HuggingFaceTB/SmolLM2-1.7B-Instruct", "none", "bfloat16", 1)),
    ("smollm2-1.7b", "gpu-medium", Ok("HuggingFaceTB/SmolLM2-1.7B-Instruct", "none", "bfloat16", 1)),
    ("smollm2-1.7b", "gpu-small", DOES_NOT_FIT),
    ("smollm2-1.7b", "nvidia-a100-40gb", Ok("HuggingFaceTB/SmolLM2-1.7B-Instruct", "none", "bfloat16", 1)),
    ("smollm2-1.7b", "nvidia-a100-80gb", Ok("HuggingFaceTB/SmolLM2-1.7B-Instruct", "none", "bfloat16", 1)),
    ("smollm2-1.7b", "nvidia-a10g", Ok("HuggingFaceTB/SmolLM2-1.7B-Instruct", "none", "bfloat16", 1)),
    ("smollm2-1.7b", "nvidia-h100-80gb", Ok("HuggingFaceTB/SmolLM2-1.7B-Instruct", "none", "bfloat16", 1)),
    ("smollm2-1.7b", "nvidia-l4", Ok("HuggingFaceTB/SmolLM2-1.7B-Instruct", "none", "bfloat16", 1)),
    ("smollm2-1.7b", "nvidia-l40s", Ok("HuggingFaceTB/SmolLM2-1.7B-Instruct", "none", "bfloat16", 1)),
    ("smollm2-1.7b", "nvidia-t4", DOES_NOT_FIT),
    ("mistral-7b-v0.3", "cpu", DOES_NOT_FIT),
    ("mistral-7b-v0.3", "edge", DOES_NOT_FIT),
    ("mistral-7b-v0.3", "gpu-large", Ok("mistralai/Mistral-7B-Instruct-v0.3", "none", "bfloat16", 1)),
    ("mistral-7b-v0.3", "gpu-medium", Ok("mistralai/Mistral-7B-Instruct-v0.3", "fp8", "bfloat16", 1)),
    ("mistral-7b-v0.3", "gpu-small", DOES_NOT_FIT),
    ("mistral-7b-v0.3", "nvidia-a100-40gb", Ok("mistralai/Mistral-7B-Instruct-v0.3", "none", "bfloat16", 1)),
    ("mistral-7b-v0.3", "nvidia-a100-80gb", Ok("mistralai/Mistral-7B-Instruct-v0.3", "none", "bfloat16", 1)),
    ("mistral-7b-v0.3", "nvidia-a10g", Ok("mistralai/Mistral-7B-Instruct-v0.3", "fp8", "bfloat16", 1)),
    ("mistral-7b-v0.3", "nvidia-h100-80gb", Ok("mistralai/Mistral-7B-Instruct-v0.3", "none", "bfloat16", 1)),
    ("mistral-7b-v0.3", "nvidia-l4", Ok("mistralai/Mistral-7B-Instruct-v0.3", "fp8", "bfloat16", 1)),
    ("mistral-7b-v0.3", "nvidia-l40s", Ok("mistralai/Mistral-7B-Instruct-v0.3", "none", "bfloat16", 1)),
    ("mistral-7b-v0.3", "nvidia-t4", DOES_NOT_FIT),
]

FAMILIES = {
    "phi-4-mini",
    "phi-4",
    "phi-3.5-mini",
    "qwen3",
    "qwen2.5",
    "gemma-3",
    "llama-3.2",
    "smollm2",
    "mistral",
}


def _family(model_id: str) -> str:
    return next(f for f in sorted(FAMILIES, key=len, reverse=True) if model_id.startswith(f))


def _plan_default(model_id: str, tier: str) -> Plan:
    spec: dict[str, object] = {"model": {"catalog": model_id}, "hardware": {"tier": tier}}
    if CONFIG.catalog[model_id].gated:
        spec["modelAccessSecretRef"] = {"name": "hf", "key": "token"}
    doc = {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": "m"},
        "spec": spec,
    }
    return plan_model(parse_document(doc), CONFIG)


def test_table_covers_every_family_on_every_default_tier() -> None:
    assert len(TABLE) >= 40
    covered = {(_family(model_id), tier) for model_id, tier, _ in TABLE}
    families = {_family(model_id) for model_id in CONFIG.catalog}
    assert families == FAMILIES
    assert covered == {(family, tier) for family in families for tier in CONFIG.tiers}


@pytest.mark.parametrize(("model_id", "tier", "expected"), TABLE, ids=[f"{m}@{t}" for m, t, _ in TABLE])
def test_plan(model_id: str, tier: str, expected: Ok | str) -> None:
    if expected == DOES_NOT_FIT:
        with pytest.raises(FitError) as info:
            _plan_default(model_id, tier)
        problem = info.value.problems[0]
        assert problem.field == "spec.hardware.tier"
        assert f"does not fit tier {tier}" in problem.message
        return
    if expected == CANNOT_RUN:
        with pytest.raises(SpecError) as refused:
            _plan_default(model_id, tier)
        assert not isinstance(refused.value, FitError)
        problem = refused.value.problems[0]
        assert problem.field == "spec.hardware.tier"
        assert f"tier {tier} has compute capability" in problem.message
        return
    assert isinstance(expected, Ok)
    plan = _plan_default(model_id, tier)
    assert (plan.model_ref, plan.quantization, plan.dtype, plan.gpus) == (
        expected.ref,
        expected.quantization,
        expected.dtype,
        expected.gpus,
    )
    memory = plan.memory
    assert memory.required_gib is not None
    assert memory.available_gib is not None
    assert memory.required_gib <= memory.available_gib
    assert plan.fits is True


# --- Accuracy: plans vLLM and Ollama can start, refusals only where they fail --------------------
#
# One row per fact, with the fact's source. "ref"/"quantization" name the variant expected,
# "kv_gib"/"weights_gib"/"overhead_gib"/"load_peak_gib" the plan's memory figures (to 0.01 GiB),
# "reason" a text the plan's reasons must contain; "refused" a text the refusal of "field" must
# contain. docs/planner.md works through the same numbers.


@dataclass(frozen=True)
class Case:
    model: str
    tier: str
    context: int | None = None
    concurrency: int | None = None
    gpus: int | None = None
    quantization: str | None = None
    ref: str | None = None
    variant_quantization: str | None = None
    kv_gib: float | None = None
    weights_gib: float | None = None
    overhead_gib: float | None = None
    load_peak_gib: float | None = None
    full_length_requests: int | None = None
    reason: str | None = None
    field: str | None = None
    refused: str | None = None


ACCURACY: dict[str, Case] = {
    # 1. Online FP8 loads the 16-bit checkpoint first: vLLM's Fp8LinearMethod.create_weights makes
    # the weight in params_dtype when the checkpoint is not FP8, and quantizes it only in
    # process_weights_after_loading (vllm/model_executor/layers/quantization/fp8.py,
    # https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/model_executor/layers/quantization/fp8.py).
    # Qwen2.5-14B: 29.54 GB = 27.51 GiB of bf16 + 1.5 GiB CUDA context > 22 GiB on an L4.
    "online-fp8-load-peak-skips-to-gptq": Case(
        "qwen2.5-14b",
        "nvidia-l4",
        2048,
        2,
        ref="Qwen/Qwen2.5-14B-Instruct-GPTQ-Int8",
        variant_quantization="gptq",
        reason="needs 29.01 GiB per GPU while loading",
    ),
    "online-fp8-asked-for-is-refused-with-the-load-peak": Case(
        "qwen2.5-14b",
        "nvidia-l4",
        2048,
        2,
        quantization="fp8",
        field="spec.hardware.tier",
        refused="29.01 GiB per GPU while loading (vLLM loads the 16-bit weights, then quantizes) > 22.00",
    ),
    "online-fp8-that-loads-is-kept": Case(
        "qwen2.5-7b",
        "nvidia-l4",
        2048,
        2,
        quantization="fp8",
        ref="Qwen/Qwen2.5-7B-Instruct",
        variant_quantization="fp8",
        load_peak_gib=15.69,
    ),
    # 2. vLLM's QKVParallelLinear divides the KV heads by the GPU count, or replicates each head on
    # gpus / kv_heads GPUs when the GPUs outnumber them; divide() asserts either way
    # (vllm/model_executor/layers/linear.py). Phi-4: 10 KV heads (config.json num_key_value_heads).
    "tp-must-divide-kv-heads": Case(
        "phi-4", "gpu-large", gpus=4, field="spec.hardware.gpus", refused="must divide phi-4's 10 KV heads"
    ),
    "tp-dividing-kv-heads-is-fine": Case("phi-4", "gpu-large", gpus=2, ref="microsoft/phi-4"),
    # Qwen3-30B-A3B: 4 KV heads x 128 x 48 layers; on 8 GPUs each head is stored twice.
    "tp-replicated-kv-heads-double-the-kv": Case(
        "qwen3-30b-a3b",
        "gpu-large",
        32768,
        16,
        gpus=8,
        kv_gib=96.0,
        reason="each head stored on 2 GPUs",
    ),
    "tp-without-replication": Case("qwen3-30b-a3b", "gpu-large", 32768, 16, gpus=4, kv_gib=48.0),
    # 3. Gemma 3: five of every six layers keep a 1024-token window (512 for 270M/1B). vLLM's hybrid
    # KV-cache manager gives them SlidingWindowSpec, which holds window - 1 + the prefill chunk
    # (+1 block) per request (vllm/v1/kv_cache_interface.py); Ollama's gemma3 cache is
    # numParallel x window + batch for those layers (GraphSize in fs/ggml/ggml.go,
    # https://github.com/ollama/ollama/blob/v0.12.6/fs/ggml/ggml.go).
    # 27B: 10 global layers x 8,192 B/token x 32768 x 8 = 20 GiB, plus 52 windowed layers x 8,192 B
    # x (8 x 1040 + 8192) tokens = 6.55 GiB (the full formula said 124 GiB).
    "gemma-27b-32k-x8-fits-an-h100": Case(
        "gemma-3-27b",
        "nvidia-h100-80gb",
        32768,
        8,
        ref="RedHatAI/gemma-3-27b-it-FP8-dynamic",
        kv_gib=26.55,
        reason="52 sliding-window layers x 1024-token window (vLLM's hybrid KV-cache manager",
    ),
    "gemma-4b-32k-x4-fits-the-cpu-tier": Case(
        "gemma-3-4b",
        "cpu",
        32768,
        4,
        ref="gemma3:4b-it-q8_0",
        kv_gib=3.01,
        reason="29 sliding-window layers x 1024-token window (Ollama's sliding-window cache",
    ),
    # A context no longer than the window: every layer holds every token (26,624 B/token).
    "gemma-window-longer-than-the-context": Case(
        "gemma-3-1b", "nvidia-l4", 512, 64, kv_gib=round(26_624 * 512 * 64 / 2**30, 2)
    ),
    # 4. FP8 on Ampere: Fp8Config.get_min_capability() is 80 and Fp8LinearMethod uses the FP8 Marlin
    # kernel (weight-only) without compute capability 8.9 (fp8.py above).
    "fp8-on-a100-is-weight-only": Case(
        "qwen3-8b",
        "nvidia-a100-40gb",
        quantization="fp8",
        ref="Qwen/Qwen3-8B-FP8",
        reason="fp8: weight-only (W8A16, FP8 Marlin kernels) on compute capability 8.0 < 8.9",
    ),
    "fp8-on-a10g-is-weight-only": Case(
        "qwen3-8b", "nvidia-a10g", quantization="fp8", ref="Qwen/Qwen3-8B-FP8", reason="weight-only"
    ),
    "fp8-on-l4-is-w8a8": Case(
        "qwen3-8b", "nvidia-l4", quantization="fp8", reason="fp8: W8A8 on FP8 tensor cores"
    ),
    "fp8-below-ampere-is-refused": Case(
        "qwen3-8b", "nvidia-t4", quantization="fp8", field="spec.quantization", refused=">= 8.0"
    ),
    # 5. Catalog sizes (docs/catalog.md, make check-catalog): Qwen3-0.6B-FP8 is 0.752 GB by its
    # tensor layout, not 1.217; mistral:7b-instruct-q4_K_M is 4.4 GB.
    "qwen3-0.6b-fp8-size": Case("qwen3-0.6b", "nvidia-l4", quantization="fp8", weights_gib=0.7),
    "mistral-q4_k_m-size": Case("mistral-7b-v0.3", "cpu", 2048, 1, quantization="q4_k_m", weights_gib=4.1),
    # 6. Ollama's overhead: phi3 has no flash attention by default and no GraphSize formula, so
    # Ollama reserves gqa x KV / 6 = 3 x 8 GiB / 6 = 4 GiB of graph at 8192 x 8 (+ 0.5 GiB runtime
    # + one layer counted twice, 0.32 GiB); qwen3 runs with flash attention (FlashAttention() in
    # fs/ggml/ggml.go), so only the logits buffer 4 x 512 x (4096 + 151936) B = 0.30 GiB remains.
    "ollama-phi3-graph-without-flash-attention": Case(
        "phi-4-mini",
        "cpu",
        8192,
        8,
        overhead_gib=4.82,
        reason="compute graph 4.00 GiB (flash attention off",
    ),
    "ollama-qwen3-graph-with-flash-attention": Case(
        "qwen3-8b", "cpu", 8192, 8, reason="compute graph 0.30 GiB (flash attention on"
    ),
    # 7. Policy: contextLength x maxConcurrency must fit (vLLM starts when one request fits); the
    # plan says how many full-length requests the KV room holds.
    "policy-full-length-requests-shown": Case(
        "qwen3-8b", "nvidia-l4", full_length_requests=8, reason="the KV room holds 8 full-length"
    ),
    "policy-refuses-what-vllm-would-start-with-one-request": Case(
        "phi-3.5-mini", "nvidia-l4", field="spec.hardware.tier", refused="does not fit tier nvidia-l4"
    ),
    "policy-one-request-fits": Case("phi-3.5-mini", "nvidia-l4", 8192, 1, full_length_requests=3),
}


def _plan_case(case: Case) -> Plan:
    spec: dict[str, object] = {"model": {"catalog": case.model}, "hardware": {"tier": case.tier}}
    if case.context is not None:
        spec["model"] = {"catalog": case.model, "contextLength": case.context}
    if case.gpus is not None:
        spec["hardware"] = {"tier": case.tier, "gpus": case.gpus}
    if case.concurrency is not None:
        spec["maxConcurrency"] = case.concurrency
    if case.quantization is not None:
        spec["quantization"] = case.quantization
    if CONFIG.catalog[case.model].gated:
        spec["modelAccessSecretRef"] = {"name": "hf", "key": "token"}
    doc = {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": "m"},
        "spec": spec,
    }
    return plan_model(parse_document(doc), CONFIG)


@pytest.mark.parametrize("name", list(ACCURACY))
def test_accuracy(name: str) -> None:
    case = ACCURACY[name]
    if case.refused is not None:
        with pytest.raises(SpecError) as info:
            _plan_case(case)
        problem = info.value.problems[0]
        assert problem.field == case.field
        assert case.refused in problem.message
        return
    plan = _plan_case(case)
    memory = plan.memory
    assert plan.fits is True
    if case.ref is not None:
        assert plan.model_ref == case.ref
    if case.variant_quantization is not None:
        assert plan.quantization == case.variant_quantization
    for expected, actual in (
        (case.kv_gib, memory.kv_cache_gib),
        (case.weights_gib, memory.weights_gib),
        (case.overhead_gib, memory.overhead_gib),
        (case.load_peak_gib, memory.load_peak_gib),
    ):
        if expected is not None:
            assert actual == pytest.approx(expected, abs=0.011)
    if case.full_length_requests is not None:
        assert memory.full_length_requests == case.full_length_requests
    assert memory.full_length_requests is not None
    assert memory.full_length_requests >= plan.max_concurrency
    if case.reason is not None:
        assert any(case.reason in reason for reason in plan.reasons), plan.reasons
