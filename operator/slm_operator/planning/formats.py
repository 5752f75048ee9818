"""Quantization formats as the planner sees them: their quality order, the hardware each needs,
their bytes per weight, and the engine flags the planner reads or writes.
"""

from __future__ import annotations

from slm_operator.api.config import Variant
from slm_operator.api.spec import Quantization

# Quality order within one width (bits always dominate): the original checkpoint first; at 8
# bits FP8 and W8A8 before GPTQ-Int8 before GGUF Q8_0; at 4 bits AWQ before W4A16 before
# GPTQ-Int4 before the GGUF K-quant and Q4_0. One sequence satisfies both widths.
METHOD_ORDER: tuple[str, ...] = (
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
FORMAT_MIN_CC: dict[str, float] = {
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
BYTES_PER_WEIGHT: dict[str, float] = {
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
OLLAMA_FORMATS = {Quantization.NONE, Quantization.Q8_0, Quantization.Q4_K_M, Quantization.Q4_0}
GGUF_DTYPE: dict[str, str] = {
    Quantization.NONE: "f16",
    Quantization.Q8_0: "q8_0",
    Quantization.Q4_K_M: "q4_K_M",
    Quantization.Q4_0: "q4_0",
}
KV_CACHE_FLAG = "--kv-cache-dtype"


def quality_key(variant: Variant) -> tuple[int, int]:
    """Sort key: more bits first, then the method order above."""
    return (-variant.bits, METHOD_ORDER.index(variant.quantization))
