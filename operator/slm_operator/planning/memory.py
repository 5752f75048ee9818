"""Memory math for the fit check (ARCHITECTURE §6), in bytes and GiB.

required = weights + KV cache + runtime overhead, where the KV cache holds K and V for every
layer, every KV head and every token of ``contextLength x maxConcurrency`` sequences; an fp8
KV cache halves it. For models with sliding-window layers (Gemma 3) the full formula is used:
whether a given vLLM version allocates the windowed size is not verified, so the full size is a
safe upper bound (the plan says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from slm_operator.api.config import CatalogModel, Engine, Overheads, Tier

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


@dataclass(frozen=True)
class MemoryEstimate:
    """One variant's memory need against one tier's offer, in GiB."""

    weights_gib: float
    kv_cache_gib: float | None
    overhead_gib: float
    available_gib: float
    kv_bytes_per_token: int | None

    @property
    def required_gib(self) -> float | None:
        if self.kv_cache_gib is None:
            return None
        return self.weights_gib + self.kv_cache_gib + self.overhead_gib

    @property
    def fits(self) -> bool | None:
        """True/False when known; False already when weights + overhead alone exceed the offer."""
        if self.weights_gib + self.overhead_gib > self.available_gib:
            return False
        required = self.required_gib
        return None if required is None else required <= self.available_gib


def kv_bytes_per_token(model: CatalogModel, *, kv_bytes_per_element: int) -> int:
    """K and V for every layer: 2 x layers x kv_heads x head_dim x element size."""
    return 2 * model.layers * model.kv_heads * model.head_dim * kv_bytes_per_element


def overhead_gib(engine: Engine, weights_gib: float, gpus: int, overheads: Overheads) -> float:
    """Runtime memory beyond weights and KV (CUDA context per GPU, activations, buffers)."""
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
    kv_per_token: int | None,
    context_length: int,
    max_concurrency: int,
    tier: Tier,
    gpus: int,
    memory_limit_gib: float,
    overheads: Overheads,
) -> MemoryEstimate:
    weights = gib(weight_bytes)
    kv = None if kv_per_token is None else gib(kv_per_token * context_length * max_concurrency)
    return MemoryEstimate(
        weights_gib=weights,
        kv_cache_gib=kv,
        overhead_gib=overhead_gib(engine, weights, gpus, overheads),
        available_gib=available_gib(engine, tier, gpus, memory_limit_gib),
        kv_bytes_per_token=kv_per_token,
    )


def max_fitting_context(est: MemoryEstimate, max_concurrency: int) -> int:
    """The longest context that would fit at this concurrency (0 if nothing fits)."""
    if est.kv_bytes_per_token is None or est.kv_bytes_per_token == 0:
        return 0
    room = (est.available_gib - est.weights_gib - est.overhead_gib) * GIB
    if room <= 0:
        return 0
    return int(room // (est.kv_bytes_per_token * max_concurrency))
