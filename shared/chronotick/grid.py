"""Put a series on its regular grid: the one place where timestamps become a cadence.

Models and the gateway's backtests both index samples by step, so a series given with
timestamps is placed on the grid of its median spacing; holes become missing samples (NaN),
never interpolated values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chronotick.cleaning import without_spikes
from chronotick.contract import MAX_INTERVAL_S, MAX_POINTS_PER_SERIES, MIN_INTERVAL_S, SeriesInput
from chronotick.problems import validation_problem

# A sample may sit this far (in cadences) from its grid slot and still count as on the grid:
# timestamps from real loggers jitter by a fraction of the poll interval.
GRID_TOLERANCE = 0.25


@dataclass(frozen=True)
class GridSeries:
    """A series on its regular grid: (n,) offsets and past covariates, NaN where missing.

    ``flagged_outliers`` are indices into the series' ``offsets_us`` as given (not grid slots):
    the spikes that cleaning set missing.
    """

    offsets_us: np.ndarray
    interval_s: float
    past_covariates: dict[str, np.ndarray]
    future_covariates: dict[str, np.ndarray]
    flagged_outliers: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


def as_array(values: list[float | None]) -> np.ndarray:
    """The contract's samples as floats, ``None`` (missing) as NaN: numpy converts ``None`` to NaN
    in a float array, in one pass."""
    return np.array(values, dtype=float)


def grid_slots(timestamps_s: list[float], field: str) -> tuple[np.ndarray, float]:
    """Slot index of each sample on the grid of the median spacing, and that spacing (422 if off)."""
    times = np.asarray(timestamps_s, dtype=float)
    if times.size < 2:
        raise validation_problem([{"field": field, "reason": "need at least two timestamps to infer a cadence"}])
    interval_s = float(np.median(np.diff(times)))
    if not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
        raise validation_problem(
            [
                {
                    "field": field,
                    "reason": f"the median spacing of {interval_s:g} s is not a cadence a series may have: "
                    f"{MIN_INTERVAL_S:g} to {MAX_INTERVAL_S:g} s, as for interval_s",
                }
            ]
        )
    # Within the contract's bounds on timestamps and cadence, positions are at most 2e17: exact slots.
    position = (times - times[0]) / interval_s
    slots = np.rint(position).astype(np.int64)
    off_grid = np.flatnonzero(np.abs(position - slots) > GRID_TOLERANCE)
    if off_grid.size:
        raise validation_problem(
            [
                {
                    "field": f"{field}.{int(off_grid[0])}",
                    "reason": f"not on the regular cadence of {interval_s:g} s inferred from the median spacing",
                }
            ]
        )
    if slots[-1] >= MAX_POINTS_PER_SERIES:
        raise validation_problem(
            [
                {
                    "field": field,
                    "reason": f"spans {int(slots[-1]) + 1} cadences of {interval_s:g} s; "
                    f"at most {MAX_POINTS_PER_SERIES}",
                }
            ]
        )
    duplicates = np.flatnonzero(np.diff(slots) == 0)
    if duplicates.size:
        raise validation_problem(
            [
                {
                    "field": f"{field}.{int(duplicates[0]) + 1}",
                    "reason": f"falls in the same {interval_s:g} s slot as the sample before it",
                }
            ]
        )
    return slots, interval_s


def _on_grid(values: np.ndarray, slots: np.ndarray | None) -> np.ndarray:
    if slots is None:
        return values
    grid = np.full(int(slots[-1]) + 1, np.nan)
    grid[slots] = values
    return grid


def regularize(series: SeriesInput, field: str, *, clean: bool = False) -> GridSeries:
    """``series`` on its grid; ``field`` names it in errors (e.g. ``series.3``).

    With ``clean``, spikes become missing samples (``chronotick.cleaning``); the detector skips
    missing samples, so it sees the same observed sequence with or without timestamps.
    """
    slots, interval_s = None, float(series.interval_s or 0.0)
    if series.timestamps_s is not None:
        slots, interval_s = grid_slots(series.timestamps_s, f"{field}.timestamps_s")
    offsets_us = as_array(series.offsets_us)
    flagged = np.empty(0, dtype=np.int64)
    if clean:
        offsets_us, flagged = without_spikes(offsets_us)
    return GridSeries(
        offsets_us=_on_grid(offsets_us, slots),
        interval_s=interval_s,
        past_covariates={name: _on_grid(as_array(cov.past), slots) for name, cov in series.covariates.items()},
        future_covariates={
            name: np.asarray(cov.future, dtype=float)
            for name, cov in series.covariates.items()
            if cov.future is not None
        },
        flagged_outliers=flagged,
    )
