"""Allow-list and checks for ``spec.vllm.extraArgs`` (kept apart from the spec model for size)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# ---------------------------------------------------------------------------------------------
# vLLM extra arguments
#
# Flags and their value types come from `vllm serve --help` (vLLM v0.11.0) and the vLLM engine
# arguments page (https://docs.vllm.ai/en/v0.11.0/configuration/engine_args.html). Only tuning
# flags that cannot break the operator's contract are accepted; flags the operator derives
# from the spec are refused with the field that sets them, so the spec stays the single source
# of truth.
# ---------------------------------------------------------------------------------------------

VllmValueKind = Literal["switch", "int", "float", "name", "url", "choice"]
_NAME_VALUE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_URL_VALUE = r"^(https?|grpc)://[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]{0,255})?$"
_INT_VALUE = r"^-?[0-9]{1,12}$"
_FLOAT_VALUE = r"^-?[0-9]{1,9}(\.[0-9]{1,9})?$"


@dataclass(frozen=True)
class VllmFlag:
    """One accepted ``vllm serve`` flag: how its value is checked and what it needs."""

    name: str
    kind: VllmValueKind
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    requires: str | None = None
    conflicts: str | None = None


VLLM_ALLOWED_FLAGS: dict[str, VllmFlag] = {
    flag.name: flag
    for flag in (
        VllmFlag(
            "--enable-prefix-caching",
            "switch",
            "reuse KV blocks of shared prompt prefixes",
            conflicts="--no-enable-prefix-caching",
        ),
        VllmFlag(
            "--no-enable-prefix-caching",
            "switch",
            "turn automatic prefix caching off",
            conflicts="--enable-prefix-caching",
        ),
        VllmFlag(
            "--enable-chunked-prefill",
            "switch",
            "split long prefills into chunks",
            conflicts="--no-enable-chunked-prefill",
        ),
        VllmFlag(
            "--no-enable-chunked-prefill",
            "switch",
            "turn chunked prefill off",
            conflicts="--enable-chunked-prefill",
        ),
        VllmFlag(
            "--max-num-batched-tokens", "int", "tokens per scheduler step", minimum=1, maximum=1_048_576
        ),
        VllmFlag("--enforce-eager", "switch", "no CUDA graphs: less memory, slower"),
        VllmFlag(
            "--kv-cache-dtype",
            "choice",
            "KV cache precision (fp8 halves the KV cache)",
            choices=("auto", "fp8", "fp8_e4m3", "fp8_e5m2"),
        ),
        # vLLM refuses --enable-auto-tool-choice without --tool-call-parser (its startup check in
        # vllm/entrypoints/openai/cli_args.py validate_parsed_serve_args).
        VllmFlag(
            "--enable-auto-tool-choice",
            "switch",
            "let the model decide to call tools",
            requires="--tool-call-parser",
        ),
        VllmFlag("--tool-call-parser", "name", "tool-call output parser, e.g. hermes, phi4_mini_json"),
        VllmFlag("--reasoning-parser", "name", "reasoning-content parser, e.g. qwen3, deepseek_r1"),
        VllmFlag(
            "--cpu-offload-gb", "float", "GiB of weights offloaded to CPU memory", minimum=0, maximum=1024
        ),
        VllmFlag("--enable-lora", "switch", "serve LoRA adapters"),
        VllmFlag(
            "--max-loras",
            "int",
            "LoRA adapters in one batch",
            minimum=1,
            maximum=64,
            requires="--enable-lora",
        ),
        VllmFlag(
            "--max-lora-rank", "int", "largest LoRA rank", minimum=1, maximum=512, requires="--enable-lora"
        ),
        VllmFlag("--otlp-traces-endpoint", "url", "OpenTelemetry traces collector (allow its egress too)"),
        VllmFlag("--seed", "int", "random seed", minimum=0, maximum=2**32 - 1),
        VllmFlag(
            "--max-logprobs", "int", "most log-probabilities a request may ask for", minimum=0, maximum=1024
        ),
        VllmFlag("--disable-log-stats", "switch", "do not log engine statistics"),
        # Only the built-in sources: a folder path would need a mounted file the spec cannot provide.
        VllmFlag(
            "--generation-config",
            "choice",
            "where default sampling parameters come from",
            choices=("auto", "vllm"),
        ),
    )
}

# Flags the operator sets itself, and the spec field that controls each.
VLLM_OPERATOR_FLAGS: dict[str, str] = {
    "--model": "spec.model (catalog or source)",
    "--host": "the operator: the runtime listens on localhost behind the gateway sidecar",
    "--port": "the operator: the runtime listens on localhost behind the gateway sidecar",
    "--served-model-name": "spec.model.servedName",
    "--max-model-len": "spec.model.contextLength",
    "--max-num-seqs": "spec.maxConcurrency",
    "--gpu-memory-utilization": "the tier in the operator configuration (the memory plan depends on it)",
    "--tensor-parallel-size": "spec.hardware.gpus",
    "--pipeline-parallel-size": "spec.hardware.gpus (one pod per replica, tensor parallel only)",
    "--dtype": "spec.quantization (the planner picks bfloat16 or float16 from the GPU's compute capability)",
    "--quantization": "spec.quantization",
    "--api-key": "spec.auth (the gateway checks keys; a key in argv would be readable in the pod spec)",
    "--download-dir": "spec.storage (the model cache volume)",
    "--revision": "spec.model.revision",
}

# Flags refused outright, with the reason.
VLLM_REFUSED_FLAGS: dict[str, str] = {
    "--trust-remote-code": (
        "is refused: it runs Python code from the model repository inside the pod; every catalog model is "
        "supported natively by vLLM, so it stays off"
    ),
    # vLLM deprecated the flag when request logging became opt-in (vllm-project/vllm#21739) and
    # later removed it (#29402): accepting it would crash pods after an image upgrade.
    "--disable-log-requests": (
        "is refused: vLLM no longer logs requests by default and has removed this flag, so a pod "
        "using it would fail to start after an image upgrade; leave it out"
    ),
    "--chat-template": (
        "is refused: it takes a file path or an inline Jinja template, and the pod has no user files; "
        "use a model whose tokenizer ships a chat template"
    ),
}

_REFUSED_SWITCHES = frozenset({"--trust-remote-code", "--disable-log-requests"})

VLLM_SHORT_FLAGS: dict[str, str] = {
    "-tp": "--tensor-parallel-size",
    "-pp": "--pipeline-parallel-size",
    "-q": "--quantization",
}


def format_number(value: float | None) -> str:
    """A bound as people write it: 1048576, not 1.04858e+06; 0.5 stays 0.5."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(value)


