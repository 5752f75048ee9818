"""The planner: spec + operator config → :class:`~slm_operator.api.plan.Plan` (docs/planner.md).

Pure: no Kubernetes client, no kopf. It chooses the runtime, the variant (the highest-quality
one the hardware can run that fits the tier's memory at the requested context and
concurrency), the dtype, the GPU count, scheduling and resources, and records a reason for
each choice. Requests that cannot be served raise :class:`SpecError` / :class:`FitError` whose
problems name the field and carry the numbers — never a silent fallback.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass

from slm_operator.api.config import Accelerator, CatalogModel, Engine, OperatorConfig, Tier, Variant
from slm_operator.api.errors import FitError, SpecError, SpecProblem
from slm_operator.api.plan import MemoryPlan, Plan, Scheduling, SourceKind
from slm_operator.api.spec import (
    Quantization,
    Runtime,
    SmallLanguageModel,
    SmallLanguageModelSpec,
)
from slm_operator.api.vllm_args import vllm_flag_values
from slm_operator.planning import lora, pod
from slm_operator.planning.memory import (
    VLLM_MAX_PREFILL_CHUNK,
    MemoryEstimate,
    available_gib,
    estimate,
    gib,
    max_fitting_context,
    quantity_bytes,
    round_gib,
)

# Quality order within one width (bits always dominate): the original checkpoint first; at 8
# bits FP8 and W8A8 before GPTQ-Int8 before GGUF Q8_0; at 4 bits AWQ before W4A16 before
# GPTQ-Int4 before the GGUF K-quant and Q4_0. One sequence satisfies both widths.
_METHOD_ORDER: tuple[str, ...] = (
    Quantization.NONE,
    Quantization.FP8,
    Quantization.INT8,
    Quantization.AWQ,
    Quantization.INT4,
    Quantization.GPTQ,
    Quantization.Q8_0,
    Quantization.Q4_K_M,
    Quantization.Q4_0,
)

# vLLM's minimum compute capability per format, for sources outside the catalog (vLLM's
# supported-hardware table, docs/features/quantization/supported_hardware.md): AWQ and INT8 W8A8
# from Turing (7.5), GPTQ from Volta (7.0), Marlin W4A16 from Ampere (8.0). FP8 loads from 8.0:
# Fp8Config.get_min_capability() is 80, and below 8.9 Fp8LinearMethod runs the weights through
# the FP8 Marlin kernel, weight-only (vllm/model_executor/layers/quantization/fp8.py,
# https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/model_executor/layers/quantization/fp8.py).
_FORMAT_MIN_CC: dict[str, float] = {
    Quantization.NONE: 7.0,
    Quantization.FP8: 8.0,
    Quantization.INT8: 7.5,
    Quantization.INT4: 8.0,
    Quantization.AWQ: 7.5,
    Quantization.GPTQ: 7.0,
}
BF16_MIN_CC = 8.0  # vLLM: "Bfloat16 is only supported on GPUs with compute capability of at least 8.0"
FP8_NATIVE_CC = 8.9  # FP8 tensor cores (W8A8 compute) from Ada; below it FP8 runs weight-only
ONLINE_QUANTIZATION_FLAG = "--quantization"

# Bytes per weight for size hints (parametersBillions). GGUF K-quants carry scales: Q4_K_M is
# about 4.85 bits/weight, Q8_0 8.5, Q4_0 4.5 (llama.cpp's quantization table).
_BYTES_PER_WEIGHT: dict[str, float] = {
    Quantization.NONE: 2.0,
    Quantization.FP8: 1.0,
    Quantization.INT8: 1.0,
    Quantization.GPTQ: 0.5,
    Quantization.AWQ: 0.5,
    Quantization.INT4: 0.5,
    Quantization.Q8_0: 8.5 / 8,
    Quantization.Q4_K_M: 4.85 / 8,
    Quantization.Q4_0: 4.5 / 8,
}
_OLLAMA_FORMATS = {Quantization.NONE, Quantization.Q8_0, Quantization.Q4_K_M, Quantization.Q4_0}
_GGUF_DTYPE: dict[str, str] = {
    Quantization.NONE: "f16",
    Quantization.Q8_0: "q8_0",
    Quantization.Q4_K_M: "q4_K_M",
    Quantization.Q4_0: "q4_0",
}
_GPU_RESOURCE = "nvidia.com/gpu"
KV_CACHE_FLAG = "--kv-cache-dtype"


@dataclass(frozen=True)
class _Context:
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


def plan_model(model: SmallLanguageModel, config: OperatorConfig) -> Plan:
    """Plan one model; raise SpecError/FitError (with field-named problems) if it cannot be served."""
    ctx = _context(model, config)
    # LoRA adapters (planning/lora.py): vLLM only; their slots are counted in _estimate.
    lora.check_adapters(model, ctx.engine)
    budget = lora.lora_budget(model.spec, config, ctx.gpus)
    try:
        if model.spec.model.catalog is not None:
            plan = _plan_catalog(ctx, config.catalog[model.spec.model.catalog])
        else:
            plan = _plan_source(ctx)
    except FitError as exc:
        raise lora.explain_fit_error(exc, budget) from None
    return lora.add_lora(plan, budget, model.spec.adapters, pod.download_policy(model.spec))


# --- context: tier, runtime, GPUs, memory limit ------------------------------------------------


def _context(model: SmallLanguageModel, config: OperatorConfig) -> _Context:
    spec = model.spec
    problems: list[SpecProblem] = []
    tier_name = spec.hardware.tier
    tier = config.tiers.get(tier_name)
    if tier is None:
        raise SpecError([SpecProblem("spec.hardware.tier", _unknown(tier_name, "tier", config.tiers))])
    if spec.model.catalog is not None and spec.model.catalog not in config.catalog:
        problems.append(
            SpecProblem("spec.model.catalog", _unknown(spec.model.catalog, "catalog id", config.catalog))
        )

    engine = _engine(spec, tier_name, tier, problems)
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
        if _GPU_RESOURCE in values:
            problems.append(
                SpecProblem(
                    f"spec.resources.{field}.{_GPU_RESOURCE}",
                    "the GPU count comes from the tier; set spec.hardware.gpus instead",
                )
            )
    memory_limit_gib = tier.memory_gib
    if "memory" in user_limits:
        memory_limit_gib = gib(quantity_bytes(user_limits["memory"]))

    kv_element_bytes = 2
    if engine == Engine.VLLM and _kv_cache_dtype(spec).startswith("fp8"):
        kv_element_bytes = 1
    prefill_chunk = None
    if engine == Engine.VLLM:
        # A larger --max-num-batched-tokens widens the chunk the sliding-window layers hold.
        chunk = vllm_flag_values(spec.vllm.extra_args).get("--max-num-batched-tokens")
        if chunk is not None and chunk.isdigit():
            prefill_chunk = max(int(chunk), VLLM_MAX_PREFILL_CHUNK)
    if problems:
        raise SpecError(problems)
    return _Context(
        model, spec, config, tier_name, tier, engine, gpus, memory_limit_gib, kv_element_bytes, prefill_chunk
    )


def _engine(spec: SmallLanguageModelSpec, tier_name: str, tier: Tier, problems: list[SpecProblem]) -> Engine:
    source = spec.model.source or ""
    if spec.runtime == Runtime.AUTO:
        if source.startswith("ollama://"):
            return Engine.OLLAMA
        engine = Engine.VLLM if source.startswith(("hf://", "pvc://")) else Engine(tier.runtime)
    else:
        engine = Engine(spec.runtime)
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
    return engine


def _kv_cache_dtype(spec: SmallLanguageModelSpec) -> str:
    """The KV-cache dtype the user asked vLLM for in extraArgs (``auto`` otherwise)."""
    return vllm_flag_values(spec.vllm.extra_args).get(KV_CACHE_FLAG) or "auto"


def _user_engine_args(spec: SmallLanguageModelSpec) -> list[str]:
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


# --- catalog models ----------------------------------------------------------------------------


def _plan_catalog(ctx: _Context, entry: CatalogModel) -> Plan:
    spec = ctx.spec
    catalog_id = spec.model.catalog or ""
    reasons: list[str] = []
    warnings: list[str] = []
    problems: list[SpecProblem] = []

    context_length = _context_length(spec, entry.max_context, catalog_id, ctx, problems, reasons)
    if entry.gated and ctx.engine == Engine.VLLM and spec.model_access_secret_ref is None:
        problems.append(
            SpecProblem(
                "spec.modelAccessSecretRef",
                f"{catalog_id} is gated on Hugging Face ({entry.license}): accept its licence there and "
                "reference a Secret holding an HF token",
            )
        )
    if ctx.engine == Engine.VLLM:
        problems.extend(_tensor_parallel_problems(ctx.gpus, catalog_id, entry))
    if problems:
        raise SpecError(problems)

    candidates = [v for v in entry.variants if v.runtime == ctx.engine]
    if not candidates:
        raise SpecError(
            [SpecProblem("spec.runtime", f"{catalog_id} has no {ctx.engine} variant in the catalog")]
        )
    if spec.quantization != Quantization.AUTO:
        wanted = [v for v in candidates if v.quantization == spec.quantization]
        if not wanted:
            have = ", ".join(sorted({str(v.quantization) for v in candidates}))
            raise SpecError(
                [
                    SpecProblem(
                        "spec.quantization",
                        f"{catalog_id} has no {spec.quantization} variant for {ctx.engine}; "
                        f"available: {have}",
                    )
                ]
            )
        candidates = wanted
    candidates.sort(key=_quality_key)

    runnable, unrunnable = _split_by_hardware(ctx, candidates)
    if not runnable:
        raise SpecError(
            [
                SpecProblem(
                    "spec.quantization" if spec.quantization != Quantization.AUTO else "spec.hardware.tier",
                    _cannot_run(ctx, unrunnable),
                )
            ]
        )

    estimates = [
        (v, _estimate(ctx, v.weight_bytes, entry, context_length, _load_bytes(entry, v))) for v in runnable
    ]
    chosen = next(((v, e) for v, e in estimates if e.fits), None)
    if chosen is None:
        raise FitError([_does_not_fit(ctx, catalog_id, estimates, context_length)])
    variant, est = chosen

    reasons.insert(0, _runtime_reason(ctx))
    reasons.append(_variant_reason(ctx, variant, estimates, unrunnable))
    dtype = _dtype(ctx, variant.quantization, reasons)
    fp8 = _fp8_reason(ctx, variant)
    if fp8 is not None:
        reasons.append(fp8)
    reasons.append(_memory_reason(est, context_length, ctx))
    reasons.append(_kv_reason(est, entry, context_length, ctx))
    if est.load_peak_gib is not None:
        reasons.append(
            f"load: {est.load_peak_gib:.2f} GiB per GPU while loading (16-bit weights before online "
            f"quantization + CUDA context) <= {est.load_limit_gib or 0:.2f} GiB"
        )
    if not variant.verified:
        warnings.append(f"variant {variant.ref}: {variant.note or 'not verified at the source'}")
    if not entry.verified:
        warnings.append(f"model {catalog_id}: {entry.note or 'some facts are not verified'}")
    _runtime_option_warnings(ctx, warnings)

    return _build_plan(
        ctx,
        model_ref=variant.ref,
        source_kind=SourceKind.OLLAMA if ctx.engine == Engine.OLLAMA else SourceKind.HF,
        source_claim=None,
        quantization=str(variant.quantization),
        dtype=dtype,
        context_length=context_length,
        engine_args=[*variant.vllm_args, *_user_engine_args(ctx.spec)] if ctx.engine == Engine.VLLM else [],
        gated=entry.gated,
        memory=est,
        fits=True,
        reasons=reasons,
        warnings=warnings,
    )


def _tensor_parallel_problems(gpus: int, catalog_id: str, entry: CatalogModel) -> list[SpecProblem]:
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


def _load_bytes(entry: CatalogModel, variant: Variant) -> float | None:
    """What vLLM holds in GPU memory while loading a variant quantized online: the 16-bit weights.

    vLLM creates the layers of an online-quantized model in the checkpoint's dtype, loads every
    weight, then quantizes in process_weights_after_loading (Fp8LinearMethod in
    vllm/model_executor/layers/quantization/fp8.py), so the 16-bit checkpoint must fit first.
    """
    if ONLINE_QUANTIZATION_FLAG not in variant.vllm_args:
        return None
    originals = [
        v for v in entry.variants if v.runtime == Engine.VLLM and v.ref == variant.ref and v.bits == 16
    ]
    return float(originals[0].weight_bytes if originals else entry.parameters * 2)


def _quality_key(variant: Variant) -> tuple[int, int]:
    return (-variant.bits, _METHOD_ORDER.index(variant.quantization))


def _split_by_hardware(ctx: _Context, variants: list[Variant]) -> tuple[list[Variant], list[Variant]]:
    """Variants the tier's GPUs can run (all GGUF variants run on Ollama)."""
    if ctx.engine == Engine.OLLAMA or ctx.tier.compute_capability is None:
        return variants, []
    cc = ctx.tier.compute_capability
    runnable = [v for v in variants if (v.min_compute_capability or 0.0) <= cc]
    return runnable, [v for v in variants if v not in runnable]


