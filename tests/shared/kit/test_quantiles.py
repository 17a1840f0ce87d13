"""Requested quantile levels and the standard deviation from a model's native grid."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chronotick.kit.quantiles import quantiles_at, std_from_quantiles

GRID = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])


def normal_grid(mean: float, sigma: float, levels: np.ndarray = GRID, horizon: int = 3) -> np.ndarray:
    values = np.array([NormalDist(mean, sigma).inv_cdf(level) for level in levels])
    return np.repeat(values[None, :, None], horizon, axis=2)


def test_std_of_a_normal_grid_is_its_sigma() -> None:
    std = std_from_quantiles(GRID, normal_grid(5.0, 2.5))
    np.testing.assert_allclose(std, 2.5, rtol=1e-9)


def test_requested_native_levels_come_back_unchanged() -> None:
    grid = normal_grid(0.0, 1.0)
    out = quantiles_at(np.array([0.1, 0.5, 0.9]), GRID, grid, std_from_quantiles(GRID, grid))
    np.testing.assert_allclose(out, grid[:, [0, 4, 8], :])


def test_levels_between_grid_points_are_interpolated() -> None:
    grid = normal_grid(0.0, 1.0)
    out = quantiles_at(np.array([0.45]), GRID, grid, std_from_quantiles(GRID, grid))
    np.testing.assert_allclose(out[:, 0], 0.5 * (grid[:, 3] + grid[:, 4]))


def test_tail_levels_beyond_the_grid_follow_a_normal_tail() -> None:
    grid = normal_grid(10.0, 2.0)
    out = quantiles_at(np.array([0.025, 0.975]), GRID, grid, std_from_quantiles(GRID, grid))
    np.testing.assert_allclose(out[0, :, 0], [10.0 - 1.959964 * 2.0, 10.0 + 1.959964 * 2.0], rtol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=9, max_size=9),
    st.lists(st.floats(0.01, 0.99), min_size=1, max_size=12, unique=True),
)
def test_quantiles_never_cross_even_when_the_model_output_does(raw: list[float], requested: list[float]) -> None:
    grid = np.array(raw)[None, :, None]
    levels = np.sort(np.array(requested))
    out = quantiles_at(levels, GRID, grid, std_from_quantiles(GRID, grid))
    assert np.all(np.diff(out[0, :, 0]) >= 0)
