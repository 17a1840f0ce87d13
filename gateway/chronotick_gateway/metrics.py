"""Prometheus metrics of the gateway, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chronotick_gateway.breaker import STATE_VALUES, BreakerState

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
# Clock errors span sub-microsecond (GNSS-disciplined, 1 s ahead) to milliseconds (NTP, a minute ahead).
_ERROR_BUCKETS_US = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.fused = Counter(
            "chronotick_gateway_fused_requests",
            "Fused forecasts answered.",
            ["degraded"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "chronotick_gateway_request_seconds",
            "Time to answer POST /predict.",
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.backend_seconds = Histogram(
            "chronotick_gateway_backend_seconds",
            "Backend call time, retries included.",
            ["backend"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.requests_per_call = Histogram(
            "chronotick_gateway_requests_per_call",
            "Requests whose series one backend call carried (the "
            "requests that want a model while its call is in flight go together in the next).",
            ["backend"],
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
            registry=self.registry,
        )
        self.retries = Counter(
            "chronotick_gateway_backend_retries",
            "Retried backend calls.",
            ["backend"],
            registry=self.registry,
        )
        self.failures = Counter(
            "chronotick_gateway_backend_failures",
            "Backend calls that gave no usable answer.",
            ["backend", "status"],
            registry=self.registry,
        )
        self.breaker = Gauge(
            "chronotick_gateway_breaker_state",
            "Circuit breaker per service: 0 closed, 1 half-open, 2 open.",
            ["service"],
            registry=self.registry,
        )
        self.service_ready = Gauge(
            "chronotick_gateway_service_ready",
            "1 while the gateway counts the service ready (its health checks pass), else 0.",
            ["service"],
            registry=self.registry,
        )
        self.default_deadline = Gauge(
            "chronotick_gateway_default_deadline_seconds",
            "The deadline of a request that names none (what the latency alert compares with).",
            registry=self.registry,
        )
        self.overloaded = Counter(
            "chronotick_gateway_backend_overloaded",
            "Backend calls not sent: the service could not have answered before the deadline.",
            ["backend"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "chronotick_gateway_backend_in_flight",
            "Calls in flight to each service from this gateway.",
            ["service"],
            registry=self.registry,
        )
        self.background_failures = Counter(
            "chronotick_gateway_background_failures",
            "Failures of the gateway's background tasks (each restarted), and health-poll rounds that failed or hung.",
            ["task"],
            registry=self.registry,
        )
        self.fleet_view_age = Gauge(
            "chronotick_gateway_fleet_view_age_seconds",
            "Seconds since the last completed health-poll round.",
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "chronotick_gateway_event_loop_lag_seconds",
            "How late the event loop ran a timer it was asked to "
            "run (sampled every 100 ms): time every request waits for the loop's other work.",
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=self.registry,
        )
        self.errors = Counter(
            "chronotick_gateway_errors",
            "Error answers, by HTTP status.",
            ["status"],
            registry=self.registry,
        )

        # The clock memory: aggregates only, never a label per clock (their number is unbounded).
        self.clocks_held = Gauge(
            "chronotick_gateway_clocks_held",
            "Clocks whose memory the store holds.",
            registry=self.registry,
        )
        self.series_memory = Counter(
            "chronotick_gateway_series_memory",
            "Series answered, by what their clock's memory did (stateless, cold-start, remembered, unavailable).",
            ["state"],
            registry=self.registry,
        )
        self.forecasts_scored = Counter(
            "chronotick_gateway_forecasts_scored",
            "Remembered forecasts scored at one horizon by the truth.",
            registry=self.registry,
        )
        self.forecasts_reused = Counter(
            "chronotick_gateway_forecasts_reused",
            "Model forecasts that a warm clock's kept forecast stood in "
            "for, re-anchored (the model was not asked), by member.",
            ["backend"],
            registry=self.registry,
        )
        self.interval_outcomes = Counter(
            "chronotick_gateway_interval_outcomes",
            "Remembered central intervals scored, by level, scored horizon and whether they covered the truth.",
            ["level", "horizon_s", "outcome"],
            registry=self.registry,
        )
        self.fused_abs_error = Histogram(
            "chronotick_gateway_fused_abs_error_us",
            "Absolute error of the fused forecast (us) at each scored "
            "horizon, when the truth arrives: rate(_sum) / rate(_count) is the realised MAE.",
            ["horizon_s"],
            buckets=_ERROR_BUCKETS_US,
            registry=self.registry,
        )
        self.clock_coverage = Histogram(
            "chronotick_gateway_clock_coverage",
            "Each clock's realised coverage of a central interval, observed "
            "when its forecasts are scored: the spread across clocks, which a total hides.",
            ["level"],
            buckets=(0.5, 0.7, 0.75, 0.77, 0.8, 0.83, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99, 1.0),
            registry=self.registry,
        )
        self.memory_unavailable = Counter(
            "chronotick_gateway_clock_memory_unavailable",
            "Reads and writes of the clock memory that failed (the series were answered statelessly meanwhile).",
            registry=self.registry,
        )

    def observe_service(self, service: str, ready: bool, state: BreakerState) -> None:
        self.breaker.labels(service=service).set(STATE_VALUES[state])
        self.service_ready.labels(service=service).set(int(ready))

    def forget_service(self, service: str) -> None:
        """A service a reload removed: its series go (not frozen at their last value)."""
        for gauge in (self.breaker, self.in_flight, self.service_ready):
            gauge.remove(service)  # (a label set it never had is no error)
