"""Checks for Ollama Modelfile PARAMETERs and text (kept apart from the spec model for size)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from slm_operator.api.vllm_args import format_number

# ---------------------------------------------------------------------------------------------
# Ollama Modelfile
#
# PARAMETER names and value types follow Ollama's Modelfile reference, "Valid Parameters and
# Values" (ollama/ollama docs/modelfile.mdx, read at commit 071c82b). `draft_num_predict`, listed
# there only recently, is left out until the pinned Ollama image is known to accept it.
# ---------------------------------------------------------------------------------------------

ParameterKind = Literal["int", "float", "stop"]


@dataclass(frozen=True)
class OllamaParameter:
    """One Modelfile PARAMETER: its value type and bounds."""

    name: str
    kind: ParameterKind
    help: str
    minimum: float | None = None
    maximum: float | None = None


OLLAMA_PARAMETERS: dict[str, OllamaParameter] = {
    p.name: p
    for p in (
        OllamaParameter("num_ctx", "int", "context window in tokens", 1, 1_048_576),
        OllamaParameter(
            "repeat_last_n", "int", "tokens looked back for repetition (0 off, -1 = num_ctx)", -1
        ),
        OllamaParameter("repeat_penalty", "float", "repetition penalty (1.0 = off)", 0),
        OllamaParameter("temperature", "float", "sampling temperature", 0),
        OllamaParameter("seed", "int", "random seed"),
        OllamaParameter("stop", "stop", "stop sequence, or a list of them"),
        OllamaParameter(
            "num_predict", "int", "most tokens generated (-1 unlimited, -2 fill the context)", -2
        ),
        OllamaParameter("top_k", "int", "top-k sampling", 0),
        OllamaParameter("top_p", "float", "nucleus sampling", 0, 1),
        OllamaParameter("min_p", "float", "minimum relative token probability", 0, 1),
    )
}

# Names seen in tutorials (and in the course this project started from) that Ollama does not
# have under that name, or that the operator deliberately does not let a spec set.
OLLAMA_REFUSED_PARAMETERS: dict[str, str] = {
    "context_length": "is not an Ollama parameter; use num_ctx (and spec.model.contextLength)",
    "max_tokens": "is not an Ollama parameter; use num_predict",
    "max_length": "is not an Ollama parameter; use num_predict",
    "num_gpu": (
        "is refused: in Ollama it is the number of model layers offloaded to the GPU, not a GPU count; "
        "GPUs come from spec.hardware and Ollama offloads every layer that fits"
    ),
    "num_thread": "is refused: Ollama sizes its threads itself; CPU comes from the tier or spec.resources",
}

MODELFILE_TEXT_LIMIT = 16_384
_STOP_LIMIT = 256


def text_problem(text: str) -> str | None:
    """Text that would corrupt the rendered Modelfile (its blocks are quoted with triple quotes)."""
    if "\x00" in text:
        return "must not contain NUL characters"
    if '"""' in text:
        return 'must not contain """ (it would end the Modelfile\'s quoted block)'
    return None


def _number_problem(param: OllamaParameter, value: Any) -> str | None:
    # bool is an int in Python; YAML's true/false is never a valid number here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be {'an integer' if param.kind == 'int' else 'a number'}, got {value!r}"
    if param.kind == "int" and not isinstance(value, int):
        return f"must be an integer, got {value!r}"
    if param.minimum is not None and value < param.minimum:
        return f"must be at least {format_number(param.minimum)}, got {value}"
    if param.maximum is not None and value > param.maximum:
        return f"must be at most {format_number(param.maximum)}, got {value}"
    return None


def _stop_problem(value: Any) -> str | None:
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > 16:
        return "takes 1 to 16 stop sequences"
    for item in values:
        if not isinstance(item, str) or not item:
            return f"stop sequences must be non-empty strings, got {item!r}"
        if len(item) > _STOP_LIMIT or any(c in item for c in '\x00\n\r"'):
            return (
                f"stop sequence {item!r} must be one line of at most {_STOP_LIMIT} characters without quotes"
            )
    return None


def modelfile_parameter_problems(parameters: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems with Modelfile PARAMETERs as (parameter name, message)."""
    problems: list[tuple[str, str]] = []
    for name, value in parameters.items():
        if name in OLLAMA_REFUSED_PARAMETERS:
            problems.append((name, f"{name} {OLLAMA_REFUSED_PARAMETERS[name]}"))
            continue
        param = OLLAMA_PARAMETERS.get(name)
        if param is None:
            valid = ", ".join(sorted(OLLAMA_PARAMETERS))
            problems.append((name, f"{name!r} is not an Ollama Modelfile PARAMETER; valid: {valid}"))
            continue
        problem = _stop_problem(value) if param.kind == "stop" else _number_problem(param, value)
        if problem is not None:
            problems.append((name, problem))
    return problems
