"""Classical offset forecasters that every learned model must beat.

They read a context of past offsets (microseconds, one sample per interval,
NaN where a measurement is missing) and return the next `horizon` offsets.
"""

from __future__ import annotations

import numpy as np


def _observed(context_us: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the observed (non-NaN) samples, after validating the inputs."""
    context_us = np.asarray(context_us, dtype=np.float64)
    if context_us.ndim != 1:
        raise ValueError(f"context_us must be 1-D, got shape {context_us.shape}")
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    index = np.flatnonzero(~np.isnan(context_us))
    if index.size == 0:
        raise ValueError("context_us has no observed (non-NaN) value")
    return index, context_us[index]


def last_value_forecast(context_us: np.ndarray, horizon: int) -> np.ndarray:
    """(horizon,) the last observed offset repeated: the persistence baseline.

    A disciplined clock's offset wanders slowly compared with the sampling
    interval, so persistence is hard to beat at short horizons.
    """
    _, offset_us = _observed(context_us, horizon)
    return np.full(horizon, offset_us[-1])


def linear_fit_forecast(context_us: np.ndarray, horizon: int, *, window: int = 64) -> np.ndarray:
    """(horizon,) a least-squares line through the last `window` observed offsets, extrapolated.

    The line is fitted against sample index, so gaps keep their true spacing;
    its slope is the residual frequency error (ppm when sampled every second),
    which is what makes an undisciplined clock's offset predictable.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    index, offset_us = _observed(context_us, horizon)
    index, offset_us = index[-window:], offset_us[-window:]
    future = np.arange(len(context_us), len(context_us) + horizon)
    if index.size == 1:
        return np.full(horizon, offset_us[0])
    # Centring the abscissa keeps the normal equations well conditioned for long contexts.
    centre = float(index.mean())
    dx = index - centre
    mean_us = float(offset_us.mean())
    slope_us_per_sample = float(np.dot(dx, offset_us - mean_us) / np.dot(dx, dx))
    return mean_us + slope_us_per_sample * (future - centre)
