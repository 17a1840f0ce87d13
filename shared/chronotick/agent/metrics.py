"""The agent's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chronotick.agent.scoring import Realized, Score


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.measurements = Counter(
            "chronotick_agent_measurements_total", "Real offset measurements taken.", registry=r
        )
        self.source_failures = Counter(
            "chronotick_agent_source_failures_total",
            "Measurement attempts that got no reply or no answer.",
            ["reason"],
            registry=r,
        )
        self.rejected = Counter(
            "chronotick_agent_rejected_replies_total",
            "Replies that failed the sanity checks (never used).",
            ["reason"],
            registry=r,
        )
        self.forecast_requests = Counter(
            "chronotick_agent_forecast_requests_total",
            "Forecasts asked of the gateway, by kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.forecast_seconds = Histogram(
            "chronotick_agent_forecast_seconds", "Gateway round trip per forecast.", ["kind"], registry=r
        )
        self.scored = Counter(
            "chronotick_agent_forecasts_scored_total",
            "Forecast steps met by a later real measurement.",
            ["kind", "horizon_s"],
            registry=r,
        )
        self.mae_us = Gauge(
            "chronotick_agent_forecast_mae_us",
            "Running mean absolute error of the forecasts.",
            ["kind", "horizon_s"],
            registry=r,
        )
        self.coverage = Gauge(
            "chronotick_agent_interval_coverage",
            "Running share of measurements inside the forecast's central interval.",
            ["kind", "horizon_s", "level"],
            registry=r,
        )
        self.offset_us = Gauge("chronotick_agent_offset_us", "Offset served now (local - reference).", registry=r)
        self.error_bound_us = Gauge("chronotick_agent_error_bound_us", "Error bound served now.", registry=r)
        self.error_bound_limit_us = Gauge(
            "chronotick_agent_error_bound_limit_us",
            "The largest error bound this host tolerates (its setting; alerts compare the served bound with it).",
            registry=r,
        )
        self.measurement_age_s = Gauge(
            "chronotick_agent_last_measurement_age_s", "Seconds since the last real measurement.", registry=r
        )

    def watch_estimate(
        self, offset_us: Callable[[], float], bound_us: Callable[[], float], age_s: Callable[[], float]
    ) -> None:
        """The served figures, computed when scraped (NaN before the first measurement)."""
        self.offset_us.set_function(offset_us)
        self.error_bound_us.set_function(bound_us)
        self.measurement_age_s.set_function(age_s)

    def record_scores(self, realized: list[Realized], scores: dict[tuple[str, float], Score]) -> None:
        for result in realized:
            labels = (result.kind, f"{result.horizon_s:g}")
            score = scores[(result.kind, result.horizon_s)]
            self.scored.labels(*labels).inc()
            self.mae_us.labels(*labels).set(score.mae_us)
            self.coverage.labels(*labels, "0.8").set(score.coverage80)
            self.coverage.labels(*labels, "0.95").set(score.coverage95)
