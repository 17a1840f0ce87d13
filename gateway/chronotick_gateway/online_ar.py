"""A member the gateway learns for each clock: the change ahead regressed on the changes behind.

At each remembered horizon h, the clock's rate of change over the next h seconds is regressed on
its rates of change over the past 1, 2, 4, ... 256 samples and a constant (its steady drift): an
autoregression on the clock's increments, one coefficient per octave of lag, fitted by least
squares with exponential forgetting. It is what the clock memory can learn and no request can:
fitted inside one 512-sample context, this regression is 1.25-1.56x the last value's error at 10 s
and 2.9-4.0x at 60 s on the scion clocks; fed by every sample a clock's requests bring, it is
0.78-0.98x at 1 s, 0.68-0.85x at 10 s and 0.74-0.97x at 60 s there, and 0.78-0.87x at every
horizon on the chrony, ntpd and TACC logs (BENCHMARKS.md, "The clock's own autoregression",
``benchmarks/online_ar.py``), for about 0.6 ms of the gateway's CPU per request. Its weight in
the fusion is earned like any member's: from its scored forecasts.

Robust by construction, because a clock's log is not a stationary process:
- Each row (features and target) is in units of the clock's mean absolute step over the
  ``SCALE_WINDOW`` samples before its origin (its largest tenth left out): its motion is of order
  one in a quiet hour and in a noisy one, so one regression serves both.
- A row with a feature or target beyond ``CLIP`` units per step (a slew, a clock step within its
  lags) is not one to learn from and is left out; nor does it forecast from such a row (it is
  skipped, with the reason, until the step has left its longest lag).
- Once a horizon answers, each new row is weighted as Huber's M-estimator weighs it (c = 2 fitted
  standard deviations, as chrony's fit in ``chronotick.baselines``): one odd minute moves it little.

The state per clock is a few forgotten sums per horizon (``AnchorRegression``, about 5 kB
compressed for all eight): it does not grow with the clock's age, and it is a function of the
clock's samples alone, so every gateway replica learns the same from the same requests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel

NAME = "online-ar"
# Lags of the features, in samples: one per octave, up to the longest a 512-sample context can
# serve with a minute of horizon behind it.
LAGS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
FEATURES = len(LAGS) + 1  # and a constant: a clock's steady drift
# The mean absolute step over this many samples before a row's origin is the row's unit, its
# largest TRIM share left out: a clock step or a spike in the window must not be the unit itself
# (one -11 s spike in a chrony log made it 180,000 us, and every forecast near it wild).
SCALE_WINDOW = 64
TRIM = 0.1
# The earliest sample that can be an origin: the longest lag and the unit's window lie before it.
FIRST_ORIGIN = max(max(LAGS), SCALE_WINDOW)
# Rows with a rate beyond this many units per step are left out: a clock's motion, drift included,
# is about one unit per step by the unit's definition; a step of thousands is not a row to learn from.
CLIP = 50.0
# Forgetting: an hour's half-life follows a clock's regime (temperature, load) and still holds
# thousands of rows at 1 s.
HALF_LIFE_S = 3600.0
# Effective rows (the sum of their forgetting and Huber weights) before a horizon's regression answers.
READY_ROWS = 300.0
# Ridge on each coefficient, relative to its feature's own weight: only to keep the solve
# well-posed (features at neighbouring octaves are strongly correlated).
RIDGE = 1e-6
# Huber's tuning constant, in fitted residual standard deviations (chronotick.baselines uses it too).
HUBER_C = 2.0
_UPPER = np.triu_indices(FEATURES)
_FLOOR_US = 1e-9  # a scale for a clock whose samples did not move at all


class AnchorRegression(BaseModel):
    """The forgotten sums of one horizon's regression: X'X (packed upper triangle), X'y, y'y, rows."""

    gram: list[float] = [0.0] * len(_UPPER[0])
    cross: list[float] = [0.0] * FEATURES
    target_sq: float = 0.0
    rows: float = 0.0


@dataclass
class _Sums:
    """Every horizon's sums as arrays, to work on them at once: (A, K, K), (A, K), (A,), (A,)."""

    gram: np.ndarray
    cross: np.ndarray
    target_sq: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, anchors: Sequence[AnchorRegression]) -> _Sums:
        packed = np.array([a.gram for a in anchors])
        gram = np.zeros((len(anchors), FEATURES, FEATURES))
        gram[:, _UPPER[0], _UPPER[1]] = packed
        gram[:, _UPPER[1], _UPPER[0]] = packed
        return cls(
            gram,
            np.array([a.cross for a in anchors]),
            np.array([a.target_sq for a in anchors]),
            np.array([a.rows for a in anchors]),
        )

    def store(self, anchors: Sequence[AnchorRegression]) -> None:
        for a, regression in enumerate(anchors):
            regression.gram = self.gram[a][_UPPER].tolist()
            regression.cross = self.cross[a].tolist()
            regression.target_sq = float(self.target_sq[a])
            regression.rows = float(self.rows[a])

    def fits(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, K) least-squares coefficients and (A,) residual standard deviations (in row units)."""
        diagonal = np.einsum("akk->ak", self.gram)
        ridged = self.gram + np.einsum("ak,kl->akl", RIDGE * diagonal + 1e-12, np.eye(FEATURES))
        coefficients = np.linalg.solve(ridged, self.cross[..., None])[..., 0]
        residual_sq = (
            self.target_sq
            - 2.0 * np.einsum("ak,ak->a", coefficients, self.cross)
            + np.einsum("ak,akl,al->a", coefficients, self.gram, coefficients)
        )
        with np.errstate(invalid="ignore", divide="ignore"):  # a horizon without rows: NaN, never used
            return coefficients, np.sqrt(np.maximum(residual_sq, 0.0) / self.rows)


def _units(offsets_us: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """(R,) each origin's unit: the mean absolute step over the ``SCALE_WINDOW`` before it, its
    largest ``TRIM`` share and its missing steps left out; NaN for a window without a step."""
    steps = np.abs(np.diff(offsets_us, prepend=np.nan))
    windows = sliding_window_view(steps, SCALE_WINDOW)[origins - SCALE_WINDOW + 1]  # (R, W), ending at each origin
    ordered = np.sort(windows, axis=1)  # missing steps (NaN) sort last
    kept = np.floor(np.isfinite(ordered).sum(axis=1) * (1.0 - TRIM)).astype(int)
    totals = np.concatenate([np.zeros((origins.size, 1)), np.cumsum(np.nan_to_num(ordered), axis=1)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scales: np.ndarray = np.maximum(np.take_along_axis(totals, kept[:, None], axis=1)[:, 0] / kept, _FLOOR_US)
    return scales


def _features(offsets_us: np.ndarray, origins: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """(R, FEATURES): the change over each lag as a rate, in units per step, and a constant; NaN
    where a sample they need is missing."""
    rates = np.stack([(offsets_us[origins] - offsets_us[origins - lag]) / lag for lag in LAGS], axis=1)
    return np.concatenate([rates / unit[:, None], np.ones((origins.size, 1))], axis=1)


def _offset_at(offsets_us: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Offsets at fractional sample positions, linear between the two samples around each."""
    below = np.floor(positions).astype(int)
    above = np.minimum(below + 1, offsets_us.size - 1)
    share = positions - below
    between: np.ndarray = (1.0 - share) * offsets_us[below] + share * offsets_us[above]
    return between


