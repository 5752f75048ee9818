"""The operator's own Prometheus metrics (served by ``slmctl run --metrics-port``).

A private registry keeps tests and repeated starts independent of the global one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from slm_operator import __version__

PHASES = ("Pending", "Deploying", "Ready", "Degraded", "Failed")


@dataclass
class OperatorMetrics:
    """Counters and gauges for reconciles, applies and models; one instance per operator."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _phases: dict[tuple[str, str], str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)  # models by phase
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.reconcile_total = Counter(
            "slm_operator_reconcile_total",
            "Reconciles of SmallLanguageModels by result (ok, invalid, retry, error).",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "slm_operator_reconcile_duration_seconds",
            "Wall time of one reconcile by result.",
            ["result"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.models = Gauge(
            "slm_operator_models",
            "SmallLanguageModels seen by this operator, by status.phase.",
            ["phase"],
            registry=self.registry,
        )
        self.apply_errors = Counter(
            "slm_operator_apply_errors_total",
            "Failed writes of child objects, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "slm_operator_queue_depth",
            "Models waiting for a worker (not counting delayed retries).",
            registry=self.registry,
        )
        self.build_info = Gauge(
            "slm_operator_build_info", "The operator's version.", ["version"], registry=self.registry
        )
        self.build_info.labels(version=__version__).set(1)
        for phase in PHASES:
            self.models.labels(phase=phase).set(0)

    def observe_reconcile(self, result: str, seconds: float) -> None:
        self.reconcile_total.labels(result=result).inc()
        self.reconcile_duration.labels(result=result).observe(seconds)

    def set_phase(self, namespace: str, name: str, phase: str | None) -> None:
        """Record a model's phase (``None`` forgets a deleted model) and refresh the gauge
        (only the phases that changed: at 1000 models every pass sets a phase)."""
        with self._lock:
            before = self._phases.pop((namespace, name), None)
            if phase is not None:
                self._phases[(namespace, name)] = phase
            if before == phase:
                return
            changed = [p for p in (before, phase) if p is not None]
            for key in changed:
                self._counts[key] = self._counts.get(key, 0) + (1 if key == phase else -1)
            counts = {key: self._counts[key] for key in changed}
        for key, count in counts.items():
            self.models.labels(phase=key).set(count)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from other pods
        """Serve ``/metrics`` on a background thread."""
        start_http_server(port, addr=addr, registry=self.registry)
