"""Which model names a request may ask for (``--allow-model``).

The operator renders one ``--allow-model`` per name the pod serves: the base model's served
name and, on vLLM, each LoRA adapter's. A request body naming any other model is refused by the
gateway (404 ``model_not_found``, as the OpenAI API answers), so clients can reach exactly the
models in ``spec`` and nothing a runtime might load on demand. Without the flag every name is
passed on and the runtime decides.
"""

from __future__ import annotations

from collections.abc import Iterable

from slm_operator.contract.runtime import Engine
from slm_operator.gateway import errors
from slm_operator.gateway.readiness import ollama_tag

# Echoed in the refusal: long enough to recognise, short enough to keep the answer small.
_ECHO_LIMIT = 128


class AllowedModels:
    """The accepted ``model`` values; Ollama's ``name`` and ``name:latest`` are one model."""

    def __init__(self, names: Iterable[str], *, runtime: Engine) -> None:
        self._ollama = runtime == Engine.OLLAMA
        self.names = tuple(dict.fromkeys(names))
        self._accepted = frozenset(self._key(name) for name in self.names)

    def _key(self, name: str) -> str:
        return ollama_tag(name) if self._ollama else name

    def accepts(self, document: dict[str, object]) -> bool:
        """True when the body names an accepted model, or none (the runtime's default applies)."""
        if "model" not in document:
            return True
        model = document["model"]
        return isinstance(model, str) and self._key(model) in self._accepted

    def refusal(self, document: dict[str, object]) -> errors.Answer:
        model = document.get("model")
        shown = model[:_ECHO_LIMIT] if isinstance(model, str) else repr(model)[:_ECHO_LIMIT]
        return errors.error(
            404,
            f"The model {shown!r} does not exist here; this endpoint serves: {', '.join(self.names)}.",
            kind="invalid_request_error",
            code="model_not_found",
        )
