"""The gateway's Prometheus metrics, in a private registry per gateway instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from slm_operator.gateway.connections import DROP_REASONS
from slm_operator.gateway.routes import OTHER, ROUTE_LABELS

# Whole-request latency of LLM calls spans milliseconds (models list, cached prompts) to minutes
# (long CPU generations).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
# Time to first token: tens of milliseconds on a warm GPU, seconds on CPU or under queueing.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 20, 30, 60)
# Why a request did not get a clean answer from the runtime (a fixed set, for the label).
UPSTREAM_ERROR_REASONS = ("connect", "timeout", "disconnected", "stream_stalled", "stream_broken")


class GatewayMetrics:
    """All gateway metrics for one served model; children are pre-bound so the hot path only adds."""

    def __init__(self, model: str, registry: CollectorRegistry | None = None) -> None:
        self.model = model
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "slm_gateway_requests",
            "Requests answered by the gateway, by route template and HTTP status "
            "(499: the client went away first).",
            ["model", "route", "code"],
            registry=reg,
        )
        self.duration = Histogram(
            "slm_gateway_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its answer.",
            ["model", "route"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.ttft = Histogram(
            "slm_gateway_time_to_first_token_seconds",
            "Time to the first content chunk of a stream, or to the whole answer when not streamed.",
            ["model", "route"],
            buckets=TTFT_BUCKETS,
            registry=reg,
        )
        self.output_tokens = Counter(
            "slm_gateway_output_tokens",
            "Generated tokens: usage.completion_tokens when the runtime reports it, "
            "else the number of streamed content chunks.",
            ["model", "route"],
            registry=reg,
        )
        self.in_flight = Gauge(
            "slm_gateway_in_flight_requests",
            "Requests being forwarded to the runtime right now.",
            ["model"],
            registry=reg,
        ).labels(model)
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
        self._duration = {route: self.duration.labels(model, route) for route in ROUTE_LABELS}
        self._ttft = {route: self.ttft.labels(model, route) for route in ROUTE_LABELS}
        self._tokens = {route: self.output_tokens.labels(model, route) for route in ROUTE_LABELS}
        self._errors = {
            reason: self.upstream_errors.labels(model, reason) for reason in UPSTREAM_ERROR_REASONS
        }
        self._requests: dict[tuple[str, int], MetricWrapperBase] = {}

    def observe_request(
        self, route: str, code: int, duration: float, ttft: float | None, tokens: int | None
    ) -> None:
        """Record one finished request (``route`` must be one of ``ROUTE_LABELS``)."""
        key = (route, code)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(self.model, route, str(code))
        counter.inc()  # type: ignore[attr-defined]
        self._duration[route].observe(duration)
        if ttft is not None:
            self._ttft[route].observe(ttft)
        if tokens:
            self._tokens[route].inc(tokens)

    def malformed_request(self, code: int) -> None:
        """Count a request aiohttp's parser rejected (route ``other``; no duration: no request)."""
        key = (OTHER, code)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(self.model, OTHER, str(code))
        counter.inc()  # type: ignore[attr-defined]

    def connection_dropped(self, reason: str) -> None:
        """Count a client connection the gateway closed (``reason`` from ``DROP_REASONS``)."""
        self._dropped[reason].inc()

    def upstream_error(self, reason: str) -> None:
        """Count a runtime-side failure (``reason`` from ``UPSTREAM_ERROR_REASONS``)."""
        self._errors[reason].inc()