def _cannot_run(ctx: _Context, unrunnable: list[Variant]) -> str:
    needs = ", ".join(
        f"{v.ref} ({v.quantization}) needs compute capability >= {v.min_compute_capability}"
        for v in unrunnable
    )
    return f"tier {ctx.tier_name} has compute capability {ctx.tier.compute_capability}: {needs}"


def _estimate(
    ctx: _Context,
    weight_bytes: float,
    entry: CatalogModel | None,
    context_length: int,
    load_bytes: float | None = None,
) -> MemoryEstimate:
    return lora.with_lora(
        estimate(
            engine=ctx.engine,
            weight_bytes=weight_bytes,
            model=entry,
            kv_element_bytes=ctx.kv_element_bytes,
            prefill_chunk=ctx.prefill_chunk,
            load_bytes=load_bytes,
            context_length=context_length,
            max_concurrency=ctx.spec.max_concurrency,
            tier=ctx.tier,
            gpus=ctx.gpus,
            memory_limit_gib=ctx.memory_limit_gib,
            overheads=ctx.config.defaults.overheads,
        ),
        lora.lora_budget(ctx.spec, ctx.config, ctx.gpus),
    )


def _does_not_fit(
    ctx: _Context, what: str, estimates: list[tuple[Variant, MemoryEstimate]], context_length: int
) -> SpecProblem:
    variant, est = estimates[-1]  # the smallest runnable variant
    if not est.loads:
        message = (
            f"{what} does not fit tier {ctx.tier_name}: its smallest {ctx.engine} variant "
            + _load_peak_text(variant, est)
        )
        return SpecProblem(
            "spec.hardware.tier", message + "; choose a larger tier, more GPUs or a smaller model"
        )
    required = est.required_gib if est.required_gib is not None else est.weights_gib + est.overhead_gib
    kv = f" + KV cache {est.kv_cache_gib:.2f}" if est.kv_cache_gib is not None else ""
    message = (
        f"{what} does not fit tier {ctx.tier_name}: its smallest {ctx.engine} variant {variant.ref} "
        f"({variant.quantization}) needs {required:.2f} GiB (weights {est.weights_gib:.2f}{kv} "
        f"+ overhead {est.overhead_gib:.2f}) but the tier offers {est.available_gib:.2f} GiB"
    )
    longest = max_fitting_context(est, ctx.spec.max_concurrency)
    if longest >= 256:
        message += (
            f"; it would fit with contextLength <= {longest} at maxConcurrency {ctx.spec.max_concurrency}"
            f" (asked {context_length})"
        )
    else:
        message += "; choose a larger tier, more GPUs or a smaller model"
    return SpecProblem("spec.hardware.tier", message)


