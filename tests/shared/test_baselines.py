"""The classical baselines: exact on the signals they model, robust to missing samples."""

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronotick.baselines import last_value_forecast, linear_fit_forecast


def test_last_value_repeats_the_last_observation() -> None:
    forecast_us = last_value_forecast(np.array([1.0, 2.0, 3.5]), 4)
    np.testing.assert_array_equal(forecast_us, [3.5, 3.5, 3.5, 3.5])


def test_last_value_skips_trailing_nan() -> None:
    forecast_us = last_value_forecast(np.array([1.0, 7.0, np.nan, np.nan]), 2)
    np.testing.assert_array_equal(forecast_us, [7.0, 7.0])


def test_linear_fit_is_exact_on_a_straight_line() -> None:
    # A free-running clock 12.5 ppm fast, sampled every second.
    offset_us = 40.0 + 12.5 * np.arange(100)
    forecast_us = linear_fit_forecast(offset_us, 5)
    np.testing.assert_allclose(forecast_us, 40.0 + 12.5 * np.arange(100, 105))


def test_linear_fit_is_exact_on_a_constant() -> None:
    np.testing.assert_allclose(linear_fit_forecast(np.full(30, -3.0), 3), [-3.0, -3.0, -3.0])


def test_linear_fit_keeps_gap_spacing_by_index() -> None:
    # Dropping samples must not compress time: the fit is against sample index.
    offset_us = 2.0 * np.arange(50) - 7.0
    offset_us[[3, 10, 11, 12, 48]] = np.nan
    offset_us[49] = np.nan
    np.testing.assert_allclose(linear_fit_forecast(offset_us, 2), [93.0, 95.0])


def test_linear_fit_uses_only_the_last_window_observations() -> None:
    # An old regime (flat) followed by a ramp: a window covering only the ramp extrapolates it.
    offset_us = np.concatenate((np.zeros(100), 3.0 * np.arange(1, 21)))
    np.testing.assert_allclose(linear_fit_forecast(offset_us, 1, window=20), [63.0])


def test_linear_fit_with_one_observation_is_persistence() -> None:
    np.testing.assert_array_equal(
        linear_fit_forecast(np.array([np.nan, 4.0, np.nan]), 2), [4.0, 4.0]
    )


@pytest.mark.parametrize("forecast", [last_value_forecast, linear_fit_forecast])
def test_all_nan_context_is_rejected(forecast: Callable[[np.ndarray, int], np.ndarray]) -> None:
    with pytest.raises(ValueError, match="no observed"):
        forecast(np.full(8, np.nan), 3)


@pytest.mark.parametrize("forecast", [last_value_forecast, linear_fit_forecast])
def test_empty_context_is_rejected(forecast: Callable[[np.ndarray, int], np.ndarray]) -> None:
    with pytest.raises(ValueError):
        forecast(np.array([]), 3)


def test_non_positive_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="window"):
        linear_fit_forecast(np.arange(5.0), 2, window=0)


@settings(max_examples=50, deadline=None)
@given(
    intercept_us=st.floats(-1e6, 1e6),
    slope_ppm=st.floats(-100.0, 100.0),
    horizon=st.integers(0, 60),
    missing=st.lists(st.integers(0, 63), max_size=30),
)
def test_linear_fit_recovers_any_line_despite_missing_samples(
    intercept_us: float, slope_ppm: float, horizon: int, missing: list[int]
) -> None:
    offset_us = intercept_us + slope_ppm * np.arange(64.0)
    offset_us[missing] = np.nan
    offset_us[-1] = intercept_us + slope_ppm * 63  # keep at least two observations
    offset_us[0] = intercept_us
    forecast_us = linear_fit_forecast(offset_us, horizon)
    assert forecast_us.shape == (horizon,)
    np.testing.assert_allclose(
        forecast_us, intercept_us + slope_ppm * np.arange(64, 64 + horizon), rtol=1e-9, atol=1e-6
    )
