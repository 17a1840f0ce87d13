"""How much can any forecaster gain over the last value one second ahead on these clocks? (issue 17)

Issue 17 asks every model member to be at most the last value's MAE one second ahead on every scion
clock. What that asks depends on the readings: the scion logs read each offset through a GNSS card
whose timestamps have a finite resolution, so every one-second step is a whole number of quanta,
and against such truths the forecast with the least absolute error is a median of the next reading,
itself a grid value. Where "no step" is nearly as likely as all the others together, that median is
the last value unless the recent steps say otherwise. This script measures, per log, after its first
1800 s:

- the resolution (the smallest step that is not 0), the share of steps that are whole quanta, the
  share of one-second steps that are 0, and the lag-1 autocorrelation of the steps;
- pattern forecasters: the mean, and the median, of the next step (in quanta, clipped at +-4) among
  the earlier times the last ``k`` steps (each clipped at +-2 quanta) were the same, learned as the
  log streams (causal: each knows only the past, and answers the last value until its pattern has
  been seen); and the median table fitted on the whole scored log in hindsight (not a forecaster: a
  ceiling for this family of rules). The mean says what the recent steps tell of the next one; the
  median adds what answering on the readings' grid gains against such truths.

Each is printed as its MAE one second ahead over the last value's, on the same samples.

    python benchmarks/one_second_ceiling.py [LOG_OR_FOLDER ...] [--write BENCHMARKS.md]
"""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np
from online_ar import SCORE_AFTER_S, on_grid

from chronotick.clockdata.formats import read_clock_log
from record import log_arguments, provenance, publish

PATTERNS = (2, 3, 5)  # steps of history the pattern forecaster keys on
PATTERN_CLIP = 2  # quanta: a step beyond this keys as this (a rare large step is its own case, not a new pattern)
ANSWER_CLIP = 4  # quanta: the next steps counted per pattern
WHOLE = 0.02  # a step within this share of a quantum of a whole number of quanta counts as whole


def resolution_us(steps_us: np.ndarray) -> float:
    """The smallest step that is not 0 (rounded to a nanosecond): the readings' quantum if they have one."""
    moved = np.abs(steps_us[np.isfinite(steps_us) & (np.abs(steps_us) > 1e-3)])
    return float(np.round(moved.min(), 3)) if moved.size else float("nan")


class PatternSteps:
    """The next steps seen after each pattern of recent steps, counted as the steps arrive."""

    def __init__(self, lags: int) -> None:
        self.lags = lags
        self.counts: dict[tuple[int, ...], np.ndarray] = defaultdict(lambda: np.zeros(2 * ANSWER_CLIP + 1))

    def key(self, recent: np.ndarray) -> tuple[int, ...]:
        return tuple(np.clip(recent, -PATTERN_CLIP, PATTERN_CLIP).astype(int))

    def learn(self, recent: np.ndarray, step: int) -> None:
        self.counts[self.key(recent)][int(np.clip(step, -ANSWER_CLIP, ANSWER_CLIP)) + ANSWER_CLIP] += 1

    def median(self, recent: np.ndarray) -> int:
        """The lower median of the steps seen after ``recent``'s pattern; 0 (the last value) if none was."""
        counts = self.counts.get(self.key(recent))
        if counts is None:
            return 0
        cumulative = np.cumsum(counts)
        return int(np.searchsorted(cumulative, cumulative[-1] / 2.0)) - ANSWER_CLIP

    def mean(self, recent: np.ndarray) -> float:
        """The mean of the steps seen after ``recent``'s pattern; 0 (the last value) if none was."""
        counts = self.counts.get(self.key(recent))
        if counts is None:
            return 0.0
        return float(counts @ np.arange(-ANSWER_CLIP, ANSWER_CLIP + 1) / counts.sum())


def ratios(quanta: np.ndarray, scored_from: int) -> dict[str, float]:
    """MAE one step ahead over the last value's, per pattern forecaster, on the steps from ``scored_from``
    whose history is whole."""
    out: dict[str, float] = {}
    for lags in PATTERNS:
        streamed, whole_log = PatternSteps(lags), PatternSteps(lags)
        usable = [t for t in range(lags, quanta.size) if np.all(np.isfinite(quanta[t - lags : t + 1]))]
        for t in usable:
            if t >= scored_from:
                whole_log.learn(quanta[t - lags : t], int(quanta[t]))
        naive = mean = median = hindsight = 0.0
        for t in usable:
            recent, step = quanta[t - lags : t], quanta[t]
            if t >= scored_from:
                naive += abs(step)
                mean += abs(step - streamed.mean(recent))
                median += abs(step - streamed.median(recent))
                hindsight += abs(step - whole_log.median(recent))
            streamed.learn(recent, int(step))
        out[f"mean {lags}"], out[f"median {lags}"], out[f"hindsight {lags}"] = (
            mean / naive,
            median / naive,
            hindsight / naive,
        )
    return out


def main() -> None:
    logs, markdown = log_arguments(__doc__ or "")
    rows = []
    for log in logs:
        offsets_us, interval_s = on_grid(read_clock_log(log))
        steps_us = np.diff(offsets_us)
        quantum_us = resolution_us(steps_us)
        in_quanta = steps_us / quantum_us
        observed = np.isfinite(in_quanta)
        whole = float(np.mean(np.abs(in_quanta[observed] - np.round(in_quanta[observed])) < WHOLE))
        scored_from = int(SCORE_AFTER_S / interval_s)
        scored = steps_us[scored_from:]
        scored = scored[np.isfinite(scored)]
        zero = float(np.mean(np.abs(scored) < quantum_us / 2))
        lag1 = float(np.corrcoef(scored[:-1], scored[1:])[0, 1])
        by_rule = ratios(np.round(in_quanta), scored_from)
        cells = " | ".join(
            " / ".join(f"{by_rule[f'{rule} {k}']:.3f}" for rule in ("mean", "median", "hindsight")) for k in PATTERNS
        )
        rows.append(
            f"| {log.name} | {quantum_us:.3f} | {whole:.1%} | {zero:.1%} | {lag1:+.2f} | "
            f"{np.mean(np.abs(scored)):.3f} | {cells} |"
        )
        print(rows[-1], flush=True)
    header = " | ".join(f"last {k}: mean / median / hindsight" for k in PATTERNS)
    text = (
        "### What one second ahead can gain over the last value (issue 17)\n\n"
        f"{provenance('one_second_ceiling.py', sys.argv[1:])}\n\n"
        f"After each log's first {SCORE_AFTER_S:g} s. Resolution: the smallest step that is not 0; then the "
        "share of steps that are whole quanta, the share of one-second steps that are 0, the lag-1 "
        "autocorrelation of the steps and the last value's MAE one second ahead (us). Pattern forecasters, "
        "the next step after the same last k steps: its mean and its median learned from the log's past "
        "only, and the median table of the whole scored log (hindsight); each as its MAE one second ahead "
        "over the last value's.\n\n"
        f"| log | resolution (us) | whole quanta | steps of 0 | lag-1 autocorrelation | last value MAE (us) | "
        f"{header} |\n"
        "|---|---:|---:|---:|---:|---:|" + "---|" * len(PATTERNS) + "\n" + "\n".join(rows)
    )
    publish(text, markdown, "one_second_ceiling")


if __name__ == "__main__":
    main()