def _context_length(
    spec: SmallLanguageModelSpec,
    maximum: int,
    what: str,
    ctx: _Context,
    problems: list[SpecProblem],
    reasons: list[str],
) -> int:
    asked = spec.model.context_length
    if asked is None:
        default = min(maximum, ctx.config.defaults.context_length)
        reasons.append(
            f"contextLength {default}: default min(model maximum {maximum}, "
            f"{ctx.config.defaults.context_length})"
        )
        return default
    if asked > maximum:
        problems.append(
            SpecProblem(
                "spec.model.contextLength", f"{asked} exceeds {what}'s maximum context of {maximum} tokens"
            )
        )
    return asked


def _dtype(ctx: _Context, quantization: str, reasons: list[str]) -> str:
    if ctx.engine == Engine.OLLAMA:
        return _GGUF_DTYPE.get(quantization, quantization)
    cc = ctx.tier.compute_capability or 0.0
    if cc >= BF16_MIN_CC:
        reasons.append(f"dtype bfloat16: compute capability {cc} >= {BF16_MIN_CC}")
        return "bfloat16"
    reasons.append(f"dtype float16 (--dtype half): compute capability {cc} < {BF16_MIN_CC} has no bfloat16")
    return "float16"


def _runtime_reason(ctx: _Context) -> str:
    how = "asked for" if ctx.spec.runtime != Runtime.AUTO else "auto"
    kind = (
        f"{ctx.gpus} x GPU ({ctx.tier.gpu_memory_gib} GiB, compute capability {ctx.tier.compute_capability})"
        if ctx.tier.accelerator != Accelerator.NONE
        else f"CPU, {ctx.memory_limit_gib:g} GiB memory"
    )
    tp = f", tensor parallel {ctx.gpus}" if ctx.engine == Engine.VLLM else ""
    return f"runtime {ctx.engine} ({how}) on tier {ctx.tier_name}: {kind}{tp}"