def _check_vllm_value(flag: VllmFlag, value: str) -> str | None:
    """The problem with one flag's value, or None."""
    if value == "":
        return f"{flag.name} needs a non-empty value"
    if flag.kind in ("int", "float"):
        pattern = _INT_VALUE if flag.kind == "int" else _FLOAT_VALUE
        if not re.fullmatch(pattern, value):
            kind = "an integer" if flag.kind == "int" else "a number"
            return f"{flag.name} takes {kind}, got {value!r}"
        number = float(value)
        if (flag.minimum is not None and number < flag.minimum) or (
            flag.maximum is not None and number > flag.maximum
        ):
            low, high = format_number(flag.minimum), format_number(flag.maximum)
            return f"{flag.name} must be between {low} and {high}, got {value}"
    elif flag.kind == "choice" and value not in flag.choices:
        return f"{flag.name} must be one of {', '.join(flag.choices)}; got {value!r}"
    elif flag.kind == "name" and not re.fullmatch(_NAME_VALUE, value):
        return f"{flag.name} takes a name of letters, digits, '_', '.' or '-', got {value!r}"
    elif flag.kind == "url" and not re.fullmatch(_URL_VALUE, value):
        return f"{flag.name} takes an http(s):// or grpc:// URL, got {value!r}"
    return None


def _refusal(name: str) -> str | None:
    """Why a flag name that is not on the allow-list is refused."""
    if name in VLLM_OPERATOR_FLAGS:
        return f"{name} is set by the operator; use {VLLM_OPERATOR_FLAGS[name]} instead"
    if name in VLLM_REFUSED_FLAGS:
        return f"{name} {VLLM_REFUSED_FLAGS[name]}"
    if name in VLLM_SHORT_FLAGS:
        long = VLLM_SHORT_FLAGS[name]
        return f"{name} ({long}) is set by the operator; use {VLLM_OPERATOR_FLAGS[long]} instead"
    if name not in VLLM_ALLOWED_FLAGS:
        return f"{name} is not an accepted vLLM flag; accepted: {', '.join(sorted(VLLM_ALLOWED_FLAGS))}"
    return None


def parse_vllm_args(args: Sequence[str]) -> tuple[dict[str, str | None], list[tuple[int, str]]]:
    """Parse ``spec.vllm.extraArgs``: the flags given (value or None for switches) and problems.

    Both ``--flag=value`` and ``--flag value`` are understood. Each problem carries the index of
    the list element it concerns, so errors can name ``spec.vllm.extraArgs[i]``.
    """
    flags: dict[str, str | None] = {}
    first_index: dict[str, int] = {}
    problems: list[tuple[int, str]] = []
    i = 0
    while i < len(args):
        arg, index = args[i], i
        i += 1
        if not arg.startswith("-"):
            problems.append(
                (
                    index,
                    f"{arg!r} is not a flag; positional arguments are not accepted (the model is spec.model)",
                )
            )
            continue
        name, has_inline, inline = arg.partition("=")
        if (why := _refusal(name)) is not None:
            problems.append((index, why))
            # A refused flag's value is not a second problem; only known switches take none.
            if (
                not has_inline
                and name not in _REFUSED_SWITCHES
                and i < len(args)
                and not args[i].startswith("-")
            ):
                i += 1
            continue
        flag = VLLM_ALLOWED_FLAGS[name]
        value: str | None = None
        value_index = index
        if flag.kind == "switch":
            if has_inline:
                problems.append((index, f"{name} is a switch and takes no value"))
                continue
        elif has_inline:
            value = inline
        elif i < len(args) and not args[i].startswith("--"):
            value, value_index = args[i], i
            i += 1
        else:
            problems.append((index, f"{name} needs a value ({name}=VALUE or {name} VALUE)"))
            continue
        if value is not None and (why := _check_vllm_value(flag, value)) is not None:
            problems.append((value_index, why))
            continue
        if name in flags:
            problems.append((index, f"{name} is given twice (first at extraArgs[{first_index[name]}])"))
            continue
        flags[name] = value
        first_index[name] = index
    for name, index in first_index.items():
        flag = VLLM_ALLOWED_FLAGS[name]
        if flag.requires is not None and flag.requires not in flags:
            problems.append((index, f"{name} needs {flag.requires} as well"))
        if flag.conflicts is not None and flag.conflicts in flags and index > first_index[flag.conflicts]:
            problems.append((index, f"{name} contradicts {flag.conflicts}"))
    return flags, sorted(problems)


def vllm_flag_values(args: Sequence[str]) -> dict[str, str | None]:
    """The valid flags of ``extraArgs`` by name (None for switches), for the planner and renderer."""
    return parse_vllm_args(args)[0]
