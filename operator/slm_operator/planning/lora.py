"""LoRA adapters in the plan: which runtime may serve them, and the memory vLLM reserves.

vLLM allocates the LoRA weights of every slot up front, when the engine starts: for each
layer it wraps (the attention projections q, k, v, o and the MLP projections gate, up,
down), a stacked A matrix (``max_loras x rank x in``) and B matrix (``max_loras x out x
rank``) in the LoRA dtype, which defaults to the model's dtype (``LoRAConfig.lora_dtype``,
https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/config/lora.py; the wrappers in
https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/lora/layers/). That memory is taken
before the KV cache is sized, so the planner counts it next to the runtime overhead:

    per layer and slot, in elements:
        q: rank x (hidden + heads x headDim)        o:    rank x (heads x headDim + hidden)
        k: rank x (hidden + kvHeads x headDim)      gate: rank x (hidden + intermediate)
        v: rank x (hidden + kvHeads x headDim)      up:   rank x (hidden + intermediate)
                                                    down: rank x (intermediate + hidden)
    bytes = layers x maxLoras x rank x (7 x hidden x gpus + 2 x qDim + 2 x kvDim + 3 x intermediate)
            x 2 bytes (bf16/fp16)

With tensor parallelism the sharded side of each matrix is split across the GPUs and the
other side is copied to every GPU, hence ``7 x hidden x gpus``: the total over all GPUs, which is
what the tier's memory (summed over its GPUs) is compared with. Slots for embeddings and the
LM head, which vLLM adds only for models and adapters that use them, are not counted.
docs/planner.md ("LoRA adapters") works one example through.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from slm_operator.api.config import CatalogModel, OperatorConfig
from slm_operator.api.errors import FitError, SpecError, SpecProblem
from slm_operator.api.plan import LoraPlan, Plan, PullPolicy
from slm_operator.api.runtime_options import Adapter
from slm_operator.api.spec import SmallLanguageModel, SmallLanguageModelSpec
from slm_operator.contract.runtime import Engine
from slm_operator.planning.memory import GIB, MemoryEstimate, round_gib

# LoRA weights are kept in the model's activation dtype (bfloat16 or float16) on vLLM.
LORA_ELEMENT_BYTES = 2


@dataclass(frozen=True)
class LoraBudget:
    """The LoRA slots asked for and the memory they take (``None`` when the architecture is unknown)."""

    adapters: int
    max_loras: int
    max_rank: int
    gpus: int
    bytes: int | None
    unknown_because: str = ""

    @property
    def gib(self) -> float:
        return 0.0 if self.bytes is None else self.bytes / GIB

    def describe(self) -> str:
        """One line for the plan's reasons (or warnings, when the size is unknown)."""
        slots = f"{self.adapters} adapter(s), maxLoras {self.max_loras} x maxRank {self.max_rank}"
        if self.bytes is None:
            return f"LoRA memory not counted ({slots}): {self.unknown_because}"
        return (
            f"LoRA: {slots} reserve {self.gib:.2f} GiB (q,k,v,o,gate,up,down A/B matrices in 16-bit"
            f"{f' over {self.gpus} GPUs' if self.gpus > 1 else ''}), counted in the overhead"
        )


def lora_elements_per_slot(entry: CatalogModel, rank: int, gpus: int) -> int | None:
    """A/B elements of one adapter slot over all layers (and GPUs); None without the widths, or for
    a mixture of experts (whose per-expert LoRA layout vLLM sizes differently)."""
    arch = entry.architecture
    if arch is None or arch.experts is not None:
        return None
    hidden, intermediate = arch.hidden_size, arch.intermediate_size
    q_dim = entry.attention_heads * entry.head_dim
    kv_dim = entry.kv_heads * entry.head_dim
    per_layer = rank * (7 * hidden * max(gpus, 1) + 2 * q_dim + 2 * kv_dim + 3 * intermediate)
    return entry.layers * per_layer