def _variant_reason(
    ctx: _Context,
    chosen: Variant,
    estimates: list[tuple[Variant, MemoryEstimate]],
    unrunnable: list[Variant],
) -> str:
    mode = "asked for" if ctx.spec.quantization != Quantization.AUTO else "highest-quality variant that fits"
    skipped: list[str] = [
        f"{v.ref} ({v.quantization}) needs compute capability >= {v.min_compute_capability}"
        for v in unrunnable
    ]
    for variant, est in estimates:
        if variant is chosen:
            break
        if not est.loads:
            skipped.append(_load_peak_text(variant, est))
            continue
        skipped.append(
            f"{variant.ref} ({variant.quantization}) needs {est.required_gib or 0:.2f} GiB "
            f"> {est.available_gib:.2f}"
        )
    text = f"variant {chosen.ref} ({chosen.quantization}, {chosen.bits}-bit): {mode}"
    return text + (f"; skipped: {'; '.join(skipped)}" if skipped else "")


def _load_peak_text(variant: Variant, est: MemoryEstimate) -> str:
    return (
        f"{variant.ref} ({variant.quantization}, quantized online) needs {est.load_peak_gib or 0:.2f} GiB "
        f"per GPU while loading (vLLM loads the 16-bit weights, then quantizes) > "
        f"{est.load_limit_gib or 0:.2f} GiB"
    )


