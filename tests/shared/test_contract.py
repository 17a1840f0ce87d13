"""The contract refuses what it must refuse, with the field and the reason."""

from __future__ import annotations

import json
import math
import sys

import pytest
from pydantic import ValidationError

from chronotick.contract import (
    DEFAULT_QUANTILE_LEVELS,
    MAX_ABS_COVARIATE,
    MAX_ABS_OFFSET_US,
    MAX_ABS_TIMESTAMP_S,
    MAX_DEADLINE_S,
    MAX_INTERVAL_S,
    MAX_POINTS_PER_SERIES,
    MAX_SERIES_PER_REQUEST,
    MIN_DEADLINE_S,
    MIN_INTERVAL_S,
    MIN_QUANTILE_LEVEL,
    FusedPredictRequest,
    ModelInfo,
    PredictRequest,
)


def request(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "series": [{"offsets_us": [1.0, 2.0, None, 4.0], "interval_s": 1.0}],
        "horizon": 5,
    }
    body.update(overrides)
    return body


def errors_of(body: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        PredictRequest.model_validate_json(json.dumps(body))
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in caught.value.errors()]


def test_minimal_request_gets_default_quantile_levels() -> None:
    parsed = PredictRequest.model_validate(request())
    assert parsed.quantile_levels == list(DEFAULT_QUANTILE_LEVELS)
    assert parsed.series[0].offsets_us == [1.0, 2.0, None, 4.0]


def test_nan_token_in_json_is_refused_not_taken_as_missing() -> None:
    raw = '{"series": [{"offsets_us": [1.0, NaN], "interval_s": 1.0}], "horizon": 5}'
    with pytest.raises(ValidationError) as caught:
        PredictRequest.model_validate_json(raw)
    assert "finite" in str(caught.value)


def test_infinity_is_refused() -> None:
    raw = '{"series": [{"offsets_us": [1.0, Infinity], "interval_s": 1.0}], "horizon": 5}'
    with pytest.raises(ValidationError):
        PredictRequest.model_validate_json(raw)


def test_series_needs_exactly_one_of_interval_and_timestamps() -> None:
    neither = errors_of(request(series=[{"offsets_us": [1.0, 2.0]}]))
    both = errors_of(request(series=[{"offsets_us": [1.0, 2.0], "interval_s": 1, "timestamps_s": [0, 1]}]))
    assert any("exactly one of interval_s or timestamps_s" in e for e in neither)
    assert any("exactly one of interval_s or timestamps_s" in e for e in both)


def test_timestamps_must_match_offsets_and_increase() -> None:
    assert any(
        "timestamps_s has 1 values" in e
        for e in errors_of(request(series=[{"offsets_us": [1.0, 2.0], "timestamps_s": [0.0]}]))
    )
    assert any(
        "strictly increasing" in e
        for e in errors_of(request(series=[{"offsets_us": [1.0, 2.0], "timestamps_s": [1.0, 1.0]}]))
    )


def test_all_missing_context_is_refused() -> None:
    assert any(
        "no observed value" in e for e in errors_of(request(series=[{"offsets_us": [None, None], "interval_s": 1.0}]))
    )


def test_empty_context_is_refused() -> None:
    assert any("offsets_us" in e for e in errors_of(request(series=[{"offsets_us": [], "interval_s": 1.0}])))


@pytest.mark.parametrize("horizon", [0, -3, 1025])
def test_horizon_out_of_range_is_refused(horizon: int) -> None:
    assert any(e.startswith("horizon") for e in errors_of(request(horizon=horizon)))


def test_horizon_of_wrong_type_is_refused() -> None:
    assert any(e.startswith("horizon") for e in errors_of(request(horizon="ten")))


def test_too_many_series_are_refused() -> None:
    series = [{"offsets_us": [1.0], "interval_s": 1.0}] * (MAX_SERIES_PER_REQUEST + 1)
    assert any(e.startswith("series") for e in errors_of(request(series=series)))


def test_too_many_points_are_refused() -> None:
    series = [{"offsets_us": [1.0] * (MAX_POINTS_PER_SERIES + 1), "interval_s": 1.0}]
    assert any("offsets_us" in e for e in errors_of(request(series=series)))


def test_covariate_past_must_align_with_offsets() -> None:
    series = [{"offsets_us": [1.0, 2.0], "interval_s": 1.0, "covariates": {"temp": {"past": [20.0]}}}]
    assert any(
        "covariate 'temp': past has 1 values but offsets_us has 2" in e for e in errors_of(request(series=series))
    )


def test_covariate_future_must_cover_the_horizon() -> None:
    series = [
        {
            "offsets_us": [1.0, 2.0],
            "interval_s": 1.0,
            "covariates": {"temp": {"past": [20.0, 21.0], "future": [22.0, 23.0]}},
        }
    ]
    assert any("future has 2 values but horizon is 5" in e for e in errors_of(request(series=series)))


@pytest.mark.parametrize("levels", [[0.5, 0.1], [0.0, 0.5], [0.5, 1.0], [0.2, 0.2]])
def test_quantile_levels_must_be_increasing_inside_zero_one(levels: list[float]) -> None:
    assert any("quantile_levels" in e for e in errors_of(request(quantile_levels=levels)))


def test_unknown_fields_are_refused_so_typos_do_not_pass_silently() -> None:
    assert any("horizn" in e for e in errors_of(request(horizn=5)))


def outside(bound: float) -> float:
    """The float just beyond ``bound``, away from zero."""
    return math.nextafter(bound, math.copysign(math.inf, bound))


def inside(bound: float) -> float:
    return math.nextafter(bound, 0.0)


