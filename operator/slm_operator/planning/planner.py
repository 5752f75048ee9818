"""The planner: spec + operator config → :class:`~slm_operator.api.plan.Plan` (docs/planner.md).

Pure: no Kubernetes client, no kopf. It chooses the runtime, the variant (the highest-quality
one the hardware can run that fits the tier's memory at the requested context and
concurrency), the dtype, the GPU count, scheduling and resources, and records a reason for
each choice. Requests that cannot be served raise :class:`SpecError` / :class:`FitError` whose
problems name the field and carry the numbers — never a silent fallback.

The steps live in their own modules: ``context.py`` (tier, runtime, GPUs, memory limit),
``formats.py`` (quantization formats), ``memory.py`` (the fit check), ``lora.py`` (adapters),
``pod.py`` (the pod's scheduling, resources, secrets and rollout) and ``reasons.py`` (every
explanation); this module chooses the variant and assembles the plan.
"""

from __future__ import annotations

from slm_operator.api.config import Accelerator, CatalogModel, OperatorConfig, Variant
from slm_operator.api.errors import FitError, SpecError, SpecProblem
from slm_operator.api.plan import MODELS_DIR, MemoryPlan, Plan, SourceKind
from slm_operator.api.spec import Quantization, SmallLanguageModel
from slm_operator.contract.runtime import Engine
from slm_operator.planning import lora, pod
from slm_operator.planning import reasons as explain
from slm_operator.planning.context import (
    Context,
    build_context,
    kv_cache_dtype,
    tensor_parallel_problems,
    user_engine_args,
)
from slm_operator.planning.formats import (
    BF16_MIN_CC,
    BYTES_PER_WEIGHT,
    FORMAT_MIN_CC,
    FP8_NATIVE_CC,
    GGUF_DTYPE,
    OLLAMA_FORMATS,
    quality_key,
)
from slm_operator.planning.memory import MemoryEstimate, available_gib, estimate, online_load_bytes, round_gib


def plan_model(model: SmallLanguageModel, config: OperatorConfig) -> Plan:
    """Plan one model; raise SpecError/FitError (with field-named problems) if it cannot be served."""
    ctx = build_context(model, config)
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


# --- catalog models ----------------------------------------------------------------------------


def _plan_catalog(ctx: Context, entry: CatalogModel) -> Plan:
    spec = ctx.spec
    catalog_id = spec.model.catalog or ""
    problems: list[SpecProblem] = []

    context_length, too_long = _context_length(ctx, entry.max_context, catalog_id)
    if too_long is not None:
        problems.append(too_long)
    if entry.gated and ctx.engine == Engine.VLLM and spec.model_access_secret_ref is None:
        problems.append(
            SpecProblem(
                "spec.modelAccessSecretRef",
                f"{catalog_id} is gated on Hugging Face ({entry.license}): accept its licence there and "
                "reference a Secret holding an HF token",
            )
        )
    if ctx.engine == Engine.VLLM:
        problems.extend(tensor_parallel_problems(ctx.gpus, catalog_id, entry))
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
    candidates.sort(key=quality_key)

    runnable, unrunnable = _split_by_hardware(ctx, candidates)
    if not runnable:
        raise SpecError(
            [
                SpecProblem(
                    "spec.quantization" if spec.quantization != Quantization.AUTO else "spec.hardware.tier",
                    explain.cannot_run(ctx, unrunnable),
                )
            ]
        )

    estimates = [
        (v, _estimate(ctx, v.weight_bytes, entry, context_length, online_load_bytes(entry, v)))
        for v in runnable
    ]
    chosen = next(((v, e) for v, e in estimates if e.fits), None)
    if chosen is None:
        raise FitError([explain.does_not_fit(ctx, catalog_id, estimates, context_length)])
    variant, est = chosen

    dtype = _dtype(ctx, variant.quantization)
    reasons = [explain.runtime_reason(ctx)]
    if spec.model.context_length is None:
        default = ctx.config.defaults.context_length
        reasons.append(explain.context_length_reason(context_length, entry.max_context, default))
    reasons.append(explain.variant_reason(ctx, variant, estimates, unrunnable))
    reasons.extend(text for text in [explain.dtype_reason(ctx, dtype)] if text is not None)
    cc = ctx.tier.compute_capability
    if ctx.engine == Engine.VLLM and variant.quantization == Quantization.FP8 and cc is not None:
        native = variant.native_compute_capability or FP8_NATIVE_CC
        reasons.append(explain.fp8_reason(cc, native, detail=True))
    reasons.append(explain.memory_reason(est, context_length, ctx))
    reasons.append(explain.kv_reason(est, entry, context_length, ctx))
    if est.load_peak_gib is not None:
        reasons.append(explain.load_reason(est))
    warnings = []
    if not variant.verified:
        warnings.append(f"variant {variant.ref}: {variant.note or 'not verified at the source'}")
    if not entry.verified:
        warnings.append(f"model {catalog_id}: {entry.note or 'some facts are not verified'}")
    warnings.extend(explain.runtime_option_warnings(ctx))

    return _build_plan(
        ctx,
        model_ref=variant.ref,
        source_kind=SourceKind.OLLAMA if ctx.engine == Engine.OLLAMA else SourceKind.HF,
        source_claim=None,
        quantization=str(variant.quantization),
        dtype=dtype,
        context_length=context_length,
        engine_args=[*variant.vllm_args, *user_engine_args(ctx.spec)] if ctx.engine == Engine.VLLM else [],
        gated=entry.gated,
        memory=est,
        fits=True,
        reasons=reasons,
        warnings=warnings,
    )


