"""The agent's loops: measure at the configured cadence, ask the gateway for the short and the long
forecast on their own cadences, score old forecasts against each new measurement.

Nothing here may stop the agent: a failing source or gateway is logged once when it starts
failing (and when it is back), retried with exponential backoff, and the agent goes on serving
from what it has, with a bound that widens with the age of the last real measurement.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from chronotick.agent.metrics import AgentMetrics
from chronotick.agent.scoring import Scoreboard
from chronotick.agent.settings import AgentSettings
from chronotick.agent.sources import ChronySource, Measurement, NtpSource, RejectedReply, SourceFailure
from chronotick.agent.state import Estimate, Forecast, ForecastKind, Slot, Window, estimate
from chronotick.agent.system import SystemMetrics
from chronotick.client import AsyncClient, ClientError

logger = logging.getLogger("chronotick.agent")
# Forecasts kept for scoring and serving: enough for every short and long one still in its horizon.
MAX_FORECASTS = 256


class Source(Protocol):
    name: str

    async def measure(self) -> Measurement: ...


def build_source(settings: AgentSettings) -> Source:
    if settings.source == "ntp":
        return NtpSource(
            settings.ntp_server,
            settings.ntp_port,
            version=settings.ntp_version,
            timeout_s=settings.source_timeout_s,
            max_delay_s=settings.max_ntp_delay_s,
        )
    return ChronySource(settings.chronyc, timeout_s=settings.source_timeout_s)


class Backoff:
    """Exponential waits while something fails: ``base_s`` doubling up to ``max_s``."""

    def __init__(self, base_s: float, max_s: float) -> None:
        self.base_s, self.max_s = base_s, max_s
        self.failures = 0

    def failed(self) -> tuple[float, bool]:
        """The wait before the next attempt, and whether it grew (worth a log line: the first
        failure and each doubling up to the cap are logged, not every attempt after)."""
        self.failures += 1
        wait_s = min(self.max_s, self.base_s * 2.0 ** (self.failures - 1))
        grew = self.failures == 1 or wait_s > min(self.max_s, self.base_s * 2.0 ** (self.failures - 2))
        return wait_s, grew

    def succeeded(self) -> int:
        """The failures that came before this success (0 if none)."""
        failures, self.failures = self.failures, 0
        return failures


async def _every(period_s: float, body: Callable[[], Awaitable[float]], first_delay_s: float = 0.0) -> None:
    """Run ``body`` on a fixed cadence; it returns how long to wait beyond the cadence (backoff).
    Ticks missed while the body ran late are skipped, not run in a burst."""
    loop = asyncio.get_running_loop()
    next_s = loop.time() + first_delay_s
    while True:
        await asyncio.sleep(max(0.0, next_s - loop.time()))
        extra_s = await body()
        next_s += period_s + extra_s
        if next_s < loop.time():
            next_s += math.ceil((loop.time() - next_s) / period_s) * period_s


class Agent:
    def __init__(self, settings: AgentSettings, source: Source, client: AsyncClient, metrics: AgentMetrics) -> None:
        self.settings = settings
        self.source = source
        self.client = client
        self.metrics = metrics
        self.window = Window(settings.window_samples, settings.measure_interval_s)
        self.forecasts: deque[Forecast] = deque(maxlen=MAX_FORECASTS)
        self.scoreboard = Scoreboard(settings.score_horizons_s)
        self.last_measurement: Measurement | None = None
        self.system = SystemMetrics() if settings.covariates else None
        self._source_backoff = Backoff(settings.measure_interval_s, settings.source_backoff_max_s)
        self._source_retry_at_s = 0.0
        self.last_request_s: dict[ForecastKind, float | None] = {"short": None, "long": None}
        metrics.watch_estimate(
            lambda: self._now_or_nan("offset_us"),
            lambda: self._now_or_nan("error_bound_us"),
            lambda: self._now_or_nan("last_measurement_age_s"),
        )

    # --- serving ------------------------------------------------------------------------------

    def current(self, now_s: float | None = None) -> Estimate | None:
        if self.last_measurement is None:
            return None
        now_s = time.time() if now_s is None else now_s
        return estimate(now_s, self.last_measurement, list(self.forecasts), self.settings.max_drift_ppm)

    def _now_or_nan(self, field: str) -> float:
        current = self.current()
        return math.nan if current is None else float(getattr(current, field))

    # --- measuring ------------------------------------------------------------------------------

    async def _try_measure(self) -> Measurement | None:
        try:
            measurement = await self.source.measure()
        except RejectedReply as error:
            self.metrics.rejected.labels(error.reason).inc()
            self._source_failed(f"reply rejected: {error}")
            return None
        except SourceFailure as error:
            self.metrics.source_failures.labels(error.reason).inc()
            self._source_failed(str(error))
            return None
        except Exception as error:  # noqa: BLE001 - the agent must keep serving whatever a source does
            logger.exception("unexpected error from %s", self.source.name)
            self.metrics.source_failures.labels("error").inc()
            self._source_failed(repr(error))
            return None
        failures = self._source_backoff.succeeded()
        if failures:
            logger.info("source %s is back after %d failed attempts", self.source.name, failures)
        return measurement

    def _source_failed(self, reason: str) -> None:
        wait_s, grew = self._source_backoff.failed()
        self._source_retry_at_s = time.monotonic() + wait_s
        if grew:
            logger.warning(
                "measurement from %s failed (%s); next attempt in %.1f s; serving the last measurement "
                "with a widening bound",
                self.source.name,
                reason,
                wait_s,
            )

    async def measure_once(self) -> None:
        tick_s = time.time()
        covariates = self.system.sample() if self.system else {}
        measurement = await self._try_measure() if time.monotonic() >= self._source_retry_at_s else None
        if measurement is None:
            self.window.append(Slot(tick_s, None, covariates))
            return
        # The slot carries the measurement's own time, so that a forecast made from this window
        # starts exactly at the measurement it was made from.
        self.window.append(Slot(measurement.time_s, measurement.offset_us, covariates))
        self.metrics.measurements.inc()
        realized = self.scoreboard.record(measurement, self.forecasts)
        self.metrics.record_scores(realized, self.scoreboard.scores)
        self.last_measurement = measurement
        # Forecasts that end before this measurement can neither be scored again nor serve now.
        self.forecasts = deque((f for f in self.forecasts if f.end_s >= measurement.time_s), maxlen=MAX_FORECASTS)

    # --- forecasting ------------------------------------------------------------------------------

    async def forecast_once(self, kind: ForecastKind, backoff: Backoff) -> float:
        """Ask for one forecast; the extra wait before the next one (0 unless the gateway fails)."""
        horizon_s = self.settings.short_horizon_s if kind == "short" else self.settings.long_horizon_s
        prepared = self.window.request(
            self.settings.horizon_steps(horizon_s),
            self.settings.deadline_s,
            self.settings.covariates,
            self.settings.clock_id,
        )
        if prepared is None:
            self.metrics.forecast_requests.labels(kind, "too_few_measurements").inc()
            return 0.0
        request, origin_s = prepared
        self.last_request_s[kind] = time.time()
        started = time.perf_counter()
        try:
            answer = await self.client.predict(request)
        except (ClientError, ValueError) as error:  # ValueError: an answer that is not the contract
            self.metrics.forecast_requests.labels(kind, "failed").inc()
            wait_s, grew = backoff.failed()
            if grew:
                logger.warning(
                    "%s forecast from gateway %s failed (%s); next attempt in %.1f s; serving without "
                    "it, the bound widening",
                    kind,
                    self.client.base_url,
                    error,
                    wait_s,
                )
            return wait_s
        self.metrics.forecast_seconds.labels(kind).observe(time.perf_counter() - started)
        self.metrics.forecast_requests.labels(kind, "degraded" if answer.degraded else "ok").inc()
        failures = backoff.succeeded()
        if failures:
            logger.info(
                "gateway %s answers again (%s forecast) after %d failures", self.client.base_url, kind, failures
            )
        self.forecasts.append(Forecast.from_answer(kind, origin_s, time.time(), answer))
        return 0.0

    # --- the loops --------------------------------------------------------------------------------

    async def _guarded(self, what: str, body: Callable[[], Awaitable[float | None]]) -> float:
        try:
            return float(await body() or 0.0)
        except Exception:  # noqa: BLE001 - one bad tick must not end the loop that serves time
            logger.exception("unexpected error in the %s loop; it goes on", what)
            return 0.0

    async def run(self) -> None:
        s = self.settings
        backoffs = {
            kind: Backoff(every_s, s.fleet_backoff_max_s)
            for kind, every_s in (("short", s.short_every_s), ("long", s.long_every_s))
        }
        # Forecasts tick half a measurement after the measurements, so each is made from the newest
        # one and its first step falls on the next measurement (which scores it).
        phase_s = s.measure_interval_s / 2.0
        await asyncio.gather(
            _every(s.measure_interval_s, lambda: self._guarded("measurement", self.measure_once)),
            _every(
                s.short_every_s,
                lambda: self._guarded("short forecast", lambda: self.forecast_once("short", backoffs["short"])),
                phase_s,
            ),
            _every(
                s.long_every_s,
                lambda: self._guarded("long forecast", lambda: self.forecast_once("long", backoffs["long"])),
                phase_s,
            ),
        )
