"""Checkpoint sizes recomputed from a catalog model's architecture (``make check-catalog``).

Pure functions: given a :class:`~slm_operator.api.config.CatalogModel` with its
``architecture`` fields, count the parameters of every tensor family and size each variant's
checkpoint from its format's tensor layout. The catalog states sizes read from published
files where it has them; this module is the independent recount they are checked against
(docs/catalog.md, "Checking the catalog").

Tensor layouts per format (bytes per weight of a quantized linear layer; everything else -
embeddings, lm_head, norms, biases, routers, vision towers - stays 16-bit unless noted):

- ``none``: 2 (bf16 safetensors; GGUF f16 for Ollama).
- ``fp8``: 1, plus scales this recount leaves out because they are below 0.1 %: one float32
  per 128 x 128 block (Qwen's block-wise FP8 checkpoints, ``weight_block_size: [128, 128]``),
  one per output channel (compressed-tensors FP8-dynamic) or one per tensor (vLLM's online FP8).
- ``int8`` (compressed-tensors W8A8): 1, plus a per-channel scale (left out, as above).
- ``int4`` (compressed-tensors W4A16, group 128, symmetric): 0.5 + 2/128 (bf16 group scales).
- ``awq`` (4-bit, group 128): 0.5 + 2/128 (fp16 scales) + 0.5/128 (packed zero points).
- ``gptq`` (b bits, group 128): b/8 + 2/128 (scales) + b/8/128 (packed zero points).
- GGUF (llama.cpp block formats, https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-common.h):
  Q8_0 = 34 bytes per 32 weights; Q4_0 = 18 per 32; Q4_K = 144 per 256; Q6_K = 210 per 256.
  ``q8_0`` and ``q4_0`` files quantize every matrix (embeddings included) to their type, except
  the output matrix (or the tied embedding), which llama.cpp keeps at Q6_K for q4_0; ``q4_k_m``
  uses Q4_K, with Q6_K for the output matrix and for attn_v / ffn_down in the layers
  llama.cpp's ``use_more_bits`` selects (the first and last eighth, and every third between;
  llama_tensor_get_type in src/llama-quant.cpp). Gemma 3 QAT tags (``*-it-qat``, Q4_0) keep the
  token embedding in f16: their published sizes (1B 1.0 GB, 4B 4.0, 12B 8.9, 27B 18 GB) match
  that layout within 1 %, and not the Q6_K one. Vision towers in Ollama's GGUFs are f16.
"""

from __future__ import annotations

from dataclasses import dataclass

from slm_operator.api.config import CatalogModel, Variant
from slm_operator.api.spec import Quantization
from slm_operator.contract.runtime import Engine

BLOCK = 128  # group / block size of every integer and FP8 block format above
Q8_0 = 34 / 32
Q4_0 = 18 / 32
Q4_K = 144 / 256
Q6_K = 210 / 256


@dataclass(frozen=True)
class TensorCounts:
    """Parameter counts by tensor family (the text decoder plus any vision tower)."""

    embedding: int  # token embedding (also the output matrix when tied)
    output: int  # a separate lm_head (0 when tied)
    attention_v: int  # v_proj of all layers (quantized at more bits by q4_K_M in some layers)
    ffn_down: int  # down_proj of all layers, experts included
    other_linear: int  # q/k/o projections, gate/up projections
    small: int  # norms, biases, q/k norms, MoE routers: kept 16-bit (f32 in GGUF)
    vision: int
    layers: int

    @property
    def linear(self) -> int:
        return self.attention_v + self.ffn_down + self.other_linear

    @property
    def total(self) -> int:
        return self.embedding + self.output + self.linear + self.small + self.vision


def tensor_counts(model: CatalogModel) -> TensorCounts:
    arch = model.architecture
    if arch is None:
        raise ValueError("the model has no architecture fields")
    hidden, layers = arch.hidden_size, model.layers
    q_width, kv_width = model.attention_heads * model.head_dim, model.kv_heads * model.head_dim
    experts = arch.experts or 1
    per_mlp = hidden * arch.intermediate_size
    small = arch.norms_per_layer * hidden
    if arch.attention_bias:
        small += q_width + 2 * kv_width
    if arch.qk_norm:
        small += 2 * model.head_dim
    if arch.experts is not None:
        small += hidden * arch.experts  # the router
    return TensorCounts(
        embedding=arch.vocab_size * hidden,
        output=0 if arch.tied_embeddings else arch.vocab_size * hidden,
        attention_v=layers * hidden * kv_width,
        ffn_down=layers * experts * per_mlp,
        other_linear=layers * (2 * hidden * q_width + hidden * kv_width + experts * 2 * per_mlp),
        small=layers * small + hidden,
        vision=arch.vision_parameters,
        layers=layers,
    )


def _use_more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's choice of the layers whose attn_v / ffn_down get Q6_K in Q4_K_M files."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def checkpoint_bytes(model: CatalogModel, variant: Variant) -> float:
    """The variant's checkpoint size from its tensor layout (see the module docstring)."""
    t = tensor_counts(model)
    wide = 2 * (t.embedding + t.output + t.small + t.vision)
    q = variant.quantization
    if q == Quantization.NONE:
        return 2.0 * t.total
    if variant.runtime == Engine.VLLM:
        if q in (Quantization.FP8, Quantization.INT8):
            return wide + t.linear
        if q == Quantization.INT4:
            return wide + t.linear * (0.5 + 2 / BLOCK)
        if q == Quantization.AWQ:
            return wide + t.linear * (0.5 + 2.5 / BLOCK)
        if q == Quantization.GPTQ:
            width = variant.bits / 8
            return wide + t.linear * (width + (2 + width) / BLOCK)
        raise ValueError(f"no layout for {q}")
    vision = 2.0 * t.vision
    small = 4.0 * t.small  # GGUF keeps norms and biases in f32
    output = t.output or t.embedding  # the matrix the output layer reads
    if q == Quantization.Q8_0:
        return vision + small + Q8_0 * (t.embedding + t.output + t.linear)
    if q == Quantization.Q4_0 and variant.ref.endswith("-qat"):
        # Gemma 3 QAT builds keep the (tied) token embedding in f16 and every layer in Q4_0.
        return vision + small + Q4_0 * t.linear + 2.0 * t.embedding
    if q == Quantization.Q4_0:
        matrices = (t.embedding if t.output else 0) + t.linear
        return vision + small + Q4_0 * matrices + Q6_K * output
    if q == Quantization.Q4_K_M:
        more = sum(_use_more_bits(i, t.layers) for i in range(t.layers)) / t.layers
        promoted = more * (t.attention_v + t.ffn_down)
        rest = (t.embedding if t.output else 0) + t.linear - promoted
        return vision + small + Q4_K * rest + Q6_K * (promoted + output)
    raise ValueError(f"no layout for {q}")


@dataclass(frozen=True)
class SizeCheck:
    model_id: str
    variant: Variant
    stated: int
    computed: float

    @property
    def gap(self) -> float:
        """Relative gap of the stated size from the recount (positive: the catalog states more)."""
        return self.stated / self.computed - 1

    @property
    def estimate(self) -> bool:
        return not self.variant.verified

    @property
    def flagged(self) -> bool:
        return abs(self.gap) > GAP_LIMIT and not self.estimate


GAP_LIMIT = 0.03


def check_sizes(catalog: dict[str, CatalogModel]) -> list[SizeCheck]:
    return [
        SizeCheck(model_id, variant, variant.weight_bytes, checkpoint_bytes(model, variant))
        for model_id, model in catalog.items()
        if model.architecture is not None
        for variant in model.variants
    ]
