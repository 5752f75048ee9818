"""The facts every later planning step reads: the tier, the runtime, the GPU count, the memory
limit and the KV-cache element size, checked once (every problem at once, naming its field),
and whether a catalog model can be split over that GPU count.
"""

from __future__ import annotations

from dataclasses import dataclass

from slm_operator.api.config import Accelerator, CatalogModel, OperatorConfig, Tier
from slm_operator.api.errors import SpecError, SpecProblem
from slm_operator.api.plan import GPU_RESOURCE
from slm_operator.api.spec import Runtime, SmallLanguageModel, SmallLanguageModelSpec
from slm_operator.api.vllm_args import vllm_flag_values
from slm_operator.contract.runtime import Engine
from slm_operator.planning.formats import KV_CACHE_FLAG
from slm_operator.planning.memory import VLLM_MAX_PREFILL_CHUNK, gib, quantity_bytes
from slm_operator.planning.reasons import unknown


@dataclass(frozen=True)
class Context:
    model: SmallLanguageModel
    spec: SmallLanguageModelSpec
    config: OperatorConfig
    tier_name: str
    tier: Tier
    engine: Engine
    gpus: int
    memory_limit_gib: float
    kv_element_bytes: int
    prefill_chunk: int | None = None


def build_context(model: SmallLanguageModel, config: OperatorConfig) -> Context:
    """The context of ``model``; raise SpecError naming every field that makes it impossible."""
    spec = model.spec
    problems: list[SpecProblem] = []
    tier_name = spec.hardware.tier
    tier = config.tiers.get(tier_name)
    if tier is None:
        raise SpecError([SpecProblem("spec.hardware.tier", unknown(tier_name, "tier", config.tiers))])
    if spec.model.catalog is not None and spec.model.catalog not in config.catalog:
        problems.append(
            SpecProblem("spec.model.catalog", unknown(spec.model.catalog, "catalog id", config.catalog))
        )

    engine, engine_problems = choose_engine(spec, tier_name, tier)
    problems.extend(engine_problems)
    gpus = tier.gpus
    if spec.hardware.gpus is not None:
        if tier.accelerator == Accelerator.NONE:
            problems.append(
                SpecProblem(
                    "spec.hardware.gpus", f"tier {tier_name} has no GPUs; remove gpus or pick a GPU tier"
                )
            )
        else:
            gpus = spec.hardware.gpus

    user_limits = spec.resources.limits or {}
    user_requests = spec.resources.requests or {}
    for field, values in (("limits", user_limits), ("requests", user_requests)):
        if GPU_RESOURCE in values:
            problems.append(
                SpecProblem(
                    f"spec.resources.{field}.{GPU_RESOURCE}",
                    "the GPU count comes from the tier; set spec.hardware.gpus instead",
                )
            )
    memory_limit_gib = tier.memory_gib
    if "memory" in user_limits:
        memory_limit_gib = gib(quantity_bytes(user_limits["memory"]))

    kv_element_bytes = 2
    if engine == Engine.VLLM and kv_cache_dtype(spec).startswith("fp8"):
        kv_element_bytes = 1
    prefill_chunk = None
    if engine == Engine.VLLM:
        # A larger --max-num-batched-tokens widens the chunk the sliding-window layers hold.
        chunk = vllm_flag_values(spec.vllm.extra_args).get("--max-num-batched-tokens")
        if chunk is not None and chunk.isdigit():
            prefill_chunk = max(int(chunk), VLLM_MAX_PREFILL_CHUNK)
    if problems:
        raise SpecError(problems)
    return Context(
        model, spec, config, tier_name, tier, engine, gpus, memory_limit_gib, kv_element_bytes, prefill_chunk
    )


def choose_engine(
    spec: SmallLanguageModelSpec, tier_name: str, tier: Tier
) -> tuple[Engine, list[SpecProblem]]:
    """The runtime: the one asked for, else the source's, else the tier's; with the problems of
    that choice (vLLM on a tier without GPUs, a source the runtime cannot serve)."""
    source = spec.model.source or ""
    if spec.runtime == Runtime.AUTO:
        if source.startswith("ollama://"):
            return Engine.OLLAMA, []
        engine = Engine.VLLM if source.startswith(("hf://", "pvc://")) else Engine(tier.runtime)
    else:
        engine = Engine(spec.runtime)
    problems: list[SpecProblem] = []
    if engine == Engine.VLLM and tier.accelerator == Accelerator.NONE:
        problems.append(
            SpecProblem(
                "spec.runtime" if spec.runtime != Runtime.AUTO else "spec.hardware.tier",
                f"vLLM needs a GPU tier, but tier {tier_name} has no accelerator; "
                "use runtime: ollama (with a catalog model or an ollama:// source) or a GPU tier",
            )
        )
    if source.startswith("ollama://") and engine == Engine.VLLM:
        problems.append(SpecProblem("spec.runtime", "an ollama:// source needs runtime ollama"))
    if source.startswith(("hf://", "pvc://")) and engine == Engine.OLLAMA:
        problems.append(
            SpecProblem("spec.runtime", "hf:// and pvc:// sources are served by vLLM; Ollama needs ollama://")
        )
    return engine, problems


def kv_cache_dtype(spec: SmallLanguageModelSpec) -> str:
    """The KV-cache dtype the user asked vLLM for in extraArgs (``auto`` otherwise)."""
    return vllm_flag_values(spec.vllm.extra_args).get(KV_CACHE_FLAG) or "auto"


def user_engine_args(spec: SmallLanguageModelSpec) -> list[str]:
    """The user's extraArgs minus --kv-cache-dtype, which the plan carries and the renderer emits."""
    args, skip_next = [], False
    for arg in spec.vllm.extra_args:
        if skip_next:
            skip_next = False
        elif arg == KV_CACHE_FLAG:
            skip_next = True
        elif not arg.startswith(f"{KV_CACHE_FLAG}="):
            args.append(arg)
    return args


def tensor_parallel_problems(gpus: int, catalog_id: str, entry: CatalogModel) -> list[SpecProblem]:
    """vLLM shards attention by heads: the GPU count must divide the query heads, and divide the
    KV heads or be a multiple of them (then each KV head is replicated on gpus / kv_heads GPUs).

    ModelConfig.verify_with_parallel_config checks the query heads; QKVParallelLinear divides
    kv_heads by the GPU count, or the GPU count by kv_heads when it is the larger
    (https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/model_executor/layers/linear.py).
    """
    problems = []
    if entry.attention_heads % gpus:
        problems.append(
            SpecProblem(
                "spec.hardware.gpus",
                f"tensor parallel size {gpus} must divide {catalog_id}'s "
                f"{entry.attention_heads} attention heads",
            )
        )
    if entry.kv_heads % gpus and gpus % entry.kv_heads:
        usable = sorted(
            {g for g in range(1, 17) if entry.attention_heads % g == 0}
            & {g for g in range(1, 17) if entry.kv_heads % g == 0 or g % entry.kv_heads == 0}
        )
        problems.append(
            SpecProblem(
                "spec.hardware.gpus",
                f"tensor parallel size {gpus} must divide {catalog_id}'s {entry.kv_heads} KV heads "
                f"(or be a multiple of them); GPU counts that work: {', '.join(map(str, usable))}",
            )
        )
    return problems
