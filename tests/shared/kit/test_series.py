"""Requests become model batches: grids, anchoring, limits and covariate rules."""

from __future__ import annotations

import numpy as np
import pytest

from chronotick.contract import ModelInfo, PredictRequest
from chronotick.kit.adapter import BatchForecast
from chronotick.kit.series import merge_batches, prepare_request, to_series_forecasts
from chronotick.problems import ProblemError

INFO = ModelInfo(
    name="m",
    model_id="x",
    model_version="v",
    library="numpy",
    min_context=3,
    max_context=6,
    max_horizon=4,
    native_quantile_levels=[0.1, 0.5, 0.9],
    past_covariates=False,
    future_covariates=False,
)


def parse(series: list[dict[str, object]], horizon: int = 2) -> PredictRequest:
    return PredictRequest.model_validate({"series": series, "horizon": horizon})


def refusal(request: PredictRequest, info: ModelInfo = INFO) -> str:
    with pytest.raises(ProblemError) as caught:
        prepare_request(request, info)
    assert caught.value.problem.status == 422
    errors = caught.value.problem.errors or []
    return "; ".join(f"{e['field']}: {e['reason']}" for e in errors)


def test_context_is_shifted_to_its_last_observed_value_and_shifted_back() -> None:
    request = parse([{"offsets_us": [1e6 + 1, 1e6 + 2, 1e6 + 3, None], "interval_s": 1.0}])
    prepared = prepare_request(request, INFO)
    np.testing.assert_array_equal(prepared.batch.contexts[0], [-2.0, -1.0, 0.0, np.nan])
    forecast = BatchForecast(
        levels=np.array([0.1, 0.5, 0.9]),
        quantiles=np.array([[[-1.0, -1.0], [0.5, 1.0], [2.0, 3.0]]]),
        mean=np.array([[0.5, 1.0]]),
    )
    answer = to_series_forecasts(request, prepared, forecast)[0]
    assert answer.mean_us == [1e6 + 3.5, 1e6 + 4.0]


def test_timestamps_with_a_hole_become_missing_samples_on_the_grid() -> None:
    request = parse([{"offsets_us": [1.0, 2.0, 4.0, 5.0], "timestamps_s": [10.0, 12.0, 16.1, 18.0]}])
    prepared = prepare_request(request, INFO)
    np.testing.assert_array_equal(prepared.batch.contexts[0], [-4.0, -3.0, np.nan, -1.0, 0.0])
    assert prepared.batch.interval_s == [2.0]


def test_timestamps_off_the_cadence_are_refused_with_the_sample() -> None:
    request = parse([{"offsets_us": [1.0, 2.0, 3.0, 4.0], "timestamps_s": [0.0, 1.0, 2.5, 3.0]}])
    assert "timestamps_s.2" in refusal(request)


def test_a_huge_gap_between_timestamps_is_refused_not_expanded() -> None:
    request = parse([{"offsets_us": [1.0, 2.0, 3.0, 4.0], "timestamps_s": [0.0, 1.0, 2.0, 1e7]}])
    assert "cadences" in refusal(request)


@pytest.mark.parametrize("spacing_s", [1e-7, 5e-324, 1e5])
def test_timestamps_at_a_spacing_no_interval_s_could_have_are_refused(spacing_s: float) -> None:
    request = parse([{"offsets_us": [1.0, 2.0, 3.0, 4.0], "timestamps_s": [k * spacing_s for k in range(4)]}])
    assert refusal(request).startswith(f"series.0.timestamps_s: the median spacing of {spacing_s:g} s")


def test_timestamps_near_the_bound_are_placed_on_a_sub_millisecond_grid() -> None:
    times = [1e11 - 3e-4 + k * 1e-4 for k in range(4)]  # float64 resolves 1.5e-5 s at 1e11
    prepared = prepare_request(parse([{"offsets_us": [1.0, 2.0, 3.0, 4.0], "timestamps_s": times}]), INFO)
    np.testing.assert_array_equal(prepared.batch.contexts[0], [-3.0, -2.0, -1.0, 0.0])


def test_only_the_most_recent_max_context_samples_reach_the_model() -> None:
    request = parse([{"offsets_us": list(map(float, range(10))), "interval_s": 1.0}])
    np.testing.assert_array_equal(prepare_request(request, INFO).batch.contexts[0], [-5, -4, -3, -2, -1, 0])


def test_too_few_observed_samples_are_refused() -> None:
    request = parse([{"offsets_us": [1.0, None, None, 2.0], "interval_s": 1.0}])
    assert "needs at least 3" in refusal(request)


def test_horizon_beyond_the_model_is_refused() -> None:
    assert "maximum of 4" in refusal(parse([{"offsets_us": [1.0, 2.0, 3.0], "interval_s": 1.0}], horizon=5))


