"""The contract refuses what it must refuse, with the field and the reason."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from chronotick.contract import (
    DEFAULT_QUANTILE_LEVELS,
    MAX_POINTS_PER_SERIES,
    MAX_SERIES_PER_REQUEST,
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
    assert any("timestamps_s has 1 values" in e for e in errors_of(
        request(series=[{"offsets_us": [1.0, 2.0], "timestamps_s": [0.0]}])))
    assert any("strictly increasing" in e for e in errors_of(
        request(series=[{"offsets_us": [1.0, 2.0], "timestamps_s": [1.0, 1.0]}])))


def test_all_missing_context_is_refused() -> None:
    assert any("no observed value" in e for e in errors_of(
        request(series=[{"offsets_us": [None, None], "interval_s": 1.0}])))


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
    assert any("covariate 'temp': past has 1 values but offsets_us has 2" in e for e in errors_of(request(series=series)))


def test_covariate_future_must_cover_the_horizon() -> None:
    series = [{"offsets_us": [1.0, 2.0], "interval_s": 1.0,
               "covariates": {"temp": {"past": [20.0, 21.0], "future": [22.0, 23.0]}}}]
    assert any("future has 2 values but horizon is 5" in e for e in errors_of(request(series=series)))


@pytest.mark.parametrize("levels", [[0.5, 0.1], [0.0, 0.5], [0.5, 1.0], [0.2, 0.2]])
def test_quantile_levels_must_be_increasing_inside_zero_one(levels: list[float]) -> None:
    assert any("quantile_levels" in e for e in errors_of(request(quantile_levels=levels)))


def test_unknown_fields_are_refused_so_typos_do_not_pass_silently() -> None:
    assert any("horizn" in e for e in errors_of(request(horizn=5)))
