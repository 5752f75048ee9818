"""The runtimes a model can be served by.

:class:`Engine` is the one concrete runtime type: the catalog's variants and tiers name it, the
plan records it, the renderer builds its container and passes it to the gateway's ``--runtime``
flag, and the gateway picks its routes and readiness check by it. What a user asks for in
``spec.runtime`` may also be ``auto`` (let the planner choose); that request type is
:class:`slm_operator.api.spec.Runtime`, whose concrete members carry the same values, so
``Engine(spec.runtime)`` turns a concrete request into an engine.
"""

from __future__ import annotations

from enum import StrEnum


class Engine(StrEnum):
    """A concrete runtime: vLLM (GPU) or Ollama (CPU and edge)."""

    VLLM = "vllm"
    OLLAMA = "ollama"
