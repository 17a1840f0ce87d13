"""The clock's own autoregression (the gateway's online-ar member): learned from a clock's stream, or
from one request's context alone? (issue 16)

Each log is walked as the replay benchmark sends it: an origin every 10 s, a 512-sample context
cleaned as the gateway cleans it, scored after the log's first 1800 s. Variants, each printed as its
MAE in microseconds at 1, 10, 30 and 60 s and as a ratio to the last value's on the same origins:

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
from record import CONTEXT, log_arguments, provenance, publish

from chronotick.baselines import KalmanDrift
from chronotick.cleaning import without_spikes
from chronotick.clockdata.formats import read_clock_log
from chronotick_gateway import online_ar
from chronotick_gateway.clocks import learn_motion
from chronotick_gateway.memory import ANCHOR_HORIZONS_S, ClockState, Samples, anchors_within

HORIZONS = (1, 10, 30, 60)
EVERY = 10
SCORE_AFTER = 1800


def in_context(window_us: np.ndarray) -> np.ndarray:
    regressions = [online_ar.AnchorRegression() for _ in ANCHOR_HORIZONS_S]
    online_ar.learn(regressions, ANCHOR_HORIZONS_S, window_us, 1.0, 0)
    return _forecast(regressions, window_us)


def _forecast(regressions: list[online_ar.AnchorRegression], window_us: np.ndarray) -> np.ndarray:
    ready = online_ar.READY_ROWS
    try:
        online_ar.READY_ROWS = 0.0  # these fits answer with whatever rows they hold
        answer = online_ar.forecast(regressions, ANCHOR_HORIZONS_S, anchors_within(1.0, HORIZONS[-1]), window_us, 1.0,
                                    HORIZONS[-1])
    finally:
        online_ar.READY_ROWS = ready
    assert not isinstance(answer, str), answer
    return answer[0]


def hindsight_fit(offsets_us: np.ndarray) -> list[online_ar.AnchorRegression]:
    regressions = [online_ar.AnchorRegression() for _ in ANCHOR_HORIZONS_S]
    half_life = online_ar.HALF_LIFE_S
    try:
        online_ar.HALF_LIFE_S = np.inf
        online_ar.learn(regressions, ANCHOR_HORIZONS_S, without_spikes(offsets_us)[0], 1.0, 0)
    finally:
        online_ar.HALF_LIFE_S = half_life
    return regressions


def walk(offsets_us: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
    """MAE (us) at HORIZONS per variant over the log's scored origins, and the streamed member's CPU
    ms per request (learning and forecasting)."""
    steps = np.array(HORIZONS)
    state = ClockState(interval_s=1.0)
    errors: dict[str, list[np.ndarray]] = {"last value": [], "kalman": [], "in-context": [], "streamed": [],
                                           "hindsight": []}
    whole_log = hindsight_fit(offsets_us)
    cpu, requests = 0.0, 0
    for end in range(CONTEXT, offsets_us.size - HORIZONS[-1], EVERY):
        window = without_spikes(offsets_us[end - CONTEXT:end])[0]
        started = time.process_time()
        learn_motion(state, Samples.on_grid(float(end - CONTEXT), 1.0, window))
        streamed = online_ar.forecast(state.regressions, ANCHOR_HORIZONS_S, anchors_within(1.0, HORIZONS[-1]),
                                      window, 1.0, HORIZONS[-1])
        cpu += time.process_time() - started
        requests += 1
        truth = offsets_us[end - 1 + steps]
        if end < SCORE_AFTER + CONTEXT or isinstance(streamed, str) or not np.all(np.isfinite(truth)):
            continue
        forecasts = {"last value": np.full(HORIZONS[-1], window[-1]),
                     "kalman": KalmanDrift().forecast(window, HORIZONS[-1]).mean_us,
                     "in-context": in_context(window), "streamed": streamed[0],
                     "hindsight": _forecast(whole_log, window)}
        for name, mean in forecasts.items():
            errors[name].append(np.abs(truth - mean[steps - 1]))
    return {name: np.mean(rows, axis=0) for name, rows in errors.items()}, cpu / requests * 1000.0


def main() -> None:
    logs, markdown = log_arguments(__doc__ or "")
    rows = []
    for log in logs:
        mae, cpu_ms = walk(read_clock_log(log).offset_us)
        for name, values in mae.items():
            ratios = " / ".join(f"{r:.2f}" for r in values / mae["last value"])
            cost = f"{cpu_ms:.2f}" if name == "streamed" else ""
            rows.append(f"| {log.name} | {name} | {' / '.join(f'{v:.3f}' for v in values)} | {ratios} | {cost} |")
        print(*rows[-len(mae):], sep="\n", flush=True)
    text = ("### The clock's own autoregression: learned from the stream or from one request (issue 16)\n\n"
            f"{provenance('online_ar.py', sys.argv[1:])}\n\n"
            f"An origin every {EVERY} s, each context cleaned as the gateway cleans it, scored after each log's "
            f"first {SCORE_AFTER} s. MAE at {' / '.join(f'{h} s' for h in HORIZONS)}, and its ratio to the last "
            "value's on the same origins; CPU ms per request of the streamed member (learning and forecasting).\n\n"
            "| log | forecaster | MAE (us) | over the last value | CPU ms |\n|---|---|---|---|---:|\n" + "\n".join(rows))
    publish(text, markdown, "online_ar")


if __name__ == "__main__":
    main()
