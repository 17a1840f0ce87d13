"""Prometheus metrics of the gateway, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chronotick_gateway.breaker import STATE_VALUES, BreakerState

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.fused = Counter(
            "chronotick_gateway_fused_requests", "Fused forecasts answered.", ["degraded"], registry=self.registry,
        )
        self.request_seconds = Histogram(
            "chronotick_gateway_request_seconds", "Time to answer POST /predict.",
            buckets=_LATENCY_BUCKETS_S, registry=self.registry,
        )
        self.backend_seconds = Histogram(
            "chronotick_gateway_backend_seconds", "Backend call time, retries included.",
            ["backend"], buckets=_LATENCY_BUCKETS_S, registry=self.registry,
        )
        self.retries = Counter(
            "chronotick_gateway_backend_retries", "Retried backend calls.", ["backend"], registry=self.registry,
        )
        self.failures = Counter(
            "chronotick_gateway_backend_failures", "Backend calls that gave no usable answer.",
            ["backend", "status"], registry=self.registry,
        )
        self.breaker = Gauge(
            "chronotick_gateway_breaker_state", "Circuit breaker per service: 0 closed, 1 half-open, 2 open.",
            ["service"], registry=self.registry,
        )
        self.overloaded = Counter(
            "chronotick_gateway_backend_overloaded", "Backend calls not sent: the service could not have "
            "answered before the deadline.", ["backend"], registry=self.registry,
        )
        self.in_flight = Gauge(
            "chronotick_gateway_backend_in_flight", "Calls in flight to each service from this gateway.",
            ["service"], registry=self.registry,
        )
        self.background_failures = Counter(
            "chronotick_gateway_background_failures", "Failures of the gateway's background tasks (each "
            "restarted), and health-poll rounds that failed or hung.", ["task"], registry=self.registry,
        )
        self.fleet_view_age = Gauge(
            "chronotick_gateway_fleet_view_age_seconds", "Seconds since the last completed health-poll round.",
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "chronotick_gateway_event_loop_lag_seconds", "How late the event loop ran a timer it was asked to "
            "run (sampled every 100 ms): time every request waits for the loop's other work.",
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), registry=self.registry,
        )
        self.errors = Counter(
            "chronotick_gateway_errors", "Error answers, by HTTP status.", ["status"], registry=self.registry,
        )

    def observe_breaker(self, service: str, state: BreakerState) -> None:
        self.breaker.labels(service=service).set(STATE_VALUES[state])