def learn(
    anchors: Sequence[AnchorRegression],
    horizons_s: Sequence[float],
    offsets_us: np.ndarray,
    interval_s: float,
    first_new: int,
) -> int:
    """Add the rows whose truth arrived with the samples from ``first_new`` on (earlier samples were
    seen by an earlier request) to each horizon's sums; returns the rows added. ``offsets_us`` are
    the clock's samples on its grid, NaN where missing: a row with a missing sample is left out."""
    n = offsets_us.size
    keep = 0.5 ** (interval_s / HALF_LIFE_S)
    # every origin whose row may complete with the new samples, at any horizon: their features once
    candidates = np.arange(max(FIRST_ORIGIN, math.floor(first_new - max(horizons_s) / interval_s - 1)), n)
    if candidates.size == 0:
        return 0
    units = _units(offsets_us, candidates)
    features = _features(offsets_us, candidates, units)
    ahead = np.asarray(horizons_s)[:, None] / interval_s  # (A, 1) in steps
    targets_at = candidates + ahead  # (A, R) fractional sample positions
    complete = np.ceil(targets_at).astype(int)  # a row's truth is in once the sample after its target is
    chosen = (complete >= first_new) & (complete <= n - 1)
    target = (_offset_at(offsets_us, np.minimum(targets_at, n - 1)) - offsets_us[candidates]) / (ahead * units)
    with np.errstate(invalid="ignore"):  # NaN: a missing sample; the row is left out either way
        usable = chosen & (np.abs(features) <= CLIP).all(axis=1) & (np.abs(target) <= CLIP)
    counts = usable.sum(axis=1)
    if not counts.any():
        return 0
    features = np.where(usable.any(axis=0)[:, None], features, 0.0)
    target = np.where(usable, target, 0.0)
    # the newest row weighs 1, each older one ``keep`` times the next; the old sums fade by all of them
    newer = counts[:, None] - np.cumsum(usable, axis=1)
    weight = np.where(usable, keep ** newer.astype(float), 0.0)
    sums = _Sums.of(anchors)
    ready = sums.rows >= READY_ROWS
    if ready.any():  # Huber: a row far off the present fit counts as one at HUBER_C of its spread
        coefficients, spread = sums.fits()
        residual = np.abs(target - coefficients @ features.T)
        with np.errstate(divide="ignore", invalid="ignore"):
            huber = np.minimum(1.0, HUBER_C * spread[:, None] / residual)
        weight = np.where(ready[:, None] & usable, weight * np.nan_to_num(huber, nan=1.0), weight)
    fade = keep**counts
    sums.gram = fade[:, None, None] * sums.gram + np.einsum("ar,rk,rl->akl", weight, features, features)
    sums.cross = fade[:, None] * sums.cross + np.einsum("ar,rk->ak", weight * target, features)
    sums.target_sq = fade * sums.target_sq + np.sum(weight * target**2, axis=1)
    sums.rows = fade * sums.rows + weight.sum(axis=1)
    sums.store(anchors)
    return int(counts.sum())


