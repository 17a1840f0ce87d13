"""From a model's native quantile grid to the levels a client asked for, and a standard deviation.

Models answer on their own grids (Chronos-Bolt 0.1..0.9, Chronos-2 0.01..0.99, TimesFM 0.1..0.9).
Inside the grid a requested level is interpolated linearly in probability; outside it the tail is
extended as a normal distribution with the spread the grid implies. Quantiles are finally sorted
along the level axis, so they never cross whatever the model produced.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
# Levels closer than this count as the same (grids are written as decimal fractions).
_LEVEL_TOLERANCE = 1e-6


def _z(level: float) -> float:
    return _NORMAL.inv_cdf(level)


def std_from_quantiles(levels: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Normal-equivalent standard deviation, (batch, horizon), from (batch, levels, horizon).

    For every symmetric pair (a, 1 - a) on the grid, sigma_a = (q_{1-a} - q_a) / (z_{1-a} - z_a);
    the result is the mean of sigma_a over the pairs, which uses the whole grid instead of
    trusting one pair. A grid without a symmetric pair cannot say anything about spread.
    """
    levels = np.asarray(levels, dtype=float)
    sigmas = []
    for low_index, low in enumerate(levels):
        if low >= 0.5:
            break
        matches = np.flatnonzero(np.abs(levels - (1.0 - low)) < _LEVEL_TOLERANCE)
        if matches.size:
            high_index = int(matches[0])
            spread = quantiles[:, high_index, :] - quantiles[:, low_index, :]
            sigmas.append(np.abs(spread) / (_z(1.0 - low) - _z(low)))
    if not sigmas:
        raise ValueError(f"quantile grid {levels.tolist()} has no symmetric pair around the median")
    sigma: np.ndarray = np.mean(sigmas, axis=0)
    return sigma


def quantiles_at(
    requested: np.ndarray,
    levels: np.ndarray,
    quantiles: np.ndarray,
    std: np.ndarray,
) -> np.ndarray:
    """Quantiles at ``requested`` levels, (batch, requested, horizon), never crossing."""
    requested = np.asarray(requested, dtype=float)
    levels = np.asarray(levels, dtype=float)
    batch, _, horizon = quantiles.shape
    out = np.empty((batch, requested.size, horizon), dtype=float)
    for index, level in enumerate(requested):
        if level < levels[0] - _LEVEL_TOLERANCE:
            out[:, index] = quantiles[:, 0] + std * (_z(level) - _z(levels[0]))
        elif level > levels[-1] + _LEVEL_TOLERANCE:
            out[:, index] = quantiles[:, -1] + std * (_z(level) - _z(levels[-1]))
        else:
            upper = int(np.clip(np.searchsorted(levels, level - _LEVEL_TOLERANCE), 1, levels.size - 1))
            lower = upper - 1
            weight = (level - levels[lower]) / (levels[upper] - levels[lower])
            weight = float(np.clip(weight, 0.0, 1.0))
            out[:, index] = (1.0 - weight) * quantiles[:, lower] + weight * quantiles[:, upper]
    return np.sort(out, axis=1)