@pytest.mark.parametrize("value", [MAX_ABS_OFFSET_US, -MAX_ABS_OFFSET_US, 5e-324, -sys.float_info.min, 0.0])
def test_offsets_up_to_the_bound_and_down_to_subnormals_are_accepted(value: float) -> None:
    parsed = PredictRequest.model_validate(request(series=[{"offsets_us": [1.0, value], "interval_s": 1.0}]))
    assert parsed.series[0].offsets_us == [1.0, value]


@pytest.mark.parametrize("value", [outside(MAX_ABS_OFFSET_US), outside(-MAX_ABS_OFFSET_US), 1e300, -sys.float_info.max])
def test_an_offset_beyond_the_bound_is_refused_naming_the_sample(value: float) -> None:
    errors = errors_of(request(series=[{"offsets_us": [1.0, None, value], "interval_s": 1.0}]))
    assert errors == [errors[0]] and errors[0].startswith("series.0.offsets_us.2: Input should be")


def test_covariate_values_beyond_the_bound_are_refused_naming_each_one() -> None:
    covariates = {"temp": {"past": [20.0, outside(MAX_ABS_COVARIATE)], "future": [1e300] + [MAX_ABS_COVARIATE] * 4}}
    errors = errors_of(request(series=[{"offsets_us": [1.0, 2.0], "interval_s": 1.0, "covariates": covariates}]))
    assert [e.split(":")[0] for e in errors] == ["series.0.covariates.temp.past.1", "series.0.covariates.temp.future.0"]


@pytest.mark.parametrize("interval_s", [MIN_INTERVAL_S, MAX_INTERVAL_S])
def test_the_cadence_bounds_themselves_are_accepted(interval_s: float) -> None:
    PredictRequest.model_validate(request(series=[{"offsets_us": [1.0, 2.0], "interval_s": interval_s}]))


@pytest.mark.parametrize("interval_s", [inside(MIN_INTERVAL_S), 1e-300, 5e-324, 0.0, outside(MAX_INTERVAL_S), 1e300])
def test_a_cadence_outside_a_microsecond_to_a_day_is_refused(interval_s: float) -> None:
    errors = errors_of(request(series=[{"offsets_us": [1.0, 2.0], "interval_s": interval_s}]))
    assert any(e.startswith("series.0.interval_s: Input should be") for e in errors)


def test_timestamps_up_to_the_bound_are_accepted() -> None:
    times = [-MAX_ABS_TIMESTAMP_S, MAX_ABS_TIMESTAMP_S]
    PredictRequest.model_validate(request(series=[{"offsets_us": [1.0, 2.0], "timestamps_s": times}]))


@pytest.mark.parametrize("value", [outside(MAX_ABS_TIMESTAMP_S), 1e300, sys.float_info.max])
def test_a_timestamp_beyond_the_bound_is_refused_naming_it(value: float) -> None:
    errors = errors_of(request(series=[{"offsets_us": [1.0, 2.0], "timestamps_s": [0.0, value]}]))
    assert any(e.startswith("series.0.timestamps_s.1: Input should be") for e in errors)


def test_quantile_levels_from_one_in_a_million_to_one_minus_that_are_accepted() -> None:
    levels = [MIN_QUANTILE_LEVEL, 0.5, 1.0 - MIN_QUANTILE_LEVEL]
    assert PredictRequest.model_validate(request(quantile_levels=levels)).quantile_levels == levels


@pytest.mark.parametrize(
    "levels",
    [
        [inside(MIN_QUANTILE_LEVEL), 0.5],
        [5e-324, 0.5],
        [0.5, outside(1.0 - MIN_QUANTILE_LEVEL)],
        [0.5, math.nextafter(1.0, 0.0)],
    ],
)
def test_quantile_levels_further_out_are_refused_naming_the_level(levels: list[float]) -> None:
    field = "quantile_levels.0" if levels[0] < 0.5 else "quantile_levels.1"
    assert any(e.startswith(f"{field}: Input should be") for e in errors_of(request(quantile_levels=levels)))


@pytest.mark.parametrize("deadline_s", [MIN_DEADLINE_S, MAX_DEADLINE_S])
def test_a_deadline_from_a_tenth_of_a_second_to_thirty_seconds_is_accepted(deadline_s: float) -> None:
    assert FusedPredictRequest.model_validate(request(deadline_s=deadline_s)).deadline_s == deadline_s


@pytest.mark.parametrize("deadline_s", [inside(MIN_DEADLINE_S), 5e-324, outside(MAX_DEADLINE_S)])
def test_a_deadline_outside_those_is_refused(deadline_s: float) -> None:
    with pytest.raises(ValidationError, match="deadline_s"):
        FusedPredictRequest.model_validate(request(deadline_s=deadline_s))


def model_info(**covariates: object) -> ModelInfo:
    return ModelInfo(
        name="m",
        model_id="x",
        model_version="v",
        library="numpy",
        min_context=8,
        max_context=64,
        max_horizon=8,
        native_quantile_levels=[0.5],
        **covariates,
    )


def test_a_model_knows_the_covariates_it_lists_any_when_it_lists_none_and_none_without_covariates() -> None:
    sent = ["memory_used_fraction", "cpu_load", "temperature_c"]
    listed = model_info(past_covariates=True, future_covariates=True, covariate_names=["temperature_c", "cpu_load"])
    assert listed.known_covariates(sent) == ["cpu_load", "temperature_c"]
    assert model_info(past_covariates=True, future_covariates=True).known_covariates(sent) == sorted(sent)
    assert model_info(past_covariates=False, future_covariates=False).known_covariates(sent) == []


def test_covariate_names_for_a_model_without_covariates_are_refused() -> None:
    with pytest.raises(ValidationError, match="takes no covariates"):
        model_info(past_covariates=False, future_covariates=False, covariate_names=["cpu_load"])
