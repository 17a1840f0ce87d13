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
from chronotick.contract import (
    MAX_HORIZON_STEPS,
    MIN_OBSERVED_SAMPLES,
    FusedPredictRequest,
    FusedPredictResponse,
    SeriesInput,
)
from chronotick.textplot import DEFAULT_WIDTH, Line, line_chart

# The plot shows this many forecast horizons of history (at least PLOT_MIN_HISTORY samples):
# enough to see the trend the forecast continues, not so much that the forecast is a sliver.
PLOT_HISTORY_HORIZONS = 3
PLOT_MIN_HISTORY = 60


class NotForecastable(ValueError):
    """The log holds nothing the gateway could forecast from; the message says why."""


@dataclass(frozen=True)
class PreparedLog:
    request: FusedPredictRequest
    used_samples: int
    interval_s: float
    last_time_s: float
    last_offset_us: float


def prepare_request(
    series: OffsetSeries,
    *,
    horizon_s: float,
    context: int,
    deadline_s: float,
    backends: list[str] | None = None,
    clean: bool = True,
    clock_id: str | None = None,
) -> PreparedLog:
    """The gateway request forecasting ``horizon_s`` ahead of the log's last sample.

    With ``clock_id`` the series names its clock, and ``start_s`` is the time of its first sample as the
    log wrote it, so that the gateway lines it up with that clock's earlier forecasts.
    """
    stretches = list(series.segments(min_length=MIN_OBSERVED_SAMPLES))
    if not stretches:
        raise NotForecastable(
            f"{series.source}: no stretch of {MIN_OBSERVED_SAMPLES} samples between steps and gaps "
            f"({len(series)} samples, {len(series.steps)} steps, {len(series.gaps)} gaps)"
        )
    stretch = stretches[-1].on_grid()
    offsets_us = stretch.offset_us[-context:]
    observed = int(np.count_nonzero(~np.isnan(offsets_us)))
    if observed < MIN_OBSERVED_SAMPLES:
        raise NotForecastable(
            f"{series.source}: the last stretch has {observed} observed samples; "
            f"at least {MIN_OBSERVED_SAMPLES} are needed"
        )
    horizon = math.ceil(horizon_s / stretch.interval_s - 1e-9)
    if not 1 <= horizon <= MAX_HORIZON_STEPS:
        raise NotForecastable(
            f"--horizon-s {horizon_s:g} is {horizon} steps of the log's {stretch.interval_s:g} s "
            f"cadence; between 1 and {MAX_HORIZON_STEPS} are possible"
        )
    start_s = float(stretch.time_s[-offsets_us.size]) if clock_id is not None else None
    request = FusedPredictRequest(
        series=[
            SeriesInput(
                id=series.source,
                interval_s=stretch.interval_s,
                clock_id=clock_id,
                start_s=start_s,
                offsets_us=[None if math.isnan(v) else float(v) for v in offsets_us],
            )
        ],
        horizon=horizon,
        quantile_levels=INTERVAL_QUANTILE_LEVELS,
        deadline_s=deadline_s,
        backends=backends,
        clean=clean,
    )
    last = int(np.flatnonzero(~np.isnan(stretch.offset_us))[-1])
    return PreparedLog(
        request, offsets_us.size, stretch.interval_s, float(stretch.time_s[-1]), float(stretch.offset_us[last])
    )


def forecast_table(answer: FusedPredictResponse) -> Table:
    """One row per step: time ahead, fused mean, calibrated std, 80 % and 95 % intervals."""
    forecast = answer.forecasts[0]
    level = {round(q, 6): row for q, row in zip(answer.quantile_levels, forecast.quantiles_us, strict=True)}
    table = Table(title=f"Fused forecast of {forecast.id or 'the clock'} (offset_us: local - reference, + = fast)")
    for header in ("ahead_s", "mean_us", "std_us", "80% low", "80% high", "95% low", "95% high"):
        table.add_column(header, justify="right")
    for step, (mean_us, std_us) in enumerate(zip(forecast.mean_us, forecast.std_us, strict=True)):
        bounds = [level[q][step] if q in level else math.nan for q in (0.1, 0.9, 0.025, 0.975)]
        table.add_row(
            f"{(step + 1) * forecast.interval_s:g}", f"{mean_us:.3f}", f"{std_us:.3f}", *(f"{b:.3f}" for b in bounds)
        )
    return table


def members_table(answer: FusedPredictResponse) -> Table:
    """Each fusion member: its status, weight at the first step, latency and retries."""
    table = Table(title="Members" + (" (degraded)" if answer.degraded else ""))
    for header in ("member", "service", "status", "weight@1", "latency_ms", "retries", "reason"):
        table.add_column(header)
    for member in answer.backends:
        weight = f"{member.weights[0][0]:.3f}" if member.weights else "-"
        latency = f"{member.latency_ms:.1f}" if member.latency_ms is not None else "-"
        table.add_row(
            member.name,
            member.service or "(classical)",
            member.status,
            weight,
            latency,
            str(member.retries),
            member.reason or "",
        )
    return table


def forecast_plot(
    prepared: PreparedLog, answer: FusedPredictResponse, *, width: int = DEFAULT_WIDTH, color: bool = False
) -> str:
    """The recent history, the fused mean and its 80 % and 95 % bands as a text chart, in seconds
    from the last sample (history <= 0 < forecast); spikes the gateway's cleaning set aside are
    marked where they were."""
    forecast = answer.forecasts[0]
    history = prepared.request.series[0].offsets_us
    shown = min(len(history), max(PLOT_MIN_HISTORY, PLOT_HISTORY_HORIZONS * len(forecast.mean_us)))
    start = len(history) - shown
    past_s = [(k - len(history) + 1) * forecast.interval_s for k in range(start, len(history))]
    flagged = set(answer.flagged_outliers[0]) if answer.flagged_outliers else set()
    past_us = [math.nan if v is None or k in flagged else v for k, v in enumerate(history[start:], start)]
    ahead_s = [(step + 1) * forecast.interval_s for step in range(len(forecast.mean_us))]
    level = {round(q, 6): row for q, row in zip(answer.quantile_levels, forecast.quantiles_us, strict=True)}
    lines = []  # drawn in order: the bands first, so the mean is drawn over them
    for low, high, label, marker in ((0.025, 0.975, "95 % band", "·"), (0.1, 0.9, "80 % band", "-")):
        if low in level and high in level:
            lines += [Line(label, ahead_s, level[low], marker), Line(None, ahead_s, level[high], marker)]
    lines += [Line("history", past_s, past_us, "•"), Line("forecast mean", ahead_s, forecast.mean_us, "●")]
    spikes = sorted(k for k in flagged if k >= start)
    if spikes:
        lines.append(
            Line(
                "flagged spike", [past_s[k - start] for k in spikes], [history[k] for k in spikes], "x", connected=False
            )
        )
    return line_chart(
        lines,
        title=f"{forecast.id or 'clock'}: offset_us (local - reference, + = fast)",
        x_label="seconds from the last sample",
        y_label="offset_us",
        width=width,
        color=color,
    )