def _fp8_reason(ctx: _Context, variant: Variant) -> str | None:
    """FP8 below compute capability 8.9 runs weight-only (FP8 Marlin): say so."""
    cc = ctx.tier.compute_capability
    if ctx.engine != Engine.VLLM or variant.quantization != Quantization.FP8 or cc is None:
        return None
    native = variant.native_compute_capability or FP8_NATIVE_CC
    if cc >= native:
        return f"fp8: W8A8 on FP8 tensor cores (compute capability {cc} >= {native})"
    return (
        f"fp8: weight-only (W8A16, FP8 Marlin kernels) on compute capability {cc} < {native}: "
        "weights are stored in 8 bits, activations and matrix products stay 16-bit"
    )


def _kv_reason(est: MemoryEstimate, entry: CatalogModel, context_length: int, ctx: _Context) -> str:
    """How the KV figure was counted: per layer type, replication, full-length requests held."""
    kv = est.kv
    assert kv is not None
    parts = []
    if entry.sliding_window is not None:
        runtime = (
            "vLLM's hybrid KV-cache manager" if ctx.engine == Engine.VLLM else "Ollama's sliding-window cache"
        )
        parts.append(
            f"KV per layer type: {entry.global_layers} global layers x {context_length} tokens, "
            f"{entry.local_layers} sliding-window layers x {entry.sliding_window.window}-token window "
            f"({runtime} keeps only the window, plus one prefill chunk of up to {kv.shared_tokens} tokens)"
        )
    if kv.replication > 1:
        parts.append(
            f"KV heads replicated: {entry.kv_heads} KV heads on {ctx.gpus} GPUs, each head stored "
            f"on {kv.replication} GPUs ({kv.replication}x the KV cache)"
        )
    held = est.full_length_requests(context_length)
    starts = " (vLLM itself starts when one fits)" if ctx.engine == Engine.VLLM else ""
    parts.append(
        f"capacity: the KV room holds {held} full-length ({context_length}-token) requests; the plan "
        f"requires maxConcurrency {ctx.spec.max_concurrency} of them{starts}"
    )
    if est.graph_gib is not None:
        parts.append(
            f"Ollama overhead includes its compute graph {est.graph_gib:.2f} GiB "
            f"(flash attention {'on' if est.flash_attention else 'off'} for this architecture)"
        )
    return "; ".join(parts)


