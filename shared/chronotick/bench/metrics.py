"""Scores of one method's forecasts at one horizon: pure functions over arrays.

A method's forecasts are a point forecast and two central intervals (80 % and 95 %) per origin;
the truth is the observed offset at origin + horizon. Pairs where the truth or the forecast is
missing (NaN) are left out, and ``n`` says how many remained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Normal quantiles turning a member's calibrated std into its 80 % and 95 % central intervals.
Z_80 = 1.2815515655446004
Z_95 = 1.959963984540054


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make == ambiguous
class Forecasts:
    """(O, K) point forecasts and interval bounds at O origins and K horizons, NaN = no answer."""

    mean_us: np.ndarray
    lower80_us: np.ndarray
    upper80_us: np.ndarray
    lower95_us: np.ndarray
    upper95_us: np.ndarray

    @classmethod
    def from_std(cls, mean_us: np.ndarray, std_us: np.ndarray) -> Forecasts:
        """Normal intervals mean +- z std (a non-finite std gives an unbounded interval)."""
        return cls(
            mean_us, mean_us - Z_80 * std_us, mean_us + Z_80 * std_us, mean_us - Z_95 * std_us, mean_us + Z_95 * std_us
        )

    @classmethod
    def concatenate(cls, parts: list[Forecasts]) -> Forecasts:
        return cls(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in ("mean_us", "lower80_us", "upper80_us", "lower95_us", "upper95_us")
            )
        )


@dataclass(frozen=True)
class HorizonMetrics:
    """Errors in microseconds; coverages as fractions (NaN with n = 0)."""

    n: int
    mae_us: float
    rmse_us: float
    p95_abs_error_us: float
    coverage80: float
    coverage95: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def coverage(truth: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of truths inside [lower, upper]; NaN when there is none to count."""
    if truth.size == 0:
        return math.nan
    return float(np.mean((truth >= lower) & (truth <= upper)))


def horizon_metrics(truth_us: np.ndarray, forecasts: Forecasts, column: int) -> HorizonMetrics:
    """Metrics of one horizon (``column`` of the (O, K) arrays) over the origins."""
    truth = truth_us[:, column]
    mean = forecasts.mean_us[:, column]
    known = np.isfinite(truth) & np.isfinite(mean)
    truth, mean = truth[known], mean[known]
    if truth.size == 0:
        return HorizonMetrics(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    error = np.abs(truth - mean)
    return HorizonMetrics(
        n=int(truth.size),
        mae_us=float(error.mean()),
        rmse_us=float(np.sqrt(np.mean(error**2))),
        p95_abs_error_us=float(np.percentile(error, 95)),
        coverage80=coverage(truth, forecasts.lower80_us[known, column], forecasts.upper80_us[known, column]),
        coverage95=coverage(truth, forecasts.lower95_us[known, column], forecasts.upper95_us[known, column]),
    )


def method_metrics(truth_us: np.ndarray, forecasts: Forecasts, horizons_s: list[float]) -> dict[str, HorizonMetrics]:
    """Horizon (as text, e.g. "10") -> metrics; column k of the arrays is horizons_s[k]."""
    return {f"{h:g}": horizon_metrics(truth_us, forecasts, k) for k, h in enumerate(horizons_s)}
