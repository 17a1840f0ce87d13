"""``chronotick predict``: a clock log becomes one gateway request, and the answer a table.

The request holds the log's last continuous stretch (after its last clock step or gap): a
forecaster given history across a step would extrapolate the jump itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.table import Table

from chronotick.client import INTERVAL_QUANTILE_LEVELS
from chronotick.clockdata import OffsetSeries
from chronotick.contract import MAX_HORIZON_STEPS, FusedPredictRequest, FusedPredictResponse, SeriesInput

# The gateway refuses fewer observed samples than this (its MIN_OBSERVED_SAMPLES).
MIN_OBSERVED_SAMPLES = 8


class NotForecastable(ValueError):
    """The log holds nothing the gateway could forecast from; the message says why."""


@dataclass(frozen=True)
class PreparedLog:
    request: FusedPredictRequest
    used_samples: int
    interval_s: float
    last_time_s: float
    last_offset_us: float


def prepare_request(series: OffsetSeries, *, horizon_s: float, context: int, deadline_s: float,
                    backends: list[str] | None = None) -> PreparedLog:
    """The gateway request forecasting ``horizon_s`` ahead of the log's last sample."""
    stretches = list(series.segments(min_length=MIN_OBSERVED_SAMPLES))
    if not stretches:
        raise NotForecastable(f"{series.source}: no stretch of {MIN_OBSERVED_SAMPLES} samples between steps and gaps "
                              f"({len(series)} samples, {len(series.steps)} steps, {len(series.gaps)} gaps)")
    stretch = stretches[-1].on_grid()
    offsets_us = stretch.offset_us[-context:]
    observed = int(np.count_nonzero(~np.isnan(offsets_us)))
    if observed < MIN_OBSERVED_SAMPLES:
        raise NotForecastable(f"{series.source}: the last stretch has {observed} observed samples; "
                              f"at least {MIN_OBSERVED_SAMPLES} are needed")
    horizon = math.ceil(horizon_s / stretch.interval_s - 1e-9)
    if not 1 <= horizon <= MAX_HORIZON_STEPS:
        raise NotForecastable(f"--horizon-s {horizon_s:g} is {horizon} steps of the log's {stretch.interval_s:g} s "
                              f"cadence; between 1 and {MAX_HORIZON_STEPS} are possible")
    request = FusedPredictRequest(
        series=[SeriesInput(id=series.source, interval_s=stretch.interval_s,
                            offsets_us=[None if math.isnan(v) else float(v) for v in offsets_us])],
        horizon=horizon, quantile_levels=INTERVAL_QUANTILE_LEVELS, deadline_s=deadline_s, backends=backends,
    )
    last = int(np.flatnonzero(~np.isnan(stretch.offset_us))[-1])
    return PreparedLog(request, offsets_us.size, stretch.interval_s, float(stretch.time_s[-1]),
                       float(stretch.offset_us[last]))


def forecast_table(answer: FusedPredictResponse) -> Table:
    """One row per step: time ahead, fused mean, calibrated std, 80 % and 95 % intervals."""
    forecast = answer.forecasts[0]
    level = {round(q, 6): row for q, row in zip(answer.quantile_levels, forecast.quantiles_us, strict=True)}
    table = Table(title=f"Fused forecast of {forecast.id or 'the clock'} (offset_us: local - reference, + = fast)")
    for header in ("ahead_s", "mean_us", "std_us", "80% low", "80% high", "95% low", "95% high"):
        table.add_column(header, justify="right")
    for step, (mean_us, std_us) in enumerate(zip(forecast.mean_us, forecast.std_us, strict=True)):
        bounds = [level[q][step] if q in level else math.nan for q in (0.1, 0.9, 0.025, 0.975)]
        table.add_row(f"{(step + 1) * forecast.interval_s:g}", f"{mean_us:.3f}", f"{std_us:.3f}",
                      *(f"{b:.3f}" for b in bounds))
    return table


def members_table(answer: FusedPredictResponse) -> Table:
    """Each fusion member: its status, weight at the first step, latency and retries."""
    table = Table(title="Members" + (" (degraded)" if answer.degraded else ""))
    for header in ("member", "service", "status", "weight@1", "latency_ms", "retries", "reason"):
        table.add_column(header)
    for member in answer.backends:
        weight = f"{member.weights[0][0]:.3f}" if member.weights else "-"
        latency = f"{member.latency_ms:.1f}" if member.latency_ms is not None else "-"
        table.add_row(member.name, member.service or "(classical)", member.status, weight, latency,
                      str(member.retries), member.reason or "")
    return table