def _memory_reason(est: MemoryEstimate, context_length: int, ctx: _Context) -> str:
    if est.kv_cache_gib is None or est.kv_bytes_per_token is None:
        return (
            f"memory: weights {est.weights_gib:.2f} + overhead {est.overhead_gib:.2f} GiB of "
            f"{est.available_gib:.2f} available; KV cache unknown for a source outside the catalog"
        )
    offer = (
        f"{ctx.gpus} x {ctx.tier.gpu_memory_gib} GiB x {ctx.tier.gpu_memory_utilization}"
        if ctx.tier.accelerator != Accelerator.NONE and ctx.engine == Engine.VLLM
        else f"{est.available_gib:g} GiB"
    )
    kv = est.kv
    if kv is not None and kv.local_bytes_per_token:
        local = kv.local_tokens(context_length, ctx.spec.max_concurrency)
        how = (
            f"{kv.global_bytes_per_token} B/token x {context_length} x {ctx.spec.max_concurrency} "
            f"+ {kv.local_bytes_per_token} B/token x {local} windowed tokens"
        )
    else:
        how = f"{est.kv_bytes_per_token} B/token x {context_length} x {ctx.spec.max_concurrency}"
    return (
        f"memory: weights {est.weights_gib:.2f} + KV {est.kv_cache_gib:.2f} ({how}) "
        f"+ overhead {est.overhead_gib:.2f} = "
        f"{est.required_gib or 0:.2f} GiB <= {est.available_gib:.2f} GiB ({offer})"
    )


def _runtime_option_warnings(ctx: _Context, warnings: list[str]) -> None:
    if ctx.engine == Engine.OLLAMA and ctx.spec.vllm.extra_args:
        warnings.append("spec.vllm.extraArgs is ignored: the runtime is Ollama")
    if ctx.engine == Engine.VLLM and ctx.spec.ollama.modelfile is not None:
        warnings.append("spec.ollama.modelfile is ignored: the runtime is vLLM")


# --- explicit sources (hf://, ollama://, pvc://) ------------------------------------------------