def forecast(
    anchors: Sequence[AnchorRegression],
    horizons_s: Sequence[float],
    reached: Sequence[int],
    offsets_us: np.ndarray,
    interval_s: float,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray] | str:
    """(H,) mean and standard deviation of the next ``horizon`` samples, or why there is none:
    linear in time between the regressions of the ``reached`` horizons (from no change now), held
    beyond the last of them (the gateway does not ask it past its longest horizon)."""
    if not reached:
        return "no remembered horizon within this forecast"
    unready = [horizons_s[a] for a in reached if anchors[a].rows < READY_ROWS]
    if unready:
        return f"still learning this clock at {', '.join(f'{h:g}' for h in unready)} s"
    if offsets_us.size <= FIRST_ORIGIN or not np.isfinite(offsets_us[-1]):
        return f"needs the last sample and {FIRST_ORIGIN} before it"
    origin = np.array([offsets_us.size - 1])
    # the unit from the steps observed (bridging a gap around a spike would smear it into many steps),
    # the rates across interior gaps bridged
    unit = _units(offsets_us, origin)
    observed = np.flatnonzero(np.isfinite(offsets_us))
    features = _features(np.interp(np.arange(offsets_us.size), observed, offsets_us[observed]), origin, unit)
    if not np.all(np.isfinite(features)):
        return f"no observed step in the last {SCALE_WINDOW} samples"
    if np.any(np.abs(features[0]) > CLIP):  # a row it would not have learned from: no forecast from it
        return f"a clock step or slew within the last {max(LAGS)} samples (a rate beyond {CLIP:g} of its units)"
    coefficients, spread = _Sums.of([anchors[a] for a in reached]).fits()
    rate = coefficients @ features[0]  # (reached,) the change ahead per step, in units
    times = np.array([0.0] + [horizons_s[a] for a in reached])
    ahead = times[1:] / interval_s  # in steps
    steps_s = interval_s * np.arange(1, horizon + 1)
    change = np.interp(steps_s, times, np.concatenate([[0.0], ahead * rate]))
    variance = np.interp(steps_s, times, np.concatenate([[0.0], (ahead * spread) ** 2]))
    return offsets_us[-1] + unit[0] * change, unit[0] * np.sqrt(variance)
