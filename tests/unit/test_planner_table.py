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
from slm_operator.api.plan import Plan
from slm_operator.api.spec import parse_document
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