def _plan_source(ctx: _Context) -> Plan:
    spec = ctx.spec
    source = spec.model.source or ""
    scheme, _, rest = source.partition("://")
    reasons: list[str] = [_runtime_reason(ctx)]
    warnings: list[str] = []
    problems: list[SpecProblem] = []

    quantization = spec.quantization
    if ctx.engine == Engine.OLLAMA:
        if quantization not in (Quantization.AUTO, *_OLLAMA_FORMATS):
            problems.append(
                SpecProblem("spec.quantization", f"{quantization} is not a GGUF format Ollama serves")
            )
        assumed = Quantization.Q4_K_M if quantization == Quantization.AUTO else quantization
    else:
        if quantization in _OLLAMA_FORMATS - {Quantization.NONE}:
            problems.append(
                SpecProblem(
                    "spec.quantization", f"{quantization} is a GGUF format; vLLM serves hf:// checkpoints"
                )
            )
        assumed = Quantization.NONE if quantization == Quantization.AUTO else quantization
        min_cc = _FORMAT_MIN_CC.get(assumed, 7.0)
        cc = ctx.tier.compute_capability or 0.0
        if cc < min_cc:
            problems.append(
                SpecProblem(
                    "spec.quantization",
                    f"{assumed} needs compute capability >= {min_cc}; tier {ctx.tier_name} has {cc}",
                )
            )
    if problems:
        raise SpecError(problems)

    context_length = spec.model.context_length or ctx.config.defaults.context_length
    if spec.model.context_length is None:
        reasons.append(
            f"contextLength {context_length}: the operator default (the model's maximum is unknown)"
        )

    model_ref, claim = rest, None
    if scheme == SourceKind.PVC:
        claim, _, path = rest.partition("/")
        model_ref = f"/models/{path}" if path else "/models"

    params = spec.model.parameters_billions
    memory: MemoryEstimate | None = None
    fits: bool | None = None
    if params is None:
        warnings.append("fit unchecked: set spec.model.parametersBillions for a source outside the catalog")
    else:
        weight_bytes = params * 1e9 * _BYTES_PER_WEIGHT[assumed]
        memory = _estimate(ctx, weight_bytes, None, context_length)
        fits = memory.fits
        if fits is False:
            raise FitError(
                [
                    SpecProblem(
                        "spec.model.parametersBillions",
                        f"{params:g}B parameters as {assumed} need {memory.weights_gib:.2f} GiB of weights + "
                        f"{memory.overhead_gib:.2f} GiB overhead, more than the "
                        f"{memory.available_gib:.2f} GiB "
                        f"tier {ctx.tier_name} offers",
                    )
                ]
            )
        reasons.append(_memory_reason(memory, context_length, ctx))
        warnings.append("fit partly checked: KV-cache size is unknown for a source outside the catalog")
    if quantization == Quantization.AUTO:
        reasons.append(
            "quantization: taken from the checkpoint (vLLM detects it)"
            if ctx.engine == Engine.VLLM
            else "quantization: the tag's own GGUF format (assumed q4_K_M for the estimate)"
        )
    dtype = _dtype(ctx, str(assumed), reasons)
    if ctx.engine == Engine.VLLM and assumed == Quantization.FP8:
        cc = ctx.tier.compute_capability or 0.0
        reasons.append(
            f"fp8: W8A8 on FP8 tensor cores (compute capability {cc} >= {FP8_NATIVE_CC})"
            if cc >= FP8_NATIVE_CC
            else f"fp8: weight-only (W8A16, FP8 Marlin kernels) on compute capability {cc} < {FP8_NATIVE_CC}"
        )
    _runtime_option_warnings(ctx, warnings)
    return _build_plan(
        ctx,
        model_ref=model_ref,
        source_kind=SourceKind(scheme),
        source_claim=claim,
        quantization="auto" if quantization == Quantization.AUTO else str(quantization),
        dtype=dtype,
        context_length=context_length,
        engine_args=_user_engine_args(spec) if ctx.engine == Engine.VLLM else [],
        gated=False,
        memory=memory,
        fits=fits,
        reasons=reasons,
        warnings=warnings,
    )


# --- shared assembly ----------------------------------------------------------------------------


