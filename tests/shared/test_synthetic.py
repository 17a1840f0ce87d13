"""The synthetic clock generator: reproducible, well-formed, and physically plausible."""

import numpy as np
import pytest

from chronotick.baselines import last_value_forecast
from chronotick.synthetic import SCENARIOS, SyntheticClock, generate_clock, training_windows


def _observation_error_us(clock: SyntheticClock) -> np.ndarray:
    error_us = clock.observed_offset_us - clock.true_offset_us
    return error_us[~np.isnan(error_us)]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_seed_gives_identical_series(scenario: str) -> None:
    a = generate_clock(scenario, 500, seed=7)
    b = generate_clock(scenario, 500, seed=7)
    np.testing.assert_array_equal(a.true_offset_us, b.true_offset_us)
    np.testing.assert_array_equal(a.observed_offset_us, b.observed_offset_us)
    np.testing.assert_array_equal(a.covariates["temperature_c"], b.covariates["temperature_c"])
    np.testing.assert_array_equal(a.steps, b.steps)


def test_different_seeds_give_different_series() -> None:
    a = generate_clock("stable", 500, seed=1)
    b = generate_clock("stable", 500, seed=2)
    assert not np.allclose(a.true_offset_us, b.true_offset_us)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_arrays_have_the_promised_shapes_and_no_nan_in_truth(scenario: str) -> None:
    clock = generate_clock(scenario, 300, interval_s=2.0, seed=3)
    assert clock.scenario == scenario
    assert clock.interval_s == 2.0
    np.testing.assert_allclose(clock.time_s, 2.0 * np.arange(300))
    for array in (clock.true_offset_us, clock.observed_offset_us, *clock.covariates.values()):
        assert array.shape == (300,)
        assert array.dtype == np.float64
    assert set(clock.covariates) >= {"temperature_c", "cpu_load"}
    assert np.isfinite(clock.true_offset_us).all()
    assert all(np.isfinite(c).all() for c in clock.covariates.values())
    assert ((clock.covariates["cpu_load"] >= 0) & (clock.covariates["cpu_load"] <= 1)).all()
    assert clock.steps.dtype.kind == "i"
    assert ((clock.steps >= 0) & (clock.steps < 300)).all()


def test_unknown_scenario_is_rejected_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"stable.*free_running"):
        generate_clock("lunar_eclipse", 10, seed=0)


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.3])
def test_missing_rate_is_roughly_honoured(rate: float) -> None:
    observed_us = generate_clock("mixed", 40_000, seed=11, missing_rate=rate).observed_offset_us
    assert np.isnan(observed_us).mean() == pytest.approx(rate, abs=0.02)


def test_missing_samples_include_gaps_not_only_isolated_drops() -> None:
    clock = generate_clock("stable", 40_000, seed=5, missing_rate=0.1)
    missing = np.isnan(clock.observed_offset_us)
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    run_lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    assert run_lengths.max() >= 20
    assert (run_lengths == 1).any()


def test_servo_keeps_a_stable_clock_within_a_few_hundred_us() -> None:
    for seed in range(10):
        clock = generate_clock("stable", 3600, seed=seed)
        assert np.abs(clock.true_offset_us).max() < 500.0, seed


def test_free_running_clock_drifts_away_smoothly() -> None:
    for seed in range(5):
        clock = generate_clock("free_running", 3600, seed=seed)
        offset_us = clock.true_offset_us
        # 10-100 ppm for an hour: tens of milliseconds, unlike a disciplined clock.
        assert np.abs(offset_us[-1] - offset_us[0]) > 10_000.0, seed
        # Drift is a low-order polynomial in time (frequency offset plus aging).
        fit = np.polyval(np.polyfit(clock.time_s, offset_us, 2), clock.time_s)
        assert np.abs(offset_us - fit).max() < 0.01 * np.ptp(offset_us), seed
        assert clock.steps.size == 0


def test_network_spike_has_heavier_tailed_observation_error_than_stable() -> None:
    def tail_ratio(scenario: str) -> float:
        error_us = np.concatenate(
            [_observation_error_us(generate_clock(scenario, 3000, seed=s)) for s in range(5)]
        )
        spread_us = np.median(np.abs(error_us - np.median(error_us)))
        return np.quantile(np.abs(error_us - np.median(error_us)), 0.999) / spread_us

    assert tail_ratio("network_spike") > 5 * tail_ratio("stable")


def test_network_spikes_are_mostly_positive() -> None:
    error_us = _observation_error_us(generate_clock("network_spike", 20_000, seed=4))
    big_us = error_us[np.abs(error_us) > 20 * np.median(np.abs(error_us))]
    assert big_us.size > 50
    assert (big_us > 0).mean() > 0.7


def test_server_load_heats_the_crystal() -> None:
    clock = generate_clock("server_load", 5000, seed=2)
    load = clock.covariates["cpu_load"]
    temperature_c = clock.covariates["temperature_c"]
    assert np.ptp(load) > 0.4
    assert np.corrcoef(load, temperature_c)[0, 1] > 0.3


def test_thermal_cycle_swings_the_temperature_more_than_stable() -> None:
    cycling_c = generate_clock("thermal_cycle", 3600, seed=6).covariates["temperature_c"]
    quiet_c = generate_clock("stable", 3600, seed=6).covariates["temperature_c"]
    assert np.ptp(cycling_c) > 1.0 > np.ptp(quiet_c)


def test_training_windows_are_float32_reproducible_and_diverse() -> None:
    windows = training_windows(24, 120, seed=3)
    assert windows.shape == (24, 120)
    assert windows.dtype == np.float32
    np.testing.assert_array_equal(windows, training_windows(24, 120, seed=3), strict=True)
    assert not np.array_equal(windows, training_windows(24, 120, seed=4), equal_nan=True)
    assert len({float(np.nanmean(w)) for w in windows}) > 20


def test_training_windows_reject_unknown_scenarios() -> None:
    with pytest.raises(ValueError, match="unknown"):
        training_windows(4, 10, seed=0, scenarios=("stable", "nope"))


def test_persistence_error_grows_with_horizon() -> None:
    # The corpus must carry forecastable dynamics: predicting the last value
    # is worse 60 s ahead than 1 s ahead.
    windows = training_windows(240, 660, seed=9).astype(np.float64)
    error_1s_us, error_60s_us = [], []
    for window in windows:
        context_us, future_us = window[:600], window[600:]
        if np.isnan(context_us).all() or np.isnan(future_us[[0, 59]]).any():
            continue
        forecast_us = last_value_forecast(context_us, 60)
        error_1s_us.append(abs(future_us[0] - forecast_us[0]))
        error_60s_us.append(abs(future_us[59] - forecast_us[59]))
    error_1s_us, error_60s_us = np.array(error_1s_us), np.array(error_60s_us)
    assert error_1s_us.size > 150
    # Measurement noise dominates both at short horizons, so the margin is modest.
    assert np.median(error_60s_us) > 1.05 * np.median(error_1s_us)
    assert (error_60s_us > error_1s_us).mean() > 0.55
