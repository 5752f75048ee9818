"""LoRA adapters in the plan: the memory vLLM reserves for them, and where they are refused.

The numbers are the formula of docs/planner.md ("LoRA adapters") worked by hand from the
catalog's architecture fields.
"""

from __future__ import annotations

from typing import Any

import pytest

from slm_operator.api.errors import FitError, SpecError
from slm_operator.api.parse import parse_document
from slm_operator.catalog.loader import builtin_config
from slm_operator.planning.lora import lora_elements_per_slot
from slm_operator.planning.memory import GIB
from slm_operator.planning.planner import plan_model

CONFIG = builtin_config()
SQL = {"name": "sql", "source": "hf://acme/qwen3-8b-sql-lora"}
SUPPORT = {"name": "support", "source": "pvc://adapters/support"}


def doc(**spec: Any) -> dict[str, Any]:
    spec.setdefault("model", {"catalog": "qwen3-8b"})
    spec.setdefault("hardware", {"tier": "nvidia-l4"})
    return {
        "apiVersion": "slm.dev/v1alpha1",
        "kind": "SmallLanguageModel",
        "metadata": {"name": "qwen", "namespace": "ai"},
        "spec": spec,
    }


def plan(**spec: Any) -> Any:
    return plan_model(parse_document(doc(**spec)), CONFIG)


def test_worked_example_qwen3_8b_rank_64_two_slots() -> None:
    # Qwen3-8B: 36 layers, hidden 4096, 32 x 128 query dims, 8 x 128 KV dims, intermediate 12288.
    per_layer = 64 * (7 * 4096 + 2 * 32 * 128 + 2 * 8 * 128 + 3 * 12288)
    assert per_layer == 4_849_664
    assert lora_elements_per_slot(CONFIG.catalog["qwen3-8b"], 64, 1) == 36 * per_layer
    expected_bytes = 36 * per_layer * 2 * 2  # two slots, 2 bytes per element
    assert expected_bytes == 698_351_616  # 0.65 GiB

    with_lora = plan(adapters=[SQL, SUPPORT], lora={"maxRank": 64, "maxLoras": 2})
    without = plan()
    assert with_lora.memory.lora_gib == round(expected_bytes / GIB, 2) == 0.65
    assert without.memory.lora_gib is None
    assert with_lora.lora is not None
    assert (with_lora.lora.max_loras, with_lora.lora.max_rank) == (2, 64)
    assert any("LoRA: 2 adapter(s), maxLoras 2 x maxRank 64 reserve 0.65 GiB" in r for r in with_lora.reasons)


def test_lora_memory_moves_auto_quantization_to_a_smaller_variant() -> None:
    # Without adapters FP8 fits an L4 (19.73 of 19.80 GiB); 0.65 GiB of LoRA slots push it over,
    # and the planner takes the next variant instead of failing at start-up.
    without = plan()
    assert without.quantization == "fp8"
    with_lora = plan(adapters=[SQL, SUPPORT], lora={"maxRank": 64, "maxLoras": 2})
    assert with_lora.quantization == "awq"
    assert any("Qwen/Qwen3-8B-FP8 (fp8) needs 20.38 GiB > 19.80" in r for r in with_lora.reasons)


def test_lora_memory_is_part_of_the_overhead_and_the_requirement() -> None:
    without = plan(quantization="awq")
    with_lora = plan(quantization="awq", adapters=[SQL, SUPPORT], lora={"maxRank": 64, "maxLoras": 2})
    assert without.memory.overhead_gib is not None
    assert without.memory.required_gib is not None
    assert with_lora.memory.overhead_gib == pytest.approx(without.memory.overhead_gib + 0.65, abs=0.011)
    assert with_lora.memory.required_gib == pytest.approx(without.memory.required_gib + 0.65, abs=0.011)


def test_default_slots_are_one_per_adapter_at_rank_16() -> None:
    planned = plan(adapters=[SQL, SUPPORT])
    assert planned.lora is not None
    assert (planned.lora.max_loras, planned.lora.max_rank) == (2, 16)
    elements = lora_elements_per_slot(CONFIG.catalog["qwen3-8b"], 16, 1)
    assert elements is not None
    assert planned.memory.lora_gib == round(elements * 2 * 2 / GIB, 2)


def test_tensor_parallel_copies_the_replicated_halves_to_every_gpu() -> None:
    entry = CONFIG.catalog["qwen3-8b"]
    one, two = lora_elements_per_slot(entry, 16, 1), lora_elements_per_slot(entry, 16, 2)
    assert one is not None
    assert two is not None
    # A of q, k, v, gate, up and B of o, down (7 x hidden per layer) exist on each GPU.
    assert two - one == entry.layers * 16 * 7 * 4096


def test_too_many_slots_are_refused_with_the_numbers_and_the_field() -> None:
    with pytest.raises(FitError) as caught:
        plan(adapters=[SQL], lora={"maxRank": 512, "maxLoras": 16})
    fields = {p.field: p.message for p in caught.value.problems}
    assert "does not fit tier nvidia-l4" in fields["spec.hardware.tier"]
    assert fields["spec.lora"] == (
        "the overhead above includes 41.62 GiB for LoRA (maxLoras 16 x maxRank 512); "
        "lower spec.lora.maxLoras or spec.lora.maxRank to free it"
    )


def test_adapters_on_a_tier_that_runs_ollama_are_refused() -> None:
    with pytest.raises(SpecError) as caught:
        plan(model={"catalog": "qwen3-0.6b"}, hardware={"tier": "cpu"}, adapters=[SQL])
    [problem] = caught.value.problems
    assert problem.field == "spec.adapters"
    assert "served by vLLM only, but this model runs on ollama (tier cpu)" in problem.message


def test_an_adapter_named_like_the_base_model_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        plan(adapters=[SQL, {"name": "qwen", "source": "hf://acme/other"}])
    [problem] = caught.value.problems
    assert problem.field == "spec.adapters[1].name"
    assert "the base model's served name" in problem.message


def test_outside_the_catalog_the_lora_memory_is_a_warning() -> None:
    planned = plan(model={"source": "hf://acme/base-3b", "parametersBillions": 3}, adapters=[SQL])
    assert planned.lora is not None
    assert planned.memory.lora_gib is None
    assert any("LoRA memory not counted" in w and "outside the catalog" in w for w in planned.warnings)


def test_mixture_of_experts_lora_memory_is_a_warning() -> None:
    planned = plan(model={"catalog": "qwen3-30b-a3b"}, hardware={"tier": "gpu-large"}, adapters=[SQL])
    assert planned.memory.lora_gib is None
    assert any("no dense architecture for qwen3-30b-a3b" in w for w in planned.warnings)


def test_more_slots_than_adapters_is_a_warning() -> None:
    planned = plan(adapters=[SQL], lora={"maxLoras": 4})
    assert any("spec.lora.maxLoras 4 exceeds the 1 adapter(s)" in w for w in planned.warnings)
    assert not any("maxLoras" in w for w in plan(adapters=[SQL, SUPPORT]).warnings)
