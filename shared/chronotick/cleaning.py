"""Input cleaning: find the spikes of an offset series so that models treat them as missing.

Real offset series carry spikes: a delayed NTP reply or a network burst puts one sample (or a
few) far off the clock's path, and the next sample is back on it. Fed to a model as is, a spike
drags the forecast and, in the gateway, the backtests that calibrate every member's spread.

The detector is a Hampel filter on first differences of the observed samples (missing samples
are skipped, so a gap joins its two sides). A difference is an outlier when it is more than
``HAMPEL_THRESHOLD`` scaled MADs from the median of the ``2 * HAMPEL_HALF_WINDOW + 1``
differences around it (the scale floored by a series-wide one, for quantised logs). A spike
shows as an outlier difference into it and one of the opposite sign out of it, at most
``MAX_SPIKE_SAMPLES`` samples later, with a net change across the excursion that is *not* an
outlier: the series came back. Only the samples inside are flagged, never their neighbours. A
clock step (one outlier difference whose level persists) has no way back and is never flagged;
``chronotick.clockdata`` reports steps separately. The last observed sample is never flagged:
until the next one arrives, a spike and a step look the same.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Differences on each side of the one judged: 31 in all, so a spike's two outlier differences
# (or a burst's) are a minority of its window and move neither the median nor the MAD much.
HAMPEL_HALF_WINDOW = 15
# In scaled MADs (normal-equivalent standard deviations of a difference). For Gaussian noise a
# 5-sigma difference happens about once in 1.7 million, and a spike needs two of them in a row.
HAMPEL_THRESHOLD = 5.0
# Longest excursion that still counts as a spike (a burst of delayed replies); longer ones are
# left alone: they may be real behaviour of the clock.
MAX_SPIKE_SAMPLES = 3
_MAD_TO_SD = 1.482602218505602
# The 90th percentile of |N(0, 1)|: turns a 90th percentile of deviations into a standard deviation.
_Z90 = 1.6448536269514722


def spike_indices(offsets_us: np.ndarray) -> np.ndarray:
    """Sorted indices into ``offsets_us`` (NaN = missing) of the samples that sit in spikes.

    Series with fewer than ``2 * HAMPEL_HALF_WINDOW + 2`` observed samples are too short to tell
    noise from spikes, and get none.
    """
    values = np.asarray(offsets_us, dtype=np.float64)
    observed = np.flatnonzero(np.isfinite(values))
    window = 2 * HAMPEL_HALF_WINDOW + 1
    if observed.size < window + 1:
        return np.empty(0, dtype=np.int64)
    diffs_us = np.diff(values[observed])
    floor_us = _series_scale_us(diffs_us)
    if floor_us == 0.0:
        return np.empty(0, dtype=np.int64)
    # np.pad(mode="symmetric") without its argument handling: each edge mirrored, edge included.
    edge = HAMPEL_HALF_WINDOW
    padded_us = np.concatenate([diffs_us[edge - 1 :: -1], diffs_us, diffs_us[: -edge - 1 : -1]])
    windows = sliding_window_view(padded_us, window)
    median_us = _middle(windows)
    mad_us = _middle(np.abs(windows - median_us[:, None]))
    threshold_us = HAMPEL_THRESHOLD * np.maximum(_MAD_TO_SD * mad_us, floor_us)
    residual_us = diffs_us - median_us
    outlier = np.abs(residual_us) > threshold_us
    flagged: list[int] = []
    next_entry = 0  # differences before it belong to a spike already found
    for entry in np.flatnonzero(outlier).tolist():
        if entry < next_entry:
            continue
        span = _excursion_length(diffs_us, median_us, residual_us, outlier, threshold_us, observed, entry)
        if span:
            # Difference ``entry`` leads into observed sample entry + 1.
            flagged.extend(observed[entry + 1 : entry + 1 + span].tolist())
            next_entry = entry + span + 1
    return np.asarray(flagged, dtype=np.int64)


def _middle(windows: np.ndarray) -> np.ndarray:
    """The median of each row of an odd-width, NaN-free window view: one partition, a quarter of
    ``np.median``'s time (which also partitions for NaNs); the gateway and every service clean each
    request's series, so this is on every request's path."""
    middle = windows.shape[1] // 2
    return np.partition(windows, middle, axis=1)[:, middle]


def _median(values: np.ndarray) -> float:
    """``np.median`` of a NaN-free 1-D array, by one partition (numpy's own argument handling
    cost more than the partition, on every request's path)."""
    return _quantile(values, 0.5)


def _quantile(values: np.ndarray, q: float) -> float:
    """``np.quantile(values, q)`` (its default, linear interpolation, with the same arithmetic) of a
    NaN-free 1-D array, by one partition."""
    position = q * (values.size - 1)
    below = int(position)
    above = min(below + 1, values.size - 1)
    ordered = np.partition(values, (below, above))
    low, high = float(ordered[below]), float(ordered[above])
    t = position - below
    # numpy interpolates from the nearer end, so the result never leaves [low, high].
    return high - (high - low) * (1.0 - t) if t >= 0.5 else low + (high - low) * t


def _series_scale_us(diffs_us: np.ndarray) -> float:
    """A series-wide, normal-equivalent scale of the differences that floors the local one.

    Real logs are quantised (scion's in steps of about 0.24 us): most differences of a quiet
    stretch are equal, its MAD is zero and one quantum would be an outlier. The 90th percentile
    of the deviations sees the quanta and ignores spikes (under a tenth of the differences). On a
    log quieter still (fewer than a tenth of its differences move) the smallest move is the scale.
    """
    deviation_us = np.abs(diffs_us - _median(diffs_us))
    scale_us = _quantile(deviation_us, 0.9) / _Z90
    if scale_us > 0.0:
        return scale_us
    moves_us = deviation_us[deviation_us > 0.0]
    return float(moves_us.min()) if moves_us.size else 0.0


def _excursion_length(
    diffs_us: np.ndarray,
    median_us: np.ndarray,
    residual_us: np.ndarray,
    outlier: np.ndarray,
    threshold_us: np.ndarray,
    observed: np.ndarray,
    entry: int,
) -> int:
    """Samples in the spike entered by difference ``entry``, or 0 if the series does not come back.

    The way back is judged over the grid steps from the sample before the spike to the one after
    it, which missing samples on either side make more than the spike's own: the local median
    difference is expected once per step, and the scatter grows as a random walk's (a clock's wander
    over a gap is real motion; on a chrony log a -11 s spike after two missing samples was left in,
    and Kalman then forecast wildly around it)."""
    for span in range(1, MAX_SPIKE_SAMPLES + 1):
        exit_ = entry + span
        if exit_ >= diffs_us.size:
            return 0
        if not outlier[exit_] or np.sign(residual_us[exit_]) == np.sign(residual_us[entry]):
            continue
        grid_steps = int(observed[exit_ + 1] - observed[entry])
        net_us = diffs_us[entry : exit_ + 1].sum() - median_us[entry] * grid_steps
        if abs(net_us) <= threshold_us[entry] * np.sqrt(grid_steps / (span + 1)):
            return span
    return 0


def without_spikes(offsets_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``offsets_us`` with its spikes set missing (NaN), and their indices."""
    flagged = spike_indices(offsets_us)
    cleaned = np.array(offsets_us, dtype=np.float64)
    cleaned[flagged] = np.nan
    return cleaned, flagged
