"""Should a warm clock's Kalman member carry its state from one request to the next? (issue 16)

An agent asks about the same clock every few seconds, each time with a context moved on by a few
samples. KalmanDrift measures the clock's noise on each context and filters all of it (512
samples), about 1 ms of the gateway's CPU per warm request. Two ways to do less were measured here
on the real clock logs, an origin every 10 s after each log's first 1200 s, as the replay sends them:

- noise carried N: the noise levels measured on the context every N samples and reused in between;
  the filter still passes over each request's own context;
- filter carried N: the filter resumed on the new samples only (its noise and tuning from the
  context where it last started), rerun over the request's context every N samples.

Each is printed as its MAE over the per-request pass's (today's) at 1, 10, 30 and 60 s, with the
CPU time per origin of each.

    python benchmarks/classical_carry.py [LOG_OR_FOLDER ...] [--write BENCHMARKS.md]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from chronotick.baselines import ClassicalForecast, KalmanDrift, KalmanPass, _kalman_tuning, measured_noise
from chronotick.clockdata.formats import read_clock_log
from record import CONTEXT, log_arguments, provenance, publish

HORIZONS = (1, 10, 30, 60)
EVERY = 10  # samples between a clock's origins (an agent asking every 10 s at 1 Hz)
SKIP = 1200  # the logs' start-up transient, as the accuracy benchmark skips it
CARRIED_FOR = (20, 64)

Forecaster = Callable[[np.ndarray, int], ClassicalForecast]  # (the whole log, end of the context)


def per_request(offsets_us: np.ndarray, end: int) -> ClassicalForecast:
    return KalmanDrift().forecast(offsets_us[end - CONTEXT : end], HORIZONS[-1])


def noise_carried(every: int) -> Forecaster:
    measured: dict[str, object] = {"at": -every}

    def forecast(offsets_us: np.ndarray, end: int) -> ClassicalForecast:
        context = offsets_us[end - CONTEXT : end]
        if end - measured["at"] >= every:  # type: ignore[operator]
            measured.update(at=end, noise=measured_noise(context, 1.0))
        return _pass_over(context, _kalman_tuning(context, measured["noise"])).forecast(HORIZONS[-1])  # type: ignore[arg-type]

    return forecast


def filter_carried(every: int) -> Forecaster:
    carried: dict[str, object] = {"at": -every}

    def forecast(offsets_us: np.ndarray, end: int) -> ClassicalForecast:
        context = offsets_us[end - CONTEXT : end]
        kalman = carried.get("kalman")
        if end - carried["at"] >= every or kalman is None:  # type: ignore[operator]
            kalman = _pass_over(context, _kalman_tuning(context, measured_noise(context, 1.0)))
            carried.update(at=end)
        else:
            assert isinstance(kalman, KalmanPass)
            kalman.advance(offsets_us[carried["taken"] : end])  # type: ignore[misc]
        carried.update(kalman=kalman, taken=end)
        return kalman.forecast(HORIZONS[-1])

    return forecast


def _pass_over(context_us: np.ndarray, tuning: object) -> KalmanPass:
    first = int(np.flatnonzero(~np.isnan(context_us))[0])
    kalman = KalmanPass.start(float(context_us[first]), tuning, 1.0)  # type: ignore[arg-type]
    kalman.advance(context_us[first + 1 :])
    return kalman


def mae_and_cpu(offsets_us: np.ndarray, forecaster: Forecaster) -> tuple[np.ndarray, float]:
    """MAE (us) at each of HORIZONS over the log's origins, and CPU ms per origin."""
    steps = np.array(HORIZONS)
    errors: list[list[float]] = [[] for _ in HORIZONS]
    cpu = 0.0
    ends = range(SKIP + CONTEXT, offsets_us.size - HORIZONS[-1], EVERY)
    for end in ends:
        started = time.process_time()
        mean_us = forecaster(offsets_us, end).mean_us
        cpu += time.process_time() - started
        truth = offsets_us[end - 1 + steps]
        for row, (value, error) in enumerate(zip(truth, np.abs(truth - mean_us[steps - 1]), strict=True)):
            if np.isfinite(value):
                errors[row].append(float(error))
    return np.array([np.mean(e) for e in errors]), cpu / len(ends) * 1000.0


def main() -> None:
    logs, markdown = log_arguments(__doc__ or "")
    # Each log starts every variant afresh (they carry state along one log).
    variants: dict[str, Callable[[], Forecaster]] = {}
    for every in CARRIED_FOR:
        variants[f"noise carried {every}"] = lambda every=every: noise_carried(every)
        variants[f"filter carried {every}"] = lambda every=every: filter_carried(every)
    rows = []
    for log in logs:
        offsets_us = read_clock_log(log).offset_us
        base, base_cpu = mae_and_cpu(offsets_us, per_request)
        rows.append(
            f"| {log.name} | per request (today) | {' / '.join(f'{m:.3f} us' for m in base)} | {base_cpu:.2f} |"
        )
        for name, variant in variants.items():
            mae, cpu = mae_and_cpu(offsets_us, variant())
            rows.append(f"| {log.name} | {name} | {' / '.join(f'{r:.3f}' for r in mae / base)} | {cpu:.2f} |")
        print(*rows[-1 - len(variants) :], sep="\n", flush=True)
    text = (
        f"### Carrying the Kalman member's state between a clock's requests (issue 16)\n\n"
        f"{provenance('classical_carry.py', sys.argv[1:])}\n\n"
        f"An origin every {EVERY} s after each log's first {SKIP} s. MAE at {' / '.join(f'{h} s' for h in HORIZONS)}: "
        "today's in microseconds, the others as a ratio to it; CPU ms per origin of the Kalman member.\n\n"
        "| log | Kalman member | MAE | CPU ms |\n|---|---|---|---:|\n" + "\n".join(rows)
    )
    publish(text, markdown, "classical_carry")


if __name__ == "__main__":
    main()