def lora_budget(spec: SmallLanguageModelSpec, config: OperatorConfig, gpus: int) -> LoraBudget | None:
    """The LoRA reservation of a spec, or None when it has no adapters."""
    if not spec.adapters:
        return None
    lora = spec.lora
    max_rank = lora.max_rank if lora is not None else 16
    max_loras = (lora.max_loras if lora is not None else None) or len(spec.adapters)
    catalog_id = spec.model.catalog
    entry = config.catalog.get(catalog_id) if catalog_id is not None else None
    elements = None if entry is None else lora_elements_per_slot(entry, max_rank, gpus)
    unknown = ""
    if entry is None:
        unknown = "the architecture of a source outside the catalog is unknown"
    elif elements is None:
        unknown = (
            f"the catalog has no dense architecture for {catalog_id} (a mixture-of-experts model, or no "
            "hiddenSize/intermediateSize)"
        )
    return LoraBudget(
        adapters=len(spec.adapters),
        max_loras=max_loras,
        max_rank=max_rank,
        gpus=max(gpus, 1),
        bytes=None if elements is None else elements * max_loras * LORA_ELEMENT_BYTES,
        unknown_because=unknown,
    )


def with_lora(est: MemoryEstimate, budget: LoraBudget | None) -> MemoryEstimate:
    """The estimate with the LoRA reservation added to the runtime overhead."""
    if budget is None or budget.bytes is None:
        return est
    return dataclasses.replace(est, overhead_gib=est.overhead_gib + budget.gib)


def check_adapters(model: SmallLanguageModel, engine: Engine) -> None:
    """Adapters need vLLM, and their names must differ from the base model's served name."""
    spec = model.spec
    if not spec.adapters:
        return
    problems: list[SpecProblem] = []
    if engine != Engine.VLLM:
        problems.append(
            SpecProblem(
                "spec.adapters",
                f"LoRA adapters are served by vLLM only, but this model runs on {engine} (tier "
                f"{spec.hardware.tier}); pick a GPU tier or runtime: vllm, or remove the adapters",
            )
        )
    served = spec.model.served_name or model.name
    for index, adapter in enumerate(spec.adapters):
        if adapter.name == served:
            problems.append(
                SpecProblem(
                    f"spec.adapters[{index}].name",
                    f"{adapter.name!r} is the base model's served name; clients could not tell them apart",
                )
            )
    if problems:
        raise SpecError(problems)


def explain_fit_error(exc: FitError, budget: LoraBudget | None) -> FitError:
    """A fit failure that names the LoRA reservation when there is one (with its numbers)."""
    if budget is None or budget.bytes is None:
        return exc
    problems = [
        *exc.problems,
        SpecProblem(
            "spec.lora",
            f"the overhead above includes {budget.gib:.2f} GiB for LoRA (maxLoras {budget.max_loras} x "
            f"maxRank {budget.max_rank}); lower spec.lora.maxLoras or spec.lora.maxRank to free it",
        ),
    ]
    return FitError(problems)


def add_lora(
    plan: Plan, budget: LoraBudget | None, adapters: Sequence[Adapter], pull_policy: PullPolicy
) -> Plan:
    """Record the LoRA reservation in the plan (its memory, reasons and warnings), the adapters
    served, and how the Hub adapters are fetched."""
    if budget is None:
        return plan
    memory = plan.memory.model_copy(
        update={"lora_gib": None if budget.bytes is None else round_gib(budget.gib)}
    )
    reasons, warnings = list(plan.reasons), list(plan.warnings)
    (warnings if budget.bytes is None else reasons).append(budget.describe())
    if budget.max_loras > budget.adapters:
        warnings.append(
            f"spec.lora.maxLoras {budget.max_loras} exceeds the {budget.adapters} adapter(s): the extra "
            "slots take memory but stay empty (adapters cannot be loaded at run time)"
        )
    return plan.model_copy(
        update={
            "memory": memory,
            "reasons": reasons,
            "warnings": warnings,
            "lora": LoraPlan(
                max_loras=budget.max_loras,
                max_rank=budget.max_rank,
                adapters=list(adapters),
                pull_policy=pull_policy,
            ),
        }
    )
