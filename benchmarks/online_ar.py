"""The clock's own autoregression (the gateway's online-ar member): learned from a clock's stream, or
from one request's context alone? (issue 16)

Each log is put on its cadence's grid and walked as the replay benchmark sends it: an origin every
10 s (or every sample, for slower logs), a 512-sample context cleaned as the gateway cleans it,
scored after the log's first 1800 s. Variants, each printed as its MAE in microseconds at 1, 10, 30
and 60 s (for a slower log: one step, and the steps nearest 10, 30 and 60 s within a minute) and
as a ratio to the last value's on the same origins:

- streamed: what the gateway does, ``learn_motion`` on each request's window (the clock's memory
  learns each new sample once) and ``online_ar.forecast``;
- in-context: the same regression fitted on the request's own window only (about 200-250 rows
  per horizon), as a stateless gateway could;
- kalman: the classical member, on the same windows, for scale;
- hindsight: the same regression fitted once on the whole log, its future included, without
  forgetting: not a forecaster, but how far any predictor of this linear family could go.

    python benchmarks/online_ar.py [LOG_OR_FOLDER ...] [--write BENCHMARKS.md]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from chronotick.baselines import KalmanDrift
from chronotick.cleaning import without_spikes
from chronotick.clockdata import OffsetSeries
from chronotick.clockdata.formats import read_clock_log
from chronotick_gateway import online_ar
from chronotick_gateway.clocks import learn_motion
from chronotick_gateway.memory import ANCHOR_HORIZONS_S, ANCHOR_TOLERANCE, ClockState, Samples, anchors_within
from record import CONTEXT, log_arguments, provenance, publish

EVERY_S = 10.0
SCORE_AFTER_S = 1800.0
LONGEST_S = ANCHOR_HORIZONS_S[-1]  # online-ar is not asked beyond its longest horizon


def horizon_steps(interval_s: float) -> np.ndarray:
    """The steps scored: those nearest 1, 10, 30 and 60 s, at least one, within the longest horizon."""
    longest = int(LONGEST_S / interval_s + ANCHOR_TOLERANCE)
    wanted = [max(1, min(longest, round(h / interval_s))) for h in (1.0, 10.0, 30.0, LONGEST_S)]
    return np.array(sorted(set(wanted)))


def on_grid(series: OffsetSeries) -> tuple[np.ndarray, float]:
    """The log's offsets on its cadence's grid (NaN where no sample), and the cadence."""
    interval_s = float(series.interval_s)
    slots = np.round((series.time_s - series.time_s[0]) / interval_s).astype(int)
    offsets_us = np.full(slots[-1] + 1, np.nan)
    offsets_us[slots] = series.offset_us
    return offsets_us, interval_s


class Regressions:
    """online-ar's regressions fitted one way, forecasting any window (readiness waived: these fits
    answer with whatever rows they hold)."""

    def __init__(self, interval_s: float, horizon: int) -> None:
        self.anchors = [online_ar.AnchorRegression() for _ in ANCHOR_HORIZONS_S]
        self.interval_s, self.horizon = interval_s, horizon

    def learn(self, offsets_us: np.ndarray) -> Regressions:
        online_ar.learn(self.anchors, ANCHOR_HORIZONS_S, offsets_us, self.interval_s, 0)
        return self

    def forecast(self, window_us: np.ndarray) -> np.ndarray | None:
        ready = online_ar.READY_ROWS
        try:
            online_ar.READY_ROWS = 0.0
            answer = online_ar.forecast(
                self.anchors,
                ANCHOR_HORIZONS_S,
                anchors_within(self.interval_s, self.horizon),
                window_us,
                self.interval_s,
                self.horizon,
            )
        finally:
            online_ar.READY_ROWS = ready
        return None if isinstance(answer, str) else answer[0]


def hindsight_fit(offsets_us: np.ndarray, interval_s: float, horizon: int) -> Regressions:
    half_life = online_ar.HALF_LIFE_S
    try:
        online_ar.HALF_LIFE_S = np.inf
        return Regressions(interval_s, horizon).learn(without_spikes(offsets_us)[0])
    finally:
        online_ar.HALF_LIFE_S = half_life


def walk(offsets_us: np.ndarray, interval_s: float) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """The steps scored, the MAE (us) there per variant over the log's scored origins (those where
    every variant answered), and the streamed member's CPU ms per request (learning and forecasting)."""
    steps = horizon_steps(interval_s)
    horizon = int(steps[-1])
    state = ClockState(interval_s=interval_s)
    errors: dict[str, list[np.ndarray]] = {
        "last value": [],
        "kalman": [],
        "in-context": [],
        "streamed": [],
        "hindsight": [],
    }
    whole_log = hindsight_fit(offsets_us, interval_s, horizon)
    cpu, requests = 0.0, 0
    every = max(1, round(EVERY_S / interval_s))
    for end in range(CONTEXT, offsets_us.size - horizon, every):
        window = without_spikes(offsets_us[end - CONTEXT : end])[0]
        started = time.process_time()
        learn_motion(state, Samples.on_grid(interval_s * (end - CONTEXT), interval_s, window))
        streamed = online_ar.forecast(
            state.regressions, ANCHOR_HORIZONS_S, anchors_within(interval_s, horizon), window, interval_s, horizon
        )
        cpu += time.process_time() - started
        requests += 1
        truth = offsets_us[end - 1 + steps]
        if (
            end * interval_s < SCORE_AFTER_S + CONTEXT * interval_s
            or isinstance(streamed, str)
            or not np.all(np.isfinite(truth))
            or not np.isfinite(window[-1])
        ):
            continue
        forecasts = {
            "last value": np.full(horizon, window[-1]),
            "kalman": KalmanDrift().forecast(window, horizon, interval_s=interval_s).mean_us,
            "in-context": Regressions(interval_s, horizon).learn(window).forecast(window),
            "streamed": streamed[0],
            "hindsight": whole_log.forecast(window),
        }
        if any(mean is None for mean in forecasts.values()):
            continue
        for name, mean in forecasts.items():
            errors[name].append(np.abs(truth - mean[steps - 1]))
    return steps, {name: np.mean(rows, axis=0) for name, rows in errors.items()}, cpu / requests * 1000.0


