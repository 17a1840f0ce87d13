"""The kit's one input scaling: contexts in units of their own step, answers mapped back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from chronotick.contract import ModelInfo, PredictRequest
from chronotick.kit.adapter import BatchForecast
from chronotick.kit.scaling import (
    INPUT_CLIP,
    SCALE_FLOOR_US,
    as_offsets,
    covariate_changes,
    covariate_changes_by_name,
    input_scaling,
    scale_context,
    scale_windows,
    step_scale_us,
    steps_between,
)
from chronotick.kit.series import prepare_request, to_series_forecasts

SCALED = ModelInfo(
    name="m",
    model_id="x",
    model_version="v",
    library="numpy",
    min_context=3,
    max_context=8,
    max_horizon=4,
    native_quantile_levels=[0.1, 0.5, 0.9],
    past_covariates=False,
    future_covariates=False,
    input_scaling="last-value-mad",
)


def test_the_step_scale_is_the_mean_absolute_step_between_observed_neighbours() -> None:
    # Steps 2, -1 and 4; the pairs around the gap are not steps.
    assert step_scale_us(np.array([0.0, 2.0, 1.0, np.nan, 7.0, 11.0])) == pytest.approx(7 / 3)
    np.testing.assert_allclose(step_scale_us(np.array([[1.0, 1.0, 1.0], [0.0, 3.0, 0.0]])), [SCALE_FLOOR_US, 3.0])


def test_a_context_in_kit_units_has_unit_motion_and_ends_at_zero() -> None:
    anchored = np.array([-40.0, -30.0, np.nan, -10.0, 0.0])
    scaled, scale_us = scale_context(anchored, "last-value-mad")
    assert scale_us == pytest.approx(10.0)
    np.testing.assert_allclose(scaled, [-4.0, -3.0, np.nan, -1.0, 0.0])
    unchanged, one = scale_context(anchored, "anchored")
    assert one == 1.0 and unchanged is anchored


def test_a_level_far_beyond_the_typical_step_is_clipped() -> None:
    # One servo step of 10 s in 2000 samples: the mean step is 5 ms, the old level 2000 of them away.
    anchored = np.concatenate([np.full(1000, -1e7), np.zeros(1001)])
    scaled, scale_us = scale_context(anchored, "last-value-mad")
    assert scale_us == pytest.approx(5e3)
    assert scaled.min() == -INPUT_CLIP


def test_the_service_scales_a_request_as_the_trainers_scale_a_crop() -> None:
    offsets = [1e6 + v for v in (0.0, 3.0, 5.0, 4.0, 8.0)]
    request = PredictRequest.model_validate({"series": [{"offsets_us": offsets, "interval_s": 1.0}], "horizon": 2})
    prepared = prepare_request(request, SCALED)
    relative = np.array(offsets)[None, :] - offsets[-1]
    trained_past, _, trained_scale_us = scale_windows(relative, np.zeros((1, 2)))
    np.testing.assert_allclose(trained_scale_us, prepared.scales_us)
    np.testing.assert_allclose(prepared.batch.contexts[0], trained_past[0])
    assert prepared.scales_us[0] == pytest.approx(2.5)  # steps 3, 2, 1, 4


def decile_request(horizon: int) -> PredictRequest:
    """A clock whose last value is 1e6 + 8 us and whose mean step is 2.5 us, asking for 3 quantiles."""
    offsets = [1e6 + v for v in (0.0, 3.0, 5.0, 4.0, 8.0)]
    return PredictRequest.model_validate(
        {"series": [{"offsets_us": offsets, "interval_s": 1.0}], "horizon": horizon, "quantile_levels": [0.1, 0.5, 0.9]}
    )


def test_an_answer_in_kit_units_maps_back_to_microseconds_exactly() -> None:
    request = decile_request(horizon=2)
    prepared = prepare_request(request, SCALED)
    forecast = BatchForecast(
        levels=np.array([0.1, 0.5, 0.9]),
        quantiles=np.array([[[-1.0, -2.0], [0.0, 1.0], [1.0, 4.0]]]),
        mean=np.array([[0.0, 1.0]]),
    )
    answer = to_series_forecasts(request, prepared, forecast)[0]
    assert answer.mean_us == pytest.approx([1e6 + 8, 1e6 + 10.5])
    np.testing.assert_allclose(answer.quantiles_us, 1e6 + np.array([[5.5, 3.0], [8.0, 10.5], [10.5, 18.0]]))
    anchored = SCALED.model_copy(update={"input_scaling": "anchored"})
    unscaled = to_series_forecasts(request, prepare_request(request, anchored), forecast)[0]
    np.testing.assert_allclose(answer.std_us, np.array(unscaled.std_us) * 2.5)


def test_covariates_are_changes_since_their_last_past_value_in_physical_units() -> None:
    past = np.array([[20.0, np.nan, 22.0], [0.5, 0.25, 0.75]])
    future = np.array([[23.0, np.nan], [1.0, 0.75]])
    past_changes, future_changes = covariate_changes(["temperature_c", "cpu_load"], past, future)
    np.testing.assert_allclose(past_changes, [[-2.0, -2.0, 0.0], [-1.0, -2.0, 0.0]])
    assert future_changes is not None
    np.testing.assert_allclose(future_changes, [[1.0, np.nan], [1.0, 0.0]])


def test_a_checkpoint_without_the_key_keeps_its_library_normalisation() -> None:
    assert input_scaling({"architectures": ["X"]}) == "anchored"
    assert input_scaling({"chronotick_input_scaling": "last-value-mad"}) == "last-value-mad"
    with pytest.raises(ValueError, match="chronotick_input_scaling"):
        input_scaling({"chronotick_input_scaling": "zscore"})


def test_covariates_by_name_keep_their_names_and_only_the_futures_that_are_known() -> None:
    past = {"temperature_c": np.array([20.0, 22.0]), "cpu_load": np.array([0.5, 0.75])}
    past_changes, future_changes = covariate_changes_by_name(past, {"cpu_load": np.array([1.0, 0.5])}, 2)
    np.testing.assert_allclose(past_changes["temperature_c"], [-2.0, 0.0])
    np.testing.assert_allclose(past_changes["cpu_load"], [-1.0, 0.0])
    assert list(future_changes) == ["cpu_load"]
    np.testing.assert_allclose(future_changes["cpu_load"], [1.0, -1.0])


STEPS = SCALED.model_copy(update={"input_scaling": "first-differences"})


def test_steps_bridge_interior_gaps_hold_the_end_and_start_after_the_first_observation() -> None:
    levels = np.array([np.nan, np.nan, 1.0, 3.0, np.nan, np.nan, 9.0, 10.0, np.nan])
    np.testing.assert_allclose(steps_between(levels), [np.nan, np.nan, np.nan, 2.0, 2.0, 2.0, 2.0, 1.0, 0.0])
    # Row by row, and a row with nothing observed stays all NaN.
    both = steps_between(np.array([[0.0, 1.0, 3.0], [np.nan, np.nan, np.nan]]))
    np.testing.assert_allclose(both, [[np.nan, 1.0, 2.0], [np.nan, np.nan, np.nan]])


def test_first_differences_are_the_steps_of_the_kit_units_and_sum_back_to_the_context() -> None:
    anchored = np.array([-40.0, -30.0, np.nan, -10.0, 0.0])
    steps, scale_us = scale_context(anchored, "first-differences")
    assert scale_us == pytest.approx(10.0)  # the same unit as last-value-mad
    np.testing.assert_allclose(steps, [np.nan, 1.0, 1.0, 1.0, 1.0])
    # Summed from the first observation, the steps retrace the context (its gap bridged) and end at 0.
    np.testing.assert_allclose(np.nancumsum(steps) * scale_us + anchored[0], [-40.0, -30.0, -20.0, -10.0, 0.0])


def test_the_service_hands_a_steps_checkpoint_what_its_trainer_hands_it() -> None:
    offsets = [1e6 + v for v in (0.0, 3.0, 5.0, 4.0, 8.0)]
    request = PredictRequest.model_validate({"series": [{"offsets_us": offsets, "interval_s": 1.0}], "horizon": 2})
    prepared = prepare_request(request, STEPS)
    relative = np.array(offsets)[None, :] - offsets[-1]
    trained_past, trained_future, trained_scale_us = scale_windows(
        relative, np.array([[2.5, 5.0]]), "first-differences"
    )
    np.testing.assert_allclose(trained_scale_us, prepared.scales_us)
    np.testing.assert_allclose(prepared.batch.contexts[0], trained_past[0])
    np.testing.assert_allclose(trained_past[0], [np.nan, 1.2, 0.8, -0.4, 1.6])
    np.testing.assert_allclose(trained_future, [[1.0, 2.0]])  # the targets stay offsets, in the same unit
    with pytest.raises(ValueError, match="anchored"):
        scale_windows(relative, np.zeros((1, 2)), "anchored")


def test_answered_steps_are_summed_into_offsets_and_crossing_quantile_paths_resorted() -> None:
    request = decile_request(horizon=3)
    prepared = prepare_request(request, STEPS)
    # Step quantiles whose sums cross at the third step (0.1 path: -1, -1, +4 -> -1, -2, 2; 0.5 path: 0, 1, 0).
    forecast = BatchForecast(
        levels=np.array([0.1, 0.5, 0.9]),
        quantiles=np.array([[[-1.0, -1.0, 4.0], [0.0, 1.0, 0.0], [1.0, 2.0, 0.5]]]),
        mean=np.array([[0.0, 1.0, 0.0]]),
    )
    answer = to_series_forecasts(request, prepared, forecast)[0]
    assert answer.mean_us == pytest.approx([1e6 + 8, 1e6 + 10.5, 1e6 + 10.5])
    np.testing.assert_allclose(
        answer.quantiles_us, 1e6 + 8 + 2.5 * np.array([[-1.0, -2.0, 1.0], [0.0, 1.0, 2.0], [1.0, 3.0, 3.5]])
    )
    # The same answer from a model of another scaling is taken as offsets already: summing is the steps' alone.
    summed = as_offsets(forecast, "first-differences")
    assert as_offsets(summed, "last-value-mad") is summed
    np.testing.assert_allclose(summed.mean, [[0.0, 1.0, 1.0]])
