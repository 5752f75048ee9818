"""The planner's rules (docs/planner.md), one behaviour per test: every refusal names the field
and carries the numbers; every choice is explained."""

from __future__ import annotations

import re
from typing import Any

import pytest

from slm_operator.api.errors import FitError, SpecError
from slm_operator.api.parse import parse_document
from slm_operator.catalog.loader import builtin_config, load_config_text
from slm_operator.planning.memory import GIB, quantity_bytes
from slm_operator.planning.planner import plan_model

CONFIG = builtin_config()


def doc(spec: dict[str, Any], name: str = "m") -> dict[str, Any]:
    return {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    }


def plan(spec: dict[str, Any], config: Any = CONFIG) -> Any:
    return plan_model(parse_document(doc(spec)), config)


def refusal(spec: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(SpecError) as info:
        plan(spec)
    assert len(info.value.problems) >= 1
    problem = info.value.problems[0]
    return problem.field, problem.message


def numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]


def test_memory_math_adds_up_and_is_explained() -> None:
    p = plan({"model": {"catalog": "qwen3-8b"}, "hardware": {"tier": "nvidia-l4"}})
    m = p.memory
    assert m.weights_gib
    assert m.kv_cache_gib
    assert m.overhead_gib
    assert m.required_gib
    assert m.available_gib
    assert m.required_gib == pytest.approx(m.weights_gib + m.kv_cache_gib + m.overhead_gib, abs=0.02)
    assert m.required_gib <= m.available_gib
    entry = CONFIG.catalog["qwen3-8b"]
    # KV: 2 (K,V) x layers x kv heads x head dim x 2 bytes x context x concurrency
    expected_kv = 2 * entry.layers * entry.kv_heads * entry.head_dim * 2 * 8192 * 8 / GIB
    assert m.kv_cache_gib == pytest.approx(expected_kv, abs=0.01)
    tier = CONFIG.tiers["nvidia-l4"]
    assert m.available_gib == pytest.approx(tier.gpu_memory_gib * tier.gpu_memory_utilization, abs=0.01)
    assert any(r.startswith("memory: ") and "B/token" in r for r in p.reasons)
    assert p.fits is True


def test_fp8_kv_cache_halves_the_kv_estimate() -> None:
    base = {"model": {"catalog": "qwen3-4b"}, "hardware": {"tier": "nvidia-l4"}}
    plain = plan(base)
    fp8 = plan({**base, "vllm": {"extraArgs": ["--kv-cache-dtype", "fp8"]}})
    assert fp8.memory.kv_cache_gib == pytest.approx(plain.memory.kv_cache_gib / 2, abs=0.01)
    assert fp8.kv_cache_dtype == "fp8"
    # the renderer emits --kv-cache-dtype from the plan, so the user's copy is not passed twice
    assert not any(a.startswith("--kv-cache-dtype") for a in fp8.engine_args)
    inline = plan({**base, "vllm": {"extraArgs": ["--kv-cache-dtype=fp8", "--enforce-eager"]}})
    assert inline.kv_cache_dtype == "fp8"
    assert inline.engine_args == ["--enforce-eager"]


def test_auto_prefers_quality_then_falls_back_to_smaller_variants_as_context_grows() -> None:
    small = plan({"model": {"catalog": "qwen3-8b", "contextLength": 2048}, "hardware": {"tier": "nvidia-l4"}})
    large = plan(
        {
            "model": {"catalog": "qwen3-8b", "contextLength": 32768},
            "hardware": {"tier": "nvidia-l4"},
            "maxConcurrency": 2,
        }
    )
    assert small.quantization == "none"  # bf16 fits with a short context
    assert large.quantization != "none"
    assert any("skipped" in r for r in large.reasons)


def test_bf16_needs_compute_capability_8() -> None:
    t4 = plan({"model": {"catalog": "qwen3-0.6b"}, "hardware": {"tier": "nvidia-t4"}})
    a100 = plan({"model": {"catalog": "qwen3-0.6b"}, "hardware": {"tier": "nvidia-a100-40gb"}})
    assert t4.dtype == "float16"
    assert a100.dtype == "bfloat16"
    assert any("--dtype half" in r for r in t4.reasons)


def test_explicit_quantization_the_hardware_cannot_run_is_refused_with_capabilities() -> None:
    field, message = refusal(
        {"model": {"catalog": "qwen3-8b"}, "hardware": {"tier": "nvidia-t4"}, "quantization": "fp8"}
    )
    assert field == "spec.quantization"
    assert "7.5" in message
    assert "8.0" in message  # FP8 loads from Ampere (weight-only below 8.9); a T4 is below that


def test_explicit_quantization_missing_from_catalog_lists_what_exists() -> None:
    field, message = refusal(
        {"model": {"catalog": "smollm2-135m"}, "hardware": {"tier": "cpu"}, "quantization": "q4_0"}
    )
    assert field == "spec.quantization"
    assert "available:" in message