def main() -> None:
    logs, markdown = log_arguments(__doc__ or "")
    rows = []
    for log in logs:
        offsets_us, interval_s = on_grid(read_clock_log(log))
        steps, mae, cpu_ms = walk(offsets_us, interval_s)
        at = " / ".join(f"{s * interval_s:.0f}" for s in steps)
        for name, values in mae.items():
            ratios = " / ".join(f"{r:.2f}" for r in values / mae["last value"])
            cost = f"{cpu_ms:.2f}" if name == "streamed" else ""
            maes = " / ".join(f"{v:.3f}" for v in values)
            rows.append(f"| {log.name} | {at} | {name} | {maes} | {ratios} | {cost} |")
        print(*rows[-len(mae) :], sep="\n", flush=True)
    text = (
        "### The clock's own autoregression: learned from the stream or from one request (issue 16)\n\n"
        f"{provenance('online_ar.py', sys.argv[1:])}\n\n"
        f"An origin every {EVERY_S:g} s (every sample of a slower log), each context cleaned as the gateway "
        f"cleans it, scored after each log's first {SCORE_AFTER_S:g} s, where every variant answered. MAE at "
        "the horizons listed, and its ratio to the last value's on the same origins; CPU ms per request of "
        "the streamed member (learning and forecasting).\n\n"
        "| log | horizons (s) | forecaster | MAE (us) | over the last value | CPU ms |\n"
        "|---|---|---|---|---|---:|\n" + "\n".join(rows)
    )
    publish(text, markdown, "online_ar")


if __name__ == "__main__":
    main()