def _split_by_hardware(ctx: Context, variants: list[Variant]) -> tuple[list[Variant], list[Variant]]:
    """Variants the tier's GPUs can run (all GGUF variants run on Ollama)."""
    if ctx.engine == Engine.OLLAMA or ctx.tier.compute_capability is None:
        return variants, []
    cc = ctx.tier.compute_capability
    runnable = [v for v in variants if (v.min_compute_capability or 0.0) <= cc]
    return runnable, [v for v in variants if v not in runnable]


def _estimate(
    ctx: Context,
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


def _context_length(ctx: Context, maximum: int, what: str) -> tuple[int, SpecProblem | None]:
    """The context length asked for, else min(the model's maximum, the operator default); a
    problem when the one asked for exceeds the maximum."""
    asked = ctx.spec.model.context_length
    if asked is None:
        return min(maximum, ctx.config.defaults.context_length), None
    if asked > maximum:
        return asked, SpecProblem(
            "spec.model.contextLength", f"{asked} exceeds {what}'s maximum context of {maximum} tokens"
        )
    return asked, None


def _dtype(ctx: Context, quantization: str) -> str:
    """The GGUF type on Ollama; on vLLM bfloat16 where the GPUs have it, else float16."""
    if ctx.engine == Engine.OLLAMA:
        return GGUF_DTYPE.get(quantization, quantization)
    cc = ctx.tier.compute_capability or 0.0
    return "bfloat16" if cc >= BF16_MIN_CC else "float16"


# --- explicit sources (hf://, ollama://, pvc://) ------------------------------------------------


def _plan_source(ctx: Context) -> Plan:
    spec = ctx.spec
    source = spec.model.source or ""
    scheme, _, rest = source.partition("://")
    warnings: list[str] = []

    quantization = spec.quantization
    assumed, problems = _source_format(ctx, quantization)
    if problems:
        raise SpecError(problems)

    context_length = spec.model.context_length or ctx.config.defaults.context_length
    reasons = [explain.runtime_reason(ctx)]
    if spec.model.context_length is None:
        default = ctx.config.defaults.context_length
        reasons.append(explain.context_length_reason(context_length, None, default))

    model_ref, claim = rest, None
    if scheme == SourceKind.PVC:
        claim, _, path = rest.partition("/")
        model_ref = f"{MODELS_DIR}/{path}" if path else MODELS_DIR

    params = spec.model.parameters_billions
    memory: MemoryEstimate | None = None
    fits: bool | None = None
    if params is None:
        warnings.append("fit unchecked: set spec.model.parametersBillions for a source outside the catalog")
    else:
        weight_bytes = params * 1e9 * BYTES_PER_WEIGHT[assumed]
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
        reasons.append(explain.memory_reason(memory, context_length, ctx))
        warnings.append("fit partly checked: KV-cache size is unknown for a source outside the catalog")
    if quantization == Quantization.AUTO:
        reasons.append(explain.source_quantization_reason(ctx.engine))
    dtype = _dtype(ctx, str(assumed))
    reasons.extend(text for text in [explain.dtype_reason(ctx, dtype)] if text is not None)
    if ctx.engine == Engine.VLLM and assumed == Quantization.FP8:
        reasons.append(explain.fp8_reason(ctx.tier.compute_capability or 0.0, FP8_NATIVE_CC, detail=False))
    warnings.extend(explain.runtime_option_warnings(ctx))
    return _build_plan(
        ctx,
        model_ref=model_ref,
        source_kind=SourceKind(scheme),
        source_claim=claim,
        quantization=str(quantization),
        dtype=dtype,
        context_length=context_length,
        engine_args=user_engine_args(spec) if ctx.engine == Engine.VLLM else [],
        gated=False,
        memory=memory,
        fits=fits,
        reasons=reasons,
        warnings=warnings,
    )


def _source_format(ctx: Context, quantization: Quantization) -> tuple[Quantization, list[SpecProblem]]:
    """The format a source outside the catalog is assumed to have (``auto``: q4_K_M on Ollama,
    the checkpoint's own on vLLM), with the problems of the one asked for."""
    problems: list[SpecProblem] = []
    if ctx.engine == Engine.OLLAMA:
        if quantization not in (Quantization.AUTO, *OLLAMA_FORMATS):
            problems.append(
                SpecProblem("spec.quantization", f"{quantization} is not a GGUF format Ollama serves")
            )
        return (Quantization.Q4_K_M if quantization == Quantization.AUTO else quantization), problems
    if quantization in OLLAMA_FORMATS - {Quantization.NONE}:
        problems.append(
            SpecProblem(
                "spec.quantization", f"{quantization} is a GGUF format; vLLM serves hf:// checkpoints"
            )
        )
    assumed = Quantization.NONE if quantization == Quantization.AUTO else quantization
    min_cc = FORMAT_MIN_CC.get(assumed, 7.0)
    cc = ctx.tier.compute_capability or 0.0
    if cc < min_cc:
        problems.append(
            SpecProblem(
                "spec.quantization",
                f"{assumed} needs compute capability >= {min_cc}; tier {ctx.tier_name} has {cc}",
            )
        )
    return assumed, problems


# --- shared assembly ----------------------------------------------------------------------------


def _build_plan(
    ctx: Context,
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
    image_reasons = [f"image {spec.image}: spec.image override"] if spec.image else []
    scheduling, scheduling_warnings = pod.scheduling(ctx.tier_name, tier, spec.scheduling)
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
        kv_cache_dtype=kv_cache_dtype(spec) if ctx.engine == Engine.VLLM else "auto",
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
        reasons=[*reasons, *image_reasons],
        warnings=[*warnings, *scheduling_warnings],
        scheduling=scheduling,
        resources=pod.resources(tier, spec.resources, gpus),
        api_key=pod.api_key(ctx.model),
        generate_api_key=pod.generates_api_key(spec),
        hf_token=pod.hf_token(spec, ctx.engine),
        modelfile=pod.modelfile(spec, ctx.engine, source_kind),
        pull_policy=pod.pull_policy(spec, source_kind),
        hub_offline=not spec.network.allow_egress,
        image_pull_secrets=pod.image_pull_secrets(spec, config),
        autoscaling=pod.autoscaling(spec, tier),
        replicas=pod.replicas(spec),
        min_replicas=pod.min_replicas(spec),
        storage=spec.storage,
        rollout=pod.rollout(spec.storage),
    )


def _memory_plan(est: MemoryEstimate | None, ctx: Context, context_length: int) -> MemoryPlan:
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
