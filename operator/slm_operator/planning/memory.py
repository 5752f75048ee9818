"""Memory math for the fit check, in bytes and GiB (docs/planner.md gives every formula).

required = weights + KV cache + runtime overhead. The KV cache is counted per layer type:
full-attention layers keep K and V for every token of every sequence; sliding-window layers
(Gemma 3) keep only the window, as vLLM's hybrid KV-cache manager and Ollama's SWA cache
allocate. Under tensor parallelism vLLM stores each KV head on ``gpus / kv_heads`` GPUs when
the GPUs outnumber the KV heads, and the figure includes that replication. Ollama's overhead
follows its own estimator (compute graph per architecture, flash attention or not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from slm_operator.api.config import CatalogModel, Overheads, Tier, Variant
from slm_operator.contract.runtime import Engine
from slm_operator.planning.formats import ONLINE_QUANTIZATION_FLAG

GIB = 1024**3

# Kubernetes binary and decimal quantity suffixes (apimachinery resource.Quantity).
_SUFFIX = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|m|e[0-9]+)$")


def quantity_bytes(value: str) -> float:
    """Parse a Kubernetes memory quantity ("16Gi", "512M", "1e9") into bytes."""
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    number, suffix = float(match.group(1)), match.group(2)
    if suffix == "m":
        return number / 1000
    if suffix.startswith("e"):
        return number * float(10 ** int(suffix[1:]))
    return number * _SUFFIX[suffix]


def gib(num_bytes: float) -> float:
    return num_bytes / GIB


def round_gib(value: float) -> float:
    return round(value, 2)


# --- KV cache per layer type -------------------------------------------------------------------

# vLLM's KV-cache page holds 16 tokens on CUDA (CacheConfig.block_size default), and a
# sliding-window layer keeps one page more than the window because the window rarely starts on
# a page boundary (SlidingWindowSpec.max_memory_usage_bytes in vllm/v1/kv_cache_interface.py,
# https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/v1/kv_cache_interface.py).
VLLM_BLOCK_TOKENS = 16
# While a prompt is prefilled in chunks, a windowed layer also holds the chunk being computed:
# at most max_num_batched_tokens per scheduler step, whose default for the OpenAI server is
# 8192 on >= 70 GiB GPUs and 2048 otherwise (EngineArgs defaults in vllm/engine/arg_utils.py,
# https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/engine/arg_utils.py). The planner
# takes the larger one.
VLLM_MAX_PREFILL_CHUNK = 8192
# Ollama's batch (num_batch default 512, api/types.go DefaultOptions); its sliding-window cache
# holds numParallel x window + batch tokens (GraphSize in fs/ggml/ggml.go and NewSWACache in
# kvcache/causal.go, https://github.com/ollama/ollama/blob/v0.12.6/fs/ggml/ggml.go).
OLLAMA_BATCH = 512


@dataclass(frozen=True)
class KvCache:
    """How a model's KV cache grows with context and concurrency on one runtime.

    Full-attention ("global") layers hold every token of every sequence; sliding-window
    ("local") layers hold at most ``window_tokens`` per sequence plus ``shared_tokens`` once
    (the prompt chunk being prefilled), never more than the full context.
    """

    global_bytes_per_token: int
    local_bytes_per_token: int
    window_tokens: int
    shared_tokens: int
    replication: int = 1

    @property
    def bytes_per_token(self) -> int:
        """Bytes per token while a sequence is shorter than the window (every layer counts)."""
        return self.global_bytes_per_token + self.local_bytes_per_token

    def local_tokens(self, context_length: int, sequences: int) -> int:
        if self.local_bytes_per_token == 0:
            return 0
        full = context_length * sequences
        return min(full, sequences * self.window_tokens + min(context_length, self.shared_tokens))

    def total_bytes(self, context_length: int, sequences: int) -> float:
        return float(
            self.global_bytes_per_token * context_length * sequences
            + self.local_bytes_per_token * self.local_tokens(context_length, sequences)
        )


def stored_kv_heads(model: CatalogModel, *, engine: Engine, gpus: int) -> int:
    """KV heads stored across all GPUs: vLLM keeps one head per GPU when GPUs outnumber heads.

    vLLM's QKVParallelLinear gives every GPU ``kv_heads / gpus`` heads, or one head replicated
    on ``gpus / kv_heads`` GPUs when ``gpus >= kv_heads`` (vllm/model_executor/layers/linear.py,
    https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/model_executor/layers/linear.py).
    Ollama splits layers, not heads, between GPUs.
    """
    if engine == Engine.VLLM and gpus > model.kv_heads:
        return gpus
    return model.kv_heads


def kv_cache(
    model: CatalogModel,
    *,
    engine: Engine,
    kv_element_bytes: int,
    gpus: int,
    prefill_chunk: int | None = None,
) -> KvCache:
    """``prefill_chunk``: vLLM's max_num_batched_tokens when set (else its largest default)."""
    heads = stored_kv_heads(model, engine=engine, gpus=gpus)
    per_layer = 2 * heads * model.head_dim * kv_element_bytes  # K and V, one token, one layer
    window = model.sliding_window
    if window is None:
        return KvCache(per_layer * model.layers, 0, 0, 0, heads // model.kv_heads)
    if engine == Engine.VLLM:
        window_tokens, shared = window.window + VLLM_BLOCK_TOKENS, prefill_chunk or VLLM_MAX_PREFILL_CHUNK
    else:
        window_tokens, shared = window.window, OLLAMA_BATCH
    return KvCache(
        per_layer * model.global_layers,
        per_layer * model.local_layers,
        window_tokens,
        shared,
        heads // model.kv_heads,
    )


def kv_bytes_per_token(model: CatalogModel, *, kv_bytes_per_element: int) -> int:
    """K and V for every layer, as if all attended globally: 2 x layers x kv_heads x head_dim x size."""
    return 2 * model.layers * model.kv_heads * model.head_dim * kv_bytes_per_element


# --- Ollama's compute graph --------------------------------------------------------------------

# Architectures for which Ollama 0.12 turns flash attention on by default (GGML.FlashAttention
# in fs/ggml/ggml.go, https://github.com/ollama/ollama/blob/v0.12.6/fs/ggml/ggml.go; CPUs and
# CUDA GPUs with compute capability >= 7.0 support it, discover/types.go).
OLLAMA_FLASH_ATTENTION_ARCHITECTURES = frozenset({"gemma3", "qwen3", "qwen3moe", "gptoss", "gpt-oss"})


@dataclass(frozen=True)
class OllamaGraph:
    graph_bytes: float
    flash_attention: bool
    formula: str


def ollama_graph(model: CatalogModel, *, context_length: int, parallel: int) -> OllamaGraph:
    """The compute-graph memory Ollama reserves, after ``GGML.GraphSize`` (fs/ggml/ggml.go).

    ``b`` = min(num_ctx, num_batch 512), ``C`` = num_ctx x numParallel, ``E`` hidden size,
    ``V`` vocabulary, ``H`` query heads, ``D`` head dim. Every graph holds the output logits,
    4·b·(E+V). Without flash attention the attention scores 4·b·C·H are materialised (Ollama's
    per-architecture terms for llama, qwen2 and gemma3; architectures it has no term for, such
    as phi3, get its fallback gqa x KV / 6). With flash attention (gemma3, qwen3, qwen3moe) the
    scores are not stored: the same terms without b·C·H.
    """
    arch = model.architecture
    kv_total = kv_bytes_per_token(model, kv_bytes_per_element=2) * context_length * parallel
    gqa = model.attention_heads // model.kv_heads
    if arch is None:
        return OllamaGraph(gqa * kv_total / 6, False, "gqa x KV / 6")
    name = arch.gguf_architecture
    fa = name in OLLAMA_FLASH_ATTENTION_ARCHITECTURES
    b = min(context_length, OLLAMA_BATCH)
    c = context_length * parallel
    e, v, h, d = arch.hidden_size, arch.vocab_size, model.attention_heads, model.head_dim
    scores = 0 if fa else c * h
    logits = 4 * b * (e + v)
    if name == "llama" or name in ("qwen3", "qwen3moe"):
        attention = 4 * b * (1 + 4 * e + c + scores)
        formula = "llama"
    elif name == "qwen2":
        attention = 4 * b * (1 + 2 * e + c + scores)
        formula = "qwen2"
    elif name == "gemma3":
        attention = 4 * b * (2 + c + scores + 2 * e + 2 * d * h)
        formula = "gemma3"
    else:
        return OllamaGraph(gqa * kv_total / 6, fa, "gqa x KV / 6")
    return OllamaGraph(float(max(logits, attention)), fa, formula)


# --- the estimate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    """One variant's memory need against one tier's offer, in GiB."""

    weights_gib: float
    kv_cache_gib: float | None
    overhead_gib: float
    available_gib: float
    kv_bytes_per_token: int | None
    kv: KvCache | None = None
    load_peak_gib: float | None = None
    load_limit_gib: float | None = None
    graph_gib: float | None = None
    flash_attention: bool | None = None

    @property
    def required_gib(self) -> float | None:
        if self.kv_cache_gib is None:
            return None
        return self.weights_gib + self.kv_cache_gib + self.overhead_gib

    @property
    def loads(self) -> bool:
        """False when the weights cannot even be loaded (online quantization's 16-bit peak)."""
        return (
            self.load_peak_gib is None
            or self.load_limit_gib is None
            or (self.load_peak_gib <= self.load_limit_gib)
        )

    @property
    def fits(self) -> bool | None:
        """True/False when known; False already when weights + overhead alone exceed the offer."""
        if not self.loads or self.weights_gib + self.overhead_gib > self.available_gib:
            return False
        required = self.required_gib
        return None if required is None else required <= self.available_gib

    def full_length_requests(self, context_length: int) -> int:
        """How many sequences of ``context_length`` tokens the KV room left would hold."""
        if self.kv is None or not self.loads:
            return 0
        room = (self.available_gib - self.weights_gib - self.overhead_gib) * GIB
        if self.kv.total_bytes(context_length, 1) <= 0:
            return 0
        low, high = 0, 1
        while self.kv.total_bytes(context_length, high) <= room:
            low, high = high, high * 2
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if self.kv.total_bytes(context_length, mid) <= room else (low, mid)
        return low


def overhead_gib(engine: Engine, weights_gib: float, gpus: int, overheads: Overheads) -> float:
    """Runtime memory beyond weights and KV cache, before Ollama's compute graph."""
    if engine == Engine.VLLM:
        return overheads.vllm_gib * max(gpus, 1) + overheads.vllm_fraction_of_weights * weights_gib
    return overheads.ollama_gib + overheads.ollama_fraction_of_weights * weights_gib


def available_gib(engine: Engine, tier: Tier, gpus: int, memory_limit_gib: float) -> float:
    """What the tier offers: GPU memory (times vLLM's utilisation fraction) or the RAM limit."""
    if tier.gpu_memory_gib is not None and gpus > 0:
        utilisation = tier.gpu_memory_utilization if engine == Engine.VLLM else 1.0
        return gpus * tier.gpu_memory_gib * utilisation
    return memory_limit_gib


def estimate(
    *,
    engine: Engine,
    weight_bytes: float,
    model: CatalogModel | None,
    kv_element_bytes: int,
    context_length: int,
    max_concurrency: int,
    tier: Tier,
    gpus: int,
    memory_limit_gib: float,
    overheads: Overheads,
    load_bytes: float | None = None,
    prefill_chunk: int | None = None,
) -> MemoryEstimate:
    """The memory a variant needs on a tier.

    ``model`` is None for sources outside the catalog (no KV cache estimate). ``load_bytes`` is
    the size of the checkpoint vLLM loads before quantizing it online (16-bit weights): it must
    fit each GPU's memory, next to the CUDA context, at load time.
    """
    weights = gib(weight_bytes)
    overhead = overhead_gib(engine, weights, gpus, overheads)
    kv: KvCache | None = None
    kv_gib: float | None = None
    graph_gib: float | None = None
    flash: bool | None = None
    if model is not None:
        kv = kv_cache(
            model, engine=engine, kv_element_bytes=kv_element_bytes, gpus=gpus, prefill_chunk=prefill_chunk
        )
        kv_gib = gib(kv.total_bytes(context_length, max_concurrency))
        if engine == Engine.OLLAMA:
            graph = ollama_graph(model, context_length=context_length, parallel=max_concurrency)
            graph_gib, flash = gib(graph.graph_bytes), graph.flash_attention
            # Ollama's estimator also counts the first layer (weights and KV) once more.
            overhead += graph_gib + (weights + kv_gib) / model.layers
    load_peak = load_limit = None
    if load_bytes is not None and engine == Engine.VLLM and tier.gpu_memory_gib is not None:
        load_peak = gib(load_bytes) / max(gpus, 1) + overheads.vllm_gib
        load_limit = tier.gpu_memory_gib
    return MemoryEstimate(
        weights_gib=weights,
        kv_cache_gib=kv_gib,
        overhead_gib=overhead,
        available_gib=available_gib(engine, tier, gpus, memory_limit_gib),
        kv_bytes_per_token=None if kv is None else kv.bytes_per_token,
        kv=kv,
        load_peak_gib=load_peak,
        load_limit_gib=load_limit,
        graph_gib=graph_gib,
        flash_attention=flash,
    )


def max_fitting_context(est: MemoryEstimate, max_concurrency: int) -> int:
    """The longest context that would fit at this concurrency (0 if nothing fits)."""
    if est.kv is None or est.kv.bytes_per_token == 0 or not est.loads:
        return 0
    room = (est.available_gib - est.weights_gib - est.overhead_gib) * GIB
    if room <= 0:
        return 0
    low, high = 0, 1
    while est.kv.total_bytes(high, max_concurrency) <= room and high < 1 << 30:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if est.kv.total_bytes(mid, max_concurrency) <= room else (low, mid)
    return low


def online_load_bytes(entry: CatalogModel, variant: Variant) -> float | None:
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
