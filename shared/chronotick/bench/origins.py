"""Which forecast origins a fair backtest may use on one gridded series.

Origin ``o`` cuts the grid after ``o`` samples: the context is ``offsets[o - context : o]`` and
step k ahead (k >= 1) is ``offsets[o + k - 1]``, the same convention as the gateway's own
backtests (``chronotick.backtest``). An origin is kept when

- its whole context lies after the start-up transient (the first ``skip_start_s`` of the log:
  the transient neither feeds a forecast nor is scored);
- no detected clock step lies inside its context or its truth window (a step is a discontinuity
  no forecaster is asked to predict; ``ClockStep.index`` is the first sample after the jump,
  so a step at the context's first sample is harmless);
- its context has enough observations to forecast from and its truth window at least one;
- after fine-tuning, it comes after the cut (``first_origin``): its last context sample and all its
  truth lie strictly after the last sample the model was tuned on (the context may reach back into
  the tuning data, as a deployed model's would).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

# A context with fewer observed samples than this is refused (the gateway's backtests need 32).
MIN_CONTEXT_OBSERVATIONS = 32
# A horizon is k steps when it is within this fraction of k cadences.
HORIZON_TOLERANCE = 0.01


@dataclass(frozen=True)
class OriginPlan:
    """The origins kept on one series, and how many candidates each rule removed."""

    origins: np.ndarray  # (O,) int64 grid indices
    skipped: Counter[str] = field(default_factory=Counter)


def horizon_steps(horizons_s: list[float], interval_s: float) -> dict[float, int]:
    """Horizon in seconds -> steps ahead on this grid, for the horizons that fall on it.

    A log's median cadence is rarely exact (mbgsvcd's "1 s" is 1.0003 s), so a horizon within
    1 % of a whole number of cadences is that many steps; one that is not is not evaluable on
    the grid and is left out rather than rounded to a different horizon.
    """
    steps: dict[float, int] = {}
    for horizon_s in horizons_s:
        k = horizon_s / interval_s
        if round(k) >= 1 and abs(k - round(k)) <= HORIZON_TOLERANCE * k:
            steps[horizon_s] = int(round(k))
    return steps


def candidate_origins(
    n: int, *, interval_s: float, context: int, horizon: int, stride_s: float, skip_start_s: float
) -> np.ndarray:
    """Every ``stride_s`` (at least one sample) from the first origin whose context lies after the
    start-up transient to the last whose horizon ends on the grid, before any rule is applied."""
    stride = max(1, int(round(stride_s / interval_s)))
    first = context + int(math.ceil(skip_start_s / interval_s - 1e-9))
    return np.arange(first, n - horizon + 1, stride, dtype=np.int64)


def observed_counts(offsets_us: np.ndarray, origins: np.ndarray, length: int) -> np.ndarray:
    """Observed samples in the ``length`` samples before each origin (its context, for ``length`` = context)."""
    observed = np.concatenate([[0], np.cumsum(np.isfinite(offsets_us))])
    return observed[origins] - observed[origins - length]


def select_origins(
    offsets_us: np.ndarray,
    step_indices: list[int],
    *,
    interval_s: float,
    context: int,
    horizon: int,
    stride_s: float,
    skip_start_s: float,
    first_origin: int = 0,
) -> OriginPlan:
    """Origins every ``stride_s`` (at least one sample), none before ``first_origin``, that satisfy the rules above."""
    candidates = candidate_origins(
        int(offsets_us.size),
        interval_s=interval_s,
        context=context,
        horizon=horizon,
        stride_s=stride_s,
        skip_start_s=skip_start_s,
    )
    skipped: Counter[str] = Counter()
    tuned = candidates < first_origin
    skipped["at or before the fine-tuning cut"] = int(tuned.sum())
    candidates = candidates[~tuned]
    if candidates.size == 0:
        return OriginPlan(candidates, +skipped)
    steps = np.sort(np.asarray(step_indices, dtype=np.int64))
    # A step s crosses origin o when o - context < s < o + horizon.
    low = np.searchsorted(steps, candidates - context, side="right")
    high = np.searchsorted(steps, candidates + horizon, side="left")
    crosses = high > low
    context_observed = observed_counts(offsets_us, candidates, context)
    truth_observed = observed_counts(offsets_us, candidates + horizon, horizon)
    thin = ~crosses & (context_observed < MIN_CONTEXT_OBSERVATIONS)
    no_truth = ~crosses & ~thin & (truth_observed == 0)
    skipped["crosses a clock step"] = int(crosses.sum())
    skipped["too few observations in context"] = int(thin.sum())
    skipped["no observed truth"] = int(no_truth.sum())
    keep = ~(crosses | thin | no_truth)
    return OriginPlan(candidates[keep], +skipped)
