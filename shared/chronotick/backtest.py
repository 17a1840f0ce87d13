"""Rolling origins on the tail of a context: where a forecaster's recent errors can be measured.

For a context of n samples and a horizon H, origin j cuts it at o_j = n - H - j * stride with
stride = ceil(H / 2), so the truth for all H steps after each origin is inside the context.
The gateway calibrates members on these origins; the kit derives a point forecaster's spread
from them. One definition, so both measure the same thing.
"""

from __future__ import annotations

import math

import numpy as np

# A backtest context with fewer observations than this says little and most models refuse it.
MIN_BACKTEST_OBSERVATIONS = 32


def backtest_origins(offsets_us: np.ndarray, horizon: int, count: int) -> tuple[int, ...]:
    """Origins n - H - j * stride (j < count) whose context holds enough observations."""
    stride = max(1, math.ceil(horizon / 2))
    observed_before = np.concatenate([[0], np.cumsum(~np.isnan(offsets_us))])
    origins = (len(offsets_us) - horizon - j * stride for j in range(count))
    return tuple(o for o in origins if o > 0 and observed_before[o] >= MIN_BACKTEST_OBSERVATIONS)


def truth_after(offsets_us: np.ndarray, origins: tuple[int, ...], horizon: int) -> np.ndarray:
    """(J, H) observed values after each origin, NaN where missing."""
    if not origins:
        return np.empty((0, horizon))
    return np.stack([offsets_us[o : o + horizon] for o in origins])