def _build_plan(
    ctx: _Context,
    *,
    model_ref: str,
    source_kind: SourceKind,
    source_claim: str | None,
    quantization: str,
    dtype: str,
    context_length: int,
    engine_args: list[str],
    gated: bool,
    memory: MemoryEstimate | None,
    fits: bool | None,
    reasons: list[str],
    warnings: list[str],
) -> Plan:
    spec, tier, config = ctx.spec, ctx.tier, ctx.config
    image = spec.image or (config.images.vllm if ctx.engine == Engine.VLLM else config.images.ollama)
    if spec.image:
        reasons.append(f"image {spec.image}: spec.image override")
    gpus = ctx.gpus if tier.accelerator != Accelerator.NONE else 0
    return Plan(
        name=ctx.model.name,
        namespace=ctx.model.namespace,
        runtime=ctx.engine,
        image=image,
        model_ref=model_ref,
        source_kind=source_kind,
        source_claim=source_claim,
        served_name=spec.model.served_name or ctx.model.name,
        revision=spec.model.revision,
        quantization=quantization,
        dtype=dtype,
        kv_cache_dtype=_kv_cache_dtype(spec) if ctx.engine == Engine.VLLM else "auto",
        tier=ctx.tier_name,
        accelerator=str(tier.accelerator),
        gpus=gpus,
        gpu_memory_utilization=tier.gpu_memory_utilization if ctx.engine == Engine.VLLM and gpus else None,
        context_length=context_length,
        max_concurrency=spec.max_concurrency,
        engine_args=engine_args,
        gated=gated,
        memory=_memory_plan(memory, ctx, context_length),
        fits=fits,
        reasons=reasons,
        warnings=warnings,
        scheduling=_scheduling(ctx, warnings),
        resources=_resources(ctx, gpus),
        api_key=pod.api_key(ctx.model),
        generate_api_key=pod.generates_api_key(spec),
        hf_token=pod.hf_token(spec, ctx.engine),
        modelfile=pod.modelfile(spec, ctx.engine, source_kind),
        pull_policy=pod.pull_policy(spec, source_kind),
        hub_offline=not spec.network.allow_egress,
        image_pull_secrets=pod.image_pull_secrets(spec, config),
        replicas=pod.replicas(spec),
        min_replicas=pod.min_replicas(spec),
        storage=spec.storage,
        rollout=pod.rollout(spec.storage),
    )


def _memory_plan(est: MemoryEstimate | None, ctx: _Context, context_length: int) -> MemoryPlan:
    if est is None:
        return MemoryPlan(
            available_gib=round_gib(available_gib(ctx.engine, ctx.tier, ctx.gpus, ctx.memory_limit_gib))
        )
    return MemoryPlan(
        weights_gib=round_gib(est.weights_gib),
        kv_cache_gib=None if est.kv_cache_gib is None else round_gib(est.kv_cache_gib),
        overhead_gib=round_gib(est.overhead_gib),
        required_gib=None if est.required_gib is None else round_gib(est.required_gib),
        available_gib=round_gib(est.available_gib),
        load_peak_gib=None if est.load_peak_gib is None else round_gib(est.load_peak_gib),
        full_length_requests=None if est.kv is None else est.full_length_requests(context_length),
    )


def _scheduling(ctx: _Context, warnings: list[str]) -> Scheduling:
    tier, user = ctx.tier, ctx.spec.scheduling
    node_selector = dict(tier.node_selector)
    for key, value in user.node_selector.items():
        if key in node_selector and node_selector[key] != value:
            warnings.append(
                f"spec.scheduling.nodeSelector.{key}={value} replaces tier "
                f"{ctx.tier_name}'s {node_selector[key]}"
            )
        node_selector[key] = value
    tolerations = list(tier.tolerations)
    tolerations.extend(t for t in user.tolerations if t not in tolerations)
    return Scheduling(
        node_selector=dict(sorted(node_selector.items())),
        node_affinity=list(tier.node_affinity),
        tolerations=tolerations,
        extra_affinity=dict(user.affinity),
        priority_class_name=user.priority_class_name,
    )


def _format_gib(value: float) -> str:
    return f"{math.ceil(value * 1024)}Mi" if value != int(value) else f"{int(value)}Gi"


def _resources(ctx: _Context, gpus: int) -> dict[str, dict[str, str]]:
    """Tier requests/limits with the user's overrides on top; GPUs from the plan only."""
    tier, user = ctx.tier, ctx.spec.resources
    memory = _format_gib(tier.memory_gib)
    # Memory request = limit: a model's resident set is known up front, and a pod that may be
    # OOM-killed under node pressure while serving is worse than one that waits to schedule.
    requests = {"cpu": tier.cpu, "memory": memory}
    limits = {"memory": memory}
    if tier.cpu_limit:
        limits["cpu"] = tier.cpu_limit
    if gpus:
        limits[_GPU_RESOURCE] = str(gpus)
    requests.update(user.requests or {})
    limits.update(user.limits or {})
    return {"requests": dict(sorted(requests.items())), "limits": dict(sorted(limits.items()))}


def _unknown(value: str, what: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(value, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {what} {value!r}{hint} (known: {', '.join(sorted(known))})"