def test_gated_model_without_token_is_refused_on_vllm_but_not_on_ollama() -> None:
    field, message = refusal({"model": {"catalog": "gemma-3-4b"}, "hardware": {"tier": "gpu-medium"}})
    assert field == "spec.modelAccessSecretRef"
    assert "gated" in message
    ollama = plan({"model": {"catalog": "gemma-3-4b"}, "hardware": {"tier": "cpu"}})
    assert ollama.runtime == "ollama"  # Ollama pulls from its own registry; no HF token needed


def test_context_beyond_model_maximum_is_refused_with_both_numbers() -> None:
    field, message = refusal(
        {"model": {"catalog": "smollm2-135m", "contextLength": 16384}, "hardware": {"tier": "cpu"}}
    )
    assert field == "spec.model.contextLength"
    assert {16384.0, 8192.0} <= set(numbers(message))


def test_model_that_fits_no_variant_is_a_fit_error_with_numbers_and_a_way_out() -> None:
    with pytest.raises(FitError) as info:
        plan({"model": {"catalog": "qwen3-30b-a3b"}, "hardware": {"tier": "edge"}})
    problem = info.value.problems[0]
    assert problem.field == "spec.hardware.tier"
    assert "GiB" in problem.message
    assert "offers" in problem.message
    assert "4.00" in problem.message  # the edge tier's memory


def test_fit_error_suggests_the_longest_context_that_would_fit() -> None:
    with pytest.raises(FitError) as info:
        plan({"model": {"catalog": "phi-4-mini", "contextLength": 131072}, "hardware": {"tier": "gpu-small"}})
    message = info.value.problems[0].message
    match = re.search(r"contextLength <= (\d+) at maxConcurrency 8", message)
    assert match, message
    suggested = int(match.group(1))
    fitted = plan(
        {"model": {"catalog": "phi-4-mini", "contextLength": suggested}, "hardware": {"tier": "gpu-small"}}
    )
    assert fitted.fits is True


