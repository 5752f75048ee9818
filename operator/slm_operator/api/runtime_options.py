"""The runtime-specific parts of the spec: ``spec.ollama`` (a Modelfile), ``spec.vllm`` (extra
flags), and the LoRA adapters vLLM serves (``spec.adapters``, ``spec.lora``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, field_validator

from slm_operator.api.base import ApiModel, cel_rules, located_errors, no_dot_segments
from slm_operator.api.modelfile_params import MODELFILE_TEXT_LIMIT, modelfile_parameter_problems, text_problem
from slm_operator.api.patterns import ADAPTER_SOURCE_PATTERN, DNS1123_LABEL, DOT_SEGMENT
from slm_operator.api.vllm_args import parse_vllm_args


class ModelfileMessage(ApiModel):
    """One MESSAGE instruction: an example turn the model sees before the conversation."""

    role: Literal["system", "user", "assistant"] = Field(
        description="Message role: system, user or assistant."
    )
    content: str = Field(
        max_length=MODELFILE_TEXT_LIMIT, description="Message text (no NUL, no triple quotes)."
    )

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        if (problem := text_problem(value)) is not None:
            raise ValueError(problem)
        return value


class Modelfile(ApiModel):
    """Ollama Modelfile customisation; every instruction is validated before it is rendered."""

    system: str | None = Field(
        default=None,
        max_length=MODELFILE_TEXT_LIMIT,
        description="SYSTEM instruction: the system prompt (no NUL, no triple quotes).",
    )
    template: str | None = Field(
        default=None,
        max_length=MODELFILE_TEXT_LIMIT,
        description="TEMPLATE instruction: the full prompt template in Go template syntax.",
    )
    parameters: dict[str, float | int | str | list[str]] = Field(
        default_factory=dict,
        max_length=32,
        description=(
            "PARAMETER instructions, e.g. {temperature: 0.3, num_ctx: 8192}. Names and value types follow "
            "Ollama's Modelfile reference: num_ctx, repeat_last_n, repeat_penalty, temperature, seed, stop, "
            "num_predict, top_k, top_p, min_p."
        ),
    )
    messages: list[ModelfileMessage] = Field(
        default_factory=list, max_length=64, description="MESSAGE instructions (example turns), in order."
    )

    @field_validator("system", "template")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and (problem := text_problem(value)) is not None:
            raise ValueError(problem)
        return value

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters(cls, value: Any) -> Any:
        if isinstance(value, dict):
            problems = modelfile_parameter_problems(value)
            if problems:
                raise located_errors(
                    "parameters", [((name,), message, value.get(name)) for name, message in problems]
                )
        return value


class OllamaOptions(ApiModel):
    """Options that apply only when the model runs on Ollama."""

    modelfile: Modelfile | None = Field(default=None, description="Optional Modelfile customisation.")


class VllmOptions(ApiModel):
    """Options that apply only when the model runs on vLLM."""

    extra_args: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra=cel_rules(
            (
                "!self.exists(a, a.startsWith('--trust-remote-code'))",
                "spec.vllm.extraArgs: --trust-remote-code is refused (it runs code from the model "
                "repository)",
            ),
            (
                "!self.exists(a, a == '--enable-auto-tool-choice') || "
                "self.exists(a, a.startsWith('--tool-call-parser'))",
                "spec.vllm.extraArgs: --enable-auto-tool-choice needs --tool-call-parser as well",
            ),
        ),
        description=(
            "Extra vLLM flags (--flag=value or --flag value), validated against an allow-list of tuning "
            "flags; flags the operator derives from the spec (--max-model-len, --max-num-seqs, ...) and "
            "--trust-remote-code are refused."
        ),
    )

    @field_validator("extra_args")
    @classmethod
    def _allowed_flags(cls, value: list[str]) -> list[str]:
        _, problems = parse_vllm_args(value)
        if problems:
            raise located_errors("extraArgs", [((i,), message, value[i]) for i, message in problems])
        return value


# vLLM accepts these --max-lora-rank values only (MaxLoRARanks in vllm/config/lora.py,
# https://github.com/vllm-project/vllm/blob/v0.11.0/vllm/config/lora.py).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
MAX_ADAPTERS = 16
MAX_LORAS = 16


def _adapter_source(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(ADAPTER_SOURCE_PATTERN, value):
        raise ValueError(
            f"{value[:80]!r} is not an adapter source: use hf://org/repo[@revision] or pvc://claim/path "
            "(adapters are served by vLLM, which cannot read ollama:// sources)"
        )
    return value


class Adapter(ApiModel):
    """A LoRA adapter served next to the base model (vLLM only) under its own model name."""

    name: str = Field(
        pattern=DNS1123_LABEL,
        max_length=63,
        description="The adapter's model name in requests and /v1/models (a DNS label, unique in the "
        "model, different from the base model's served name).",
    )
    source: Annotated[
        str,
        Field(pattern=ADAPTER_SOURCE_PATTERN, max_length=300),
        BeforeValidator(_adapter_source),
        AfterValidator(no_dot_segments),
    ] = Field(
        json_schema_extra=cel_rules(
            (
                f"!self.matches('{DOT_SEGMENT}')",
                "spec.adapters.source: a path may not contain '.' or '..' segments",
            )
        ),
        description="hf://org/repo or hf://org/repo@revision (downloaded before vLLM starts, with the "
        "model's token if gated) or pvc://claim/path (mounted read-only).",
    )


class Lora(ApiModel):
    """How much room vLLM reserves for LoRA adapters (memory is planned for it)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                f"!has(self.maxRank) || self.maxRank in {list(LORA_RANKS)}",
                f"spec.lora.maxRank: must be one of {', '.join(map(str, LORA_RANKS))} (vLLM's ranks)",
            )
        )
    )

    max_rank: int = Field(
        default=16,
        ge=1,
        le=LORA_RANKS[-1],
        description=f"--max-lora-rank: the largest adapter rank served; one of "
        f"{', '.join(map(str, LORA_RANKS))} (default 16).",
    )
    max_loras: int | None = Field(
        default=None,
        ge=1,
        le=MAX_LORAS,
        description="--max-loras: adapters usable in one batch (GPU slots); default the number of adapters.",
    )

    @field_validator("max_rank")
    @classmethod
    def _vllm_rank(cls, value: int) -> int:
        if value not in LORA_RANKS:
            raise ValueError(
                f"{value} is not a rank vLLM accepts; use one of {', '.join(map(str, LORA_RANKS))}"
            )
        return value
