"""Is the runtime ready, with the configured model really there?

vLLM: ``GET /health`` is 200 and ``GET /v1/models`` lists the served name as an ``id``.
Ollama: ``GET /api/tags`` lists the model under ``name`` or ``model``; Ollama reports full tags
(``phi4-mini:latest``, ``phi4-mini:3.8b-q4_K_M``) and a name without a tag means ``:latest``.
Results are cached briefly and concurrent probes share one check, so the kubelet (and several
probes at once) never hammer the runtime.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from slm_operator.contract.runtime import Engine

log = logging.getLogger(__name__)

# A probe that takes longer than this counts as not ready (the kubelet's default probe timeout
# is 1 s, but the gateway answers from its cache; this bounds the check itself).
CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Readiness:
    """The outcome of one check; ``reason`` says what is missing when not ready."""

    ready: bool
    reason: str


def ollama_tag(name: str) -> str:
    """Ollama's full name for a model: a name without an explicit tag means ``:latest``."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def _listed_ids(document: Any, list_key: str, fields: tuple[str, ...]) -> set[str]:
    entries = document.get(list_key) if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return set()
    return {e[f] for e in entries if isinstance(e, dict) for f in fields if isinstance(e.get(f), str)}


class ReadinessChecker:
    """Checks the runtime behind ``base_url`` for ``model``, caching the answer for a short while."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        runtime: Engine,
        model: str,
        cache_seconds: float,
        on_result: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._base_url = base_url
        self._runtime = runtime
        self._model = model
        self._cache_seconds = cache_seconds
        self._on_result = on_result
        self._clock = clock
        self._cached: Readiness | None = None
        self._expires = 0.0
        self._running: asyncio.Task[Readiness] | None = None

    async def check(self) -> Readiness:
        """The runtime's readiness, from the cache when fresh, else from one shared check."""
        if self._cached is not None and self._clock() < self._expires:
            return self._cached
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._check_and_store())
        # shield: a probe whose client gives up must not cancel the check others are waiting on.
        return await asyncio.shield(self._running)

    async def _check_and_store(self) -> Readiness:
        try:
            result = await asyncio.wait_for(self._check_runtime(), CHECK_TIMEOUT_SECONDS)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            result = Readiness(False, f"{self._runtime} is not answering ({type(exc).__name__})")
        if self._cached is None or result != self._cached:
            log.log(logging.INFO if result.ready else logging.WARNING, "readiness: %s", result.reason)
        self._cached = result
        self._expires = self._clock() + self._cache_seconds
        if self._on_result is not None:
            self._on_result(result.ready)
        return result

    async def _check_runtime(self) -> Readiness:
        if self._runtime == Engine.VLLM:
            async with self._session.get(f"{self._base_url}/health") as health:
                if health.status != 200:
                    return Readiness(False, f"vllm /health answered {health.status}")
            async with self._session.get(f"{self._base_url}/v1/models") as models:
                if models.status != 200:
                    return Readiness(False, f"vllm /v1/models answered {models.status}")
                ids = _listed_ids(await models.json(content_type=None), "data", ("id",))
            if self._model not in ids:
                return Readiness(False, f"vllm does not serve model {self._model!r} yet")
            return Readiness(True, f"vllm serves {self._model!r}")
        async with self._session.get(f"{self._base_url}/api/tags") as tags:
            if tags.status != 200:
                return Readiness(False, f"ollama /api/tags answered {tags.status}")
            names = _listed_ids(await tags.json(content_type=None), "models", ("name", "model"))
        wanted = ollama_tag(self._model)
        if wanted not in {ollama_tag(name) for name in names}:
            return Readiness(False, f"ollama has no model {wanted!r} yet")
        return Readiness(True, f"ollama has {wanted!r}")