def test_covariates_are_refused_by_a_model_that_cannot_use_them() -> None:
    request = parse(
        [{"offsets_us": [1.0, 2.0, 3.0], "interval_s": 1.0, "covariates": {"temp": {"past": [1.0, 2.0, 3.0]}}}]
    )
    assert "does not use covariates" in refusal(request)


def test_future_covariates_are_refused_by_a_past_only_model() -> None:
    past_only = INFO.model_copy(update={"past_covariates": True})
    request = parse(
        [
            {
                "offsets_us": [1.0, 2.0, 3.0],
                "interval_s": 1.0,
                "covariates": {"temp": {"past": [1.0, 2.0, 3.0], "future": [4.0, 5.0]}},
            }
        ]
    )
    assert "known future" in refusal(request, past_only)


def test_series_with_different_covariates_in_one_request_are_refused() -> None:
    takes_all = INFO.model_copy(update={"past_covariates": True, "future_covariates": True})
    request = parse(
        [
            {"offsets_us": [1.0, 2.0, 3.0], "interval_s": 1.0, "covariates": {"temp": {"past": [1.0, 2.0, 3.0]}}},
            {"offsets_us": [1.0, 2.0, 3.0], "interval_s": 1.0},
        ]
    )
    assert "same covariates" in refusal(request, takes_all)


def test_skip_spread_backtests_reaches_the_model_and_keeps_such_requests_in_batches_of_their_own() -> None:
    series = [{"offsets_us": [1.0, 2.0, 3.0, 4.0], "interval_s": 1.0}]
    plain = prepare_request(PredictRequest.model_validate({"series": series, "horizon": 2}), INFO)
    skipping = prepare_request(
        PredictRequest.model_validate({"series": series, "horizon": 2, "skip_spread_backtests": True}), INFO
    )
    assert not plain.batch.skip_spread_backtests and skipping.batch.skip_spread_backtests
    assert plain.grouping_key != skipping.grouping_key
    assert merge_batches([skipping.batch, skipping.batch]).skip_spread_backtests


def test_a_spike_is_flagged_and_reaches_the_model_as_a_missing_sample_unless_clean_is_off() -> None:
    offsets = [10.0 + 0.5 * k + (0.3 if k % 2 else -0.3) for k in range(60)]
    offsets[57] += 500.0  # inside the model's window of the last 6 samples
    series = [{"offsets_us": offsets, "interval_s": 1.0}]
    cleaned = prepare_request(parse(series), INFO)
    assert cleaned.flagged_outliers == [[57]]
    assert np.isnan(cleaned.batch.contexts[0][3]) and np.isfinite(cleaned.batch.contexts[0]).sum() == 5
    raw = prepare_request(PredictRequest.model_validate({"series": series, "horizon": 2, "clean": False}), INFO)
    assert raw.flagged_outliers == [[]]
    assert np.isfinite(raw.batch.contexts[0]).all()


def test_a_covariate_the_model_does_not_know_is_refused_naming_it_and_the_ones_it_knows() -> None:
    knows_two = INFO.model_copy(
        update={"past_covariates": True, "future_covariates": True, "covariate_names": ["temperature_c", "cpu_load"]}
    )
    request = parse(
        [
            {
                "offsets_us": [1.0, 2.0, 3.0],
                "interval_s": 1.0,
                "covariates": {
                    "cpu_load": {"past": [0.1, 0.2, 0.3]},
                    "memory_used_fraction": {"past": [0.5, 0.5, 0.5]},
                },
            }
        ]
    )
    assert refusal(request, knows_two) == (
        "series.0.covariates.memory_used_fraction: model 'm' does not know covariate 'memory_used_fraction'; "
        "it uses temperature_c, cpu_load"
    )
    known_only = parse(
        [{"offsets_us": [1.0, 2.0, 3.0], "interval_s": 1.0, "covariates": {"cpu_load": {"past": [0.1, 0.2, 0.3]}}}]
    )
    assert list(prepare_request(known_only, knows_two).batch.past_covariates[0]) == ["cpu_load"]


def test_a_model_that_takes_any_covariate_gets_every_name() -> None:
    takes_any = INFO.model_copy(update={"past_covariates": True, "future_covariates": True})
    request = parse(
        [
            {
                "offsets_us": [1.0, 2.0, 3.0],
                "interval_s": 1.0,
                "covariates": {
                    "cpu_load": {"past": [0.1, 0.2, 0.3]},
                    "memory_used_fraction": {"past": [0.5, 0.5, 0.5]},
                },
            }
        ]
    )
    assert sorted(prepare_request(request, takes_any).batch.past_covariates[0]) == ["cpu_load", "memory_used_fraction"]
