"""The plan's explanations: the reason recorded for each choice, the warnings, and the numbers
in a refusal. The decisions are made in planner.py, context.py and pod.py; the functions here
only put them into words (``slmctl plan`` and ``status.plan`` show them).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from slm_operator.api.config import Accelerator, CatalogModel, Variant
from slm_operator.api.errors import SpecProblem
from slm_operator.api.spec import Quantization, Runtime
from slm_operator.contract.runtime import Engine
from slm_operator.planning.formats import BF16_MIN_CC
from slm_operator.planning.memory import MemoryEstimate, max_fitting_context

if TYPE_CHECKING:
    from slm_operator.planning.context import Context


def runtime_reason(ctx: Context) -> str:
    how = "asked for" if ctx.spec.runtime != Runtime.AUTO else "auto"
    kind = (
        f"{ctx.gpus} x GPU ({ctx.tier.gpu_memory_gib} GiB, compute capability {ctx.tier.compute_capability})"
        if ctx.tier.accelerator != Accelerator.NONE
        else f"CPU, {ctx.memory_limit_gib:g} GiB memory"
    )
    tp = f", tensor parallel {ctx.gpus}" if ctx.engine == Engine.VLLM else ""
    return f"runtime {ctx.engine} ({how}) on tier {ctx.tier_name}: {kind}{tp}"


def variant_reason(
    ctx: Context,
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
            skipped.append(load_peak_text(variant, est))
            continue
        skipped.append(
            f"{variant.ref} ({variant.quantization}) needs {est.required_gib or 0:.2f} GiB "
            f"> {est.available_gib:.2f}"
        )
    text = f"variant {chosen.ref} ({chosen.quantization}, {chosen.bits}-bit): {mode}"
    return text + (f"; skipped: {'; '.join(skipped)}" if skipped else "")


def load_peak_text(variant: Variant, est: MemoryEstimate) -> str:
    return (
        f"{variant.ref} ({variant.quantization}, quantized online) needs {est.load_peak_gib or 0:.2f} GiB "
        f"per GPU while loading (vLLM loads the 16-bit weights, then quantizes) > "
        f"{est.load_limit_gib or 0:.2f} GiB"
    )


def cannot_run(ctx: Context, unrunnable: list[Variant]) -> str:
    needs = ", ".join(
        f"{v.ref} ({v.quantization}) needs compute capability >= {v.min_compute_capability}"
        for v in unrunnable
    )
    return f"tier {ctx.tier_name} has compute capability {ctx.tier.compute_capability}: {needs}"


def does_not_fit(
    ctx: Context, what: str, estimates: list[tuple[Variant, MemoryEstimate]], context_length: int
) -> SpecProblem:
    variant, est = estimates[-1]  # the smallest runnable variant
    if not est.loads:
        message = (
            f"{what} does not fit tier {ctx.tier_name}: its smallest {ctx.engine} variant "
            + load_peak_text(variant, est)
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


def kv_reason(est: MemoryEstimate, entry: CatalogModel, context_length: int, ctx: Context) -> str:
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


def memory_reason(est: MemoryEstimate, context_length: int, ctx: Context) -> str:
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


def context_length_reason(context_length: int, maximum: int | None, default: int) -> str:
    """Why the context length is what it is when the spec does not say (``maximum`` None: unknown)."""
    if maximum is None:
        return f"contextLength {context_length}: the operator default (the model's maximum is unknown)"
    return f"contextLength {context_length}: default min(model maximum {maximum}, {default})"


def source_quantization_reason(engine: Engine) -> str:
    """What ``quantization: auto`` means for a source outside the catalog."""
    if engine == Engine.VLLM:
        return "quantization: taken from the checkpoint (vLLM detects it)"
    return "quantization: the tag's own GGUF format (assumed q4_K_M for the estimate)"


def dtype_reason(ctx: Context, dtype: str) -> str | None:
    """Why vLLM computes in ``dtype`` (none for Ollama, whose dtype is the GGUF type)."""
    if ctx.engine == Engine.OLLAMA:
        return None
    cc = ctx.tier.compute_capability or 0.0
    if dtype == "bfloat16":
        return f"dtype bfloat16: compute capability {cc} >= {BF16_MIN_CC}"
    return f"dtype float16 (--dtype half): compute capability {cc} < {BF16_MIN_CC} has no bfloat16"


def fp8_reason(cc: float, native: float, *, detail: bool) -> str:
    """FP8 below the native compute capability runs weight-only (FP8 Marlin): say so; ``detail``
    adds what that means (catalog variants)."""
    if cc >= native:
        return f"fp8: W8A8 on FP8 tensor cores (compute capability {cc} >= {native})"
    text = f"fp8: weight-only (W8A16, FP8 Marlin kernels) on compute capability {cc} < {native}"
    return text + (
        ": weights are stored in 8 bits, activations and matrix products stay 16-bit" if detail else ""
    )


def load_reason(est: MemoryEstimate) -> str:
    """The load-time peak of a variant quantized online, and the limit it stays under."""
    return (
        f"load: {est.load_peak_gib:.2f} GiB per GPU while loading (16-bit weights before online "
        f"quantization + CUDA context) <= {est.load_limit_gib or 0:.2f} GiB"
    )


def runtime_option_warnings(ctx: Context) -> list[str]:
    """Options the spec sets for the runtime that was not chosen."""
    warnings = []
    if ctx.engine == Engine.OLLAMA and ctx.spec.vllm.extra_args:
        warnings.append("spec.vllm.extraArgs is ignored: the runtime is Ollama")
    if ctx.engine == Engine.VLLM and ctx.spec.ollama.modelfile is not None:
        warnings.append("spec.ollama.modelfile is ignored: the runtime is vLLM")
    return warnings


def unknown(value: str, what: str, known: Mapping[str, object]) -> str:
    """An unknown name, with the closest known ones and all of them."""
    close = difflib.get_close_matches(value, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {what} {value!r}{hint} (known: {', '.join(sorted(known))})"
