"""The gateway's Prometheus metrics, in a private registry per gateway instance."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from slm_operator.gateway.routes import OTHER, ROUTE_LABELS

# Whole-request latency of LLM calls spans milliseconds (models list, cached prompts) to minutes
# (long CPU generations).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
# Time to first token: tens of milliseconds on a warm GPU, seconds on CPU or under queueing.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 20, 30, 60)
# Why a request did not get a clean answer from the runtime (a fixed set, for the label).
# Why the gateway closed a client connection (a fixed set, for the label).
DROP_REASONS = ("header_timeout", "body_timeout", "pushed_out", "refused")
UPSTREAM_ERROR_REASONS = ("connect", "timeout", "disconnected", "stream_stalled", "stream_broken")


class _Histogram:
    """Bucket counts (not cumulative) and a sum; made cumulative only when scraped."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        running = 0
        buckets = []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            buckets.append((("+Inf" if bound == math.inf else repr(float(bound))), float(running)))
        return buckets


class _RequestCollector(Collector):
    """The per-request metrics, kept as plain numbers and turned into samples when scraped.

    prometheus-client's Counter and Histogram take a lock on every increment; the gateway
    records each request from one event-loop thread, and /metrics is served on the same loop, so
    plain integers suffice and cost a fraction (docs/benchmarks.md).
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.requests: dict[tuple[str, int], int] = {}
        self.duration = {route: _Histogram(DURATION_BUCKETS) for route in ROUTE_LABELS}
        self.ttft = {route: _Histogram(TTFT_BUCKETS) for route in ROUTE_LABELS}
        self.tokens = dict.fromkeys(ROUTE_LABELS, 0)
        self.in_flight = 0

    def collect(self) -> Iterator[Metric]:
        model = self.model
        requests = CounterMetricFamily(
            "slm_gateway_requests",
            "Requests answered by the gateway, by route template and HTTP status "
            "(499: the client went away first).",
            labels=["model", "route", "code"],
        )
        for (route, code), count in sorted(self.requests.items()):
            requests.add_metric([model, route, str(code)], count)
        yield requests
        for name, help_text, histograms in (
            (
                "slm_gateway_request_duration_seconds",
                "Time from receiving a request to sending the last byte of its answer.",
                self.duration,
            ),
            (
                "slm_gateway_time_to_first_token_seconds",
                "Time to the first content chunk of a stream, or to the whole answer when not streamed.",
                self.ttft,
            ),
        ):
            family = HistogramMetricFamily(name, help_text, labels=["model", "route"])
            for route, histogram in histograms.items():
                family.add_metric([model, route], histogram.cumulative(), histogram.total)
            yield family
        tokens = CounterMetricFamily(
            "slm_gateway_output_tokens",
            "Generated tokens: usage.completion_tokens (or Ollama's eval_count) when the runtime "
            "reports it, else the number of streamed content chunks.",
            labels=["model", "route"],
        )
        for route, count in self.tokens.items():
            tokens.add_metric([model, route], count)
        yield tokens
        in_flight = GaugeMetricFamily(
            "slm_gateway_in_flight_requests",
            "Requests being forwarded to the runtime right now.",
            labels=["model"],
        )
        in_flight.add_metric([model], self.in_flight)
        yield in_flight


class GatewayMetrics:
    """All gateway metrics for one served model; the per-request ones are plain numbers."""

    def __init__(self, model: str, registry: CollectorRegistry | None = None) -> None:
        self.model = model
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self._stats = _RequestCollector(model)
        reg.register(self._stats)
        self.upstream_up = Gauge(
            "slm_gateway_upstream_up",
            "1 when the last readiness check found the runtime ready with the model loaded.",
            ["model"],
            registry=reg,
        ).labels(model)
        self.upstream_errors = Counter(
            "slm_gateway_upstream_errors",
            "Forwarded requests that failed at the runtime side, by reason.",
            ["model", "reason"],
            registry=reg,
        )
        self.connections_dropped = Counter(
            "slm_gateway_connections_dropped",
            "Client connections the gateway closed: header_timeout (request head too slow), "
            "body_timeout (request body too slow), pushed_out (made room at the connection cap), "
            "refused (cap reached with every connection busy).",
            ["model", "reason"],
            registry=reg,
        )
        self._dropped = {reason: self.connections_dropped.labels(model, reason) for reason in DROP_REASONS}
        self._errors = {
            reason: self.upstream_errors.labels(model, reason) for reason in UPSTREAM_ERROR_REASONS
        }

    def request_started(self) -> None:
        """A request is being forwarded to the runtime (the in-flight gauge)."""
        self._stats.in_flight += 1

    def request_ended(self) -> None:
        """A forwarded request is over."""
        self._stats.in_flight -= 1

    def observe_request(
        self, route: str, code: int, duration: float, ttft: float | None, tokens: int | None
    ) -> None:
        """Record one finished request (``route`` must be one of ``ROUTE_LABELS``)."""
        stats = self._stats
        key = (route, code)
        stats.requests[key] = stats.requests.get(key, 0) + 1
        stats.duration[route].observe(duration)
        if ttft is not None:
            stats.ttft[route].observe(ttft)
        if tokens:
            stats.tokens[route] += tokens

    def malformed_request(self, code: int) -> None:
        """Count a request the HTTP parser rejected (route ``other``; no duration: no request)."""
        key = (OTHER, code)
        self._stats.requests[key] = self._stats.requests.get(key, 0) + 1

    def connection_dropped(self, reason: str) -> None:
        """Count a client connection the gateway closed (``reason`` from ``DROP_REASONS``)."""
        self._dropped[reason].inc()

    def upstream_error(self, reason: str) -> None:
        """Count a runtime-side failure (``reason`` from ``UPSTREAM_ERROR_REASONS``)."""
        self._errors[reason].inc()
