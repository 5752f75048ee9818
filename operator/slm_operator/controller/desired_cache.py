"""The parsed spec and desired state of recently reconciled models, for their next pass.

A new model gets two passes within seconds: one that creates its children, and one when its
Deployment becomes available, which only changes its status. Both parse the same spec, plan
and render the same children; on the simulated cluster that was about a tenth of the CPU a new
model cost. :func:`~slm_operator.desired.desired_state` is a pure function of the model's
body (less its ``status`` and ``resourceVersion``, which every status patch changes), the
operator's configuration and two discovery answers, so its result is kept under exactly
those inputs and reused when they come again.

What is kept is shared between passes and threads and must not be changed: nothing in a pass
changes a rendered object or the plan (:func:`~slm_operator.controller.drift.prepare_child`
builds a new top level for what it applies). A spec that fails to parse or fit is not kept.
The number of entries is bounded (least recently used goes first): each holds some 40-50 KiB
of parsed spec, plan and rendered objects.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from slm_operator.api.config import OperatorConfig
from slm_operator.api.parse import parse_document
from slm_operator.api.spec import SmallLanguageModel
from slm_operator.desired import DesiredState, desired_state

# Metadata every write of the model changes without changing what it asks for.
_VOLATILE_METADATA = frozenset({"resourceVersion", "managedFields"})


@dataclass
class DesiredCache:
    """The last ``capacity`` results of parse + plan + render, by their inputs."""

    capacity: int = 128
    _entries: OrderedDict[bytes, tuple[OperatorConfig, SmallLanguageModel, DesiredState]] = field(
        default_factory=OrderedDict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(
        self, body: Mapping[str, Any], config: OperatorConfig, *, monitoring: bool, keda: bool
    ) -> tuple[SmallLanguageModel, DesiredState]:
        """The model parsed from ``body`` and its desired state (see :func:`compute`)."""
        try:
            key = inputs_key(body, monitoring=monitoring, keda=keda)
        except TypeError:  # a value orjson does not encode (an int beyond 64 bits): not kept
            return compute(body, config, monitoring=monitoring, keda=keda)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] is config:
                self._entries.move_to_end(key)
                return entry[1], entry[2]
        model, state = compute(body, config, monitoring=monitoring, keda=keda)
        with self._lock:
            self._entries[key] = (config, model, state)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return model, state

    def __len__(self) -> int:
        return len(self._entries)


def compute(
    body: Mapping[str, Any], config: OperatorConfig, *, monitoring: bool, keda: bool
) -> tuple[SmallLanguageModel, DesiredState]:
    """Parse, plan and render; raises SpecError/FitError like
    :func:`~slm_operator.api.parse.parse_document` and :func:`desired_state`."""
    model = parse_document(dict(body))
    return model, desired_state(model, config, monitoring_available=monitoring, keda_available=keda)


def inputs_key(body: Mapping[str, Any], *, monitoring: bool, keda: bool) -> bytes:
    """Everything of a model's body the desired state can depend on, with the discovery answers,
    as bytes: equal bytes, equal inputs (a different key order only misses the cache)."""
    meta = body.get("metadata") or {}
    kept = {key: value for key, value in body.items() if key not in ("metadata", "status")}
    kept["metadata"] = {key: value for key, value in meta.items() if key not in _VOLATILE_METADATA}
    return orjson.dumps([kept, monitoring, keda])
