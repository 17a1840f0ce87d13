"""Spike detection: injected spikes are found, clean samples and clock steps are left alone."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chronotick.cleaning import HAMPEL_HALF_WINDOW, MAX_SPIKE_SAMPLES, spike_indices, without_spikes
from chronotick.contract import SeriesInput
from chronotick.grid import regularize

LENGTH = 400
NOISE_US = 1.0
# Injected spikes and steps are at least this far apart and from the ends, so each has a window
# of clean differences around it and no spike lands on the last sample (which is never judged).
SPACING = 2 * HAMPEL_HALF_WINDOW + 2 * MAX_SPIKE_SAMPLES


def clock(seed: int, drift_us_per_s: float) -> np.ndarray:
    """A drifting clock with white measurement noise and a slow random walk in frequency."""
    rng = np.random.default_rng(seed)
    walk_us = np.cumsum(np.cumsum(rng.normal(0.0, 0.002, LENGTH)))
    return drift_us_per_s * np.arange(LENGTH) + walk_us + rng.normal(0.0, NOISE_US, LENGTH)


events = st.lists(st.integers(0, (LENGTH - 2 * SPACING) // SPACING - 1), min_size=1, max_size=6, unique=True)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    drift=st.floats(-50.0, 50.0),
    slots=events,
    heights=st.lists(st.floats(30.0, 5000.0), min_size=6, max_size=6),
    signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=6, max_size=6),
    widths=st.lists(st.integers(1, MAX_SPIKE_SAMPLES), min_size=6, max_size=6),
)
def test_injected_spikes_are_flagged_and_nothing_else(
    seed: int, drift: float, slots: list[int], heights: list[float], signs: list[float], widths: list[int]
) -> None:
    clean = clock(seed, drift)
    spiky = clean.copy()
    expected = []
    for k, slot in enumerate(slots):
        start = SPACING + slot * SPACING
        spiky[start : start + widths[k]] += signs[k] * heights[k] * NOISE_US
        expected += range(start, start + widths[k])
    assert spike_indices(spiky).tolist() == sorted(expected)
    cleaned, flagged = without_spikes(spiky)
    untouched = np.setdiff1d(np.arange(LENGTH), flagged)
    assert np.isnan(cleaned[flagged]).all()
    np.testing.assert_array_equal(cleaned[untouched], spiky[untouched])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    drift=st.floats(-50.0, 50.0),
    slots=events,
    heights=st.lists(st.floats(30.0, 5000.0), min_size=6, max_size=6),
    signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=6, max_size=6),
)
def test_clock_steps_are_not_spikes(
    seed: int, drift: float, slots: list[int], heights: list[float], signs: list[float]
) -> None:
    stepped = clock(seed, drift)
    for k, slot in enumerate(slots):
        stepped[SPACING + slot * SPACING :] += signs[k] * heights[k] * NOISE_US
    assert spike_indices(stepped).size == 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), drift=st.floats(-50.0, 50.0))
def test_a_noisy_clock_without_spikes_is_left_alone(seed: int, drift: float) -> None:
    assert spike_indices(clock(seed, drift)).size == 0


def test_gaps_are_skipped_and_indices_point_into_the_series_as_given() -> None:
    offsets = clock(7, 3.0)
    offsets[50:60] = np.nan  # a gap: its two sides are compared directly
    offsets[120] += 400.0
    assert spike_indices(offsets).tolist() == [120]


def test_the_last_sample_and_short_series_are_never_judged() -> None:
    offsets = clock(3, 1.0)
    offsets[-1] += 1000.0  # a spike or a step: nobody can tell yet
    assert spike_indices(offsets).size == 0
    short = clock(3, 1.0)[: 2 * HAMPEL_HALF_WINDOW]
    short[10] += 1000.0
    assert spike_indices(short).size == 0


def test_a_quantised_flat_log_keeps_its_single_quanta() -> None:
    rng = np.random.default_rng(1)
    offsets = np.zeros(300)
    offsets[rng.choice(300, 20, replace=False)] = 1.0  # one-microsecond rounding blips on a quiet clock
    assert spike_indices(offsets).size == 0


def test_regularize_cleans_on_request_and_reports_indices_of_the_given_samples() -> None:
    offsets = clock(11, 2.0)
    offsets[200] -= 800.0
    times = np.arange(LENGTH, dtype=float)
    keep = np.ones(LENGTH, dtype=bool)
    keep[100:110] = False  # a hole in the timestamps: grid slots and given indices differ after it
    series = SeriesInput(offsets_us=offsets[keep].tolist(), timestamps_s=times[keep].tolist())
    grid = regularize(series, "series.0", clean=True)
    assert grid.flagged_outliers.tolist() == [190]
    assert np.isnan(grid.offsets_us[200]) and np.isnan(grid.offsets_us[100:110]).all()
    raw = regularize(series, "series.0")
    assert raw.flagged_outliers.size == 0 and raw.offsets_us[200] == offsets[200]


def test_a_spike_after_missing_samples_is_flagged_on_a_drifting_clock() -> None:
    # The way back spans the gap too: the clock's drift over the missing samples is expected, not
    # taken for a step (a chrony log had a -11 s spike right after two missing samples).
    for seed in range(5):
        series = clock(seed, drift_us_per_s=20.0)
        at = LENGTH // 2
        series[at - 3 : at] = np.nan
        series[at] = -1.0e7
        assert spike_indices(series).tolist() == [at], seed