def test_vllm_on_a_cpu_tier_is_refused() -> None:
    field, message = refusal(
        {"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "cpu"}, "runtime": "vllm"}
    )
    assert field == "spec.runtime"
    assert "GPU" in message


def test_unknown_tier_and_catalog_id_suggest_close_names() -> None:
    field, message = refusal({"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "gpu-smal"}})
    assert field == "spec.hardware.tier"
    assert "gpu-small" in message
    field, message = refusal({"model": {"catalog": "phi4-mini"}, "hardware": {"tier": "cpu"}})
    assert field == "spec.model.catalog"
    assert "phi-4-mini" in message


def test_gpus_on_a_cpu_tier_and_gpu_resources_are_refused() -> None:
    field, _ = refusal({"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "cpu", "gpus": 2}})
    assert field == "spec.hardware.gpus"
    field, message = refusal(
        {
            "model": {"catalog": "phi-4-mini"},
            "hardware": {"tier": "gpu-small"},
            "resources": {"limits": {"nvidia.com/gpu": "2"}},
        }
    )
    assert field == "spec.resources.limits.nvidia.com/gpu"
    assert "spec.hardware.gpus" in message


def test_tensor_parallel_must_divide_attention_heads() -> None:
    heads = CONFIG.catalog["phi-4-mini"].attention_heads
    bad = next(g for g in range(2, 17) if heads % g)
    field, message = refusal(
        {"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "gpu-large", "gpus": bad}}
    )
    assert field == "spec.hardware.gpus"
    assert str(heads) in message


def test_more_gpus_multiply_the_memory_and_set_the_gpu_limit() -> None:
    one = plan({"model": {"catalog": "qwen3-14b"}, "hardware": {"tier": "nvidia-l4"}, "maxConcurrency": 4})
    two = plan(
        {"model": {"catalog": "qwen3-14b"}, "hardware": {"tier": "nvidia-l4", "gpus": 2}, "maxConcurrency": 4}
    )
    assert two.memory.available_gib == pytest.approx(2 * one.memory.available_gib, abs=0.02)
    assert two.gpus == 2
    assert two.resources["limits"]["nvidia.com/gpu"] == "2"
    assert "tensor parallel 2" in two.reasons[0]
    # twice the memory buys a higher-quality variant than one GPU could hold
    assert two.memory.weights_gib > one.memory.weights_gib


def test_user_memory_limit_is_the_cpu_budget() -> None:
    tight = {
        "model": {"catalog": "phi-4-mini"},
        "hardware": {"tier": "cpu"},
        "maxConcurrency": 1,
        "resources": {"limits": {"memory": "6Gi"}},
    }
    p = plan(tight)
    assert p.memory.available_gib == pytest.approx(quantity_bytes("6Gi") / GIB)
    assert p.resources["limits"]["memory"] == "6Gi"


def test_scheduling_merges_tier_and_user_and_warns_on_overrides() -> None:
    p = plan(
        {
            "model": {"catalog": "qwen3-4b"},
            "hardware": {"tier": "nvidia-l4"},
            "scheduling": {
                "nodeSelector": {"pool": "inference"},
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "ai", "effect": "NoSchedule"}
                ],
                "priorityClassName": "high",
            },
        }
    )
    tier = CONFIG.tiers["nvidia-l4"]
    assert p.scheduling.node_selector["pool"] == "inference"
    for key, value in tier.node_selector.items():
        assert p.scheduling.node_selector[key] == value
    assert len(p.scheduling.tolerations) == len(tier.tolerations) + 1
    assert p.scheduling.priority_class_name == "high"


def test_sources_outside_the_catalog() -> None:
    unchecked = plan({"model": {"source": "hf://org/model"}, "hardware": {"tier": "gpu-medium"}})
    assert unchecked.fits is None
    assert unchecked.model_ref == "org/model"
    assert any("parametersBillions" in w for w in unchecked.warnings)

    too_big = {
        "model": {"source": "hf://org/model", "parametersBillions": 70},
        "hardware": {"tier": "gpu-medium"},
    }
    with pytest.raises(FitError) as info:
        plan(too_big)
    assert info.value.problems[0].field == "spec.model.parametersBillions"
    assert "70" in info.value.problems[0].message

    pvc = plan({"model": {"source": "pvc://models/qwen/7b"}, "hardware": {"tier": "gpu-medium"}})
    assert (pvc.source_kind, pvc.source_claim, pvc.model_ref) == ("pvc", "models", "/models/qwen/7b")

    ollama = plan(
        {"model": {"source": "ollama://qwen3:4b", "parametersBillions": 4}, "hardware": {"tier": "cpu"}}
    )
    assert ollama.runtime == "ollama"
    assert ollama.model_ref == "qwen3:4b"


def test_source_and_runtime_must_agree() -> None:
    field, _ = refusal(
        {"model": {"source": "ollama://qwen3:4b"}, "hardware": {"tier": "gpu-small"}, "runtime": "vllm"}
    )
    assert field == "spec.runtime"
    field, _ = refusal(
        {"model": {"source": "hf://org/model"}, "hardware": {"tier": "gpu-small"}, "runtime": "ollama"}
    )
    assert field == "spec.runtime"


def test_image_override_and_served_name() -> None:
    p = plan(
        {
            "model": {"catalog": "smollm2-135m", "servedName": "tiny"},
            "hardware": {"tier": "edge"},
            "image": "registry.example.com/ollama:0.12.6",
        }
    )
    assert p.image == "registry.example.com/ollama:0.12.6"
    assert p.served_name == "tiny"


def test_config_tiers_change_the_plan() -> None:
    config = load_config_text("tiers:\n  cpu:\n    memoryGiB: 2\n", origin="test")
    with pytest.raises(FitError):
        plan({"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "cpu"}}, config)
    assert plan({"model": {"catalog": "phi-4-mini"}, "hardware": {"tier": "cpu"}}).fits is True


def test_unverified_facts_are_surfaced_as_warnings() -> None:
    unverified = [
        (mid, v)
        for mid, entry in CONFIG.catalog.items()
        for v in entry.variants
        if not v.verified and v.runtime == "ollama"
    ]
    assert unverified, "the catalog marks some facts unverified"
    model_id, variant = unverified[0]
    p = plan(
        {
            "model": {"catalog": model_id, "contextLength": 512},
            "hardware": {"tier": "gpu-large"},
            "runtime": "ollama",
            "quantization": variant.quantization,
            "maxConcurrency": 1,
        }
    )
    assert p.model_ref == variant.ref
    assert any(variant.ref in w for w in p.warnings)


def test_planning_is_deterministic() -> None:
    spec = {
        "model": {"catalog": "gemma-3-12b"},
        "hardware": {"tier": "nvidia-l40s"},
        "modelAccessSecretRef": {"name": "hf", "key": "t"},
    }
    assert plan(spec) == plan(spec)


def test_fp8_source_on_ampere_says_weight_only() -> None:
    p = plan(
        {
            "model": {"source": "hf://org/model-FP8", "parametersBillions": 8},
            "hardware": {"tier": "nvidia-a100-40gb"},
            "quantization": "fp8",
        }
    )
    assert any("weight-only" in r for r in p.reasons)
    field, message = refusal(
        {"model": {"source": "hf://org/model-FP8"}, "hardware": {"tier": "nvidia-t4"}, "quantization": "fp8"}
    )
    assert field == "spec.quantization"
    assert "8.0" in message


def test_a_larger_prefill_chunk_widens_gemmas_windowed_kv() -> None:
    # vLLM's sliding-window layers hold window - 1 + max_num_batched_tokens tokens while a prompt
    # is prefilled (SlidingWindowSpec.max_memory_usage_bytes, vllm/v1/kv_cache_interface.py).
    base = {
        "model": {"catalog": "gemma-3-27b", "contextLength": 32768},
        "hardware": {"tier": "nvidia-h100-80gb"},
        "maxConcurrency": 8,
        "modelAccessSecretRef": {"name": "hf", "key": "t"},
    }
    default = plan(base)
    wide = plan({**base, "vllm": {"extraArgs": ["--max-num-batched-tokens", "32768"]}})
    windowed_layer_bytes = 52 * 2 * 16 * 128 * 2
    extra = windowed_layer_bytes * (32768 - 8192) / GIB
    assert wide.memory.kv_cache_gib == pytest.approx(default.memory.kv_cache_gib + extra, abs=0.02)
