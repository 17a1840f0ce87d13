"""Rolling-origin backtest plans on the tail of a request's context."""

from __future__ import annotations

import numpy as np

from chronotick.backtest import MIN_BACKTEST_OBSERVATIONS, backtest_origins
from chronotick.contract import PredictRequest
from chronotick.grid import GridSeries
from chronotick_gateway.backtest import plan_series
from chronotick_gateway.calls import MAX_POINTS_PER_CALL, member_bodies


def grid(
    values: np.ndarray, past: dict[str, np.ndarray] | None = None, future: dict[str, np.ndarray] | None = None
) -> GridSeries:
    return GridSeries(offsets_us=values, interval_s=1.0, past_covariates=past or {}, future_covariates=future or {})


def test_origins_leave_a_full_horizon_of_truth_after_each() -> None:
    origins = backtest_origins(np.zeros(200), horizon=20, count=4)
    assert origins == (180, 170, 160, 150)


def test_origins_with_too_little_history_are_dropped() -> None:
    origins = backtest_origins(np.zeros(100), horizon=60, count=6)
    assert all(o >= MIN_BACKTEST_OBSERVATIONS for o in origins) and origins == (40,)


def test_truth_is_the_observed_values_after_each_origin() -> None:
    values = np.arange(100, dtype=float)
    plan = plan_series(grid(values), horizon=3, count=2, series_id="a")
    np.testing.assert_array_equal(plan.truth(), [[97, 98, 99], [95, 96, 97]])


def test_a_backtest_gets_its_future_covariates_from_hindsight_with_gaps_filled() -> None:
    values = np.arange(60, dtype=float)
    load = np.arange(60, dtype=float)
    load[53] = np.nan
    plan = plan_series(grid(values, {"load": load}, {"load": np.full(4, 7.0)}), horizon=4, count=3, series_id=None)
    cut = plan.series_body(plan.origins[2], past_covariates={"load"}, future_covariates={"load"})
    assert plan.origins == (56, 54, 52) and len(cut["offsets_us"]) == 52
    assert cut["covariates"]["load"]["future"] == [52.0, 52.0, 54.0, 55.0]
    real = plan.series_body(None, past_covariates={"load"}, future_covariates={"load"})
    assert real["covariates"]["load"]["future"] == [7.0] * 4


def test_models_without_covariates_get_none() -> None:
    values = np.arange(60, dtype=float)
    plan = plan_series(grid(values, {"load": values}), horizon=4, count=1, series_id=None)
    assert "covariates" not in plan.series_body(None, past_covariates=set(), future_covariates=set())


def test_member_bodies_are_contract_requests_with_missing_samples_as_null() -> None:
    values = np.arange(120, dtype=float)
    values[[5, 90]] = np.nan
    load = np.linspace(0.0, 1.0, 120)
    plan = plan_series(grid(values, {"load": load}, {"load": np.full(4, 7.0)}), horizon=4, count=2, series_id="a")
    (body,) = member_bodies(
        [plan], 4, "m", past_covariates={"load"}, future_covariates={"load"}, skip_spread_backtests=True
    )
    assert b"NaN" not in body
    request = PredictRequest.model_validate_json(body)
    assert request.model == "m" and request.horizon == 4 and len(request.series) == 3 and request.skip_spread_backtests
    real, cut = request.series[0], request.series[2]
    assert real.id == "a" and real.offsets_us[5] is None and real.offsets_us[90] is None
    assert real.offsets_us[:5] == [0.0, 1.0, 2.0, 3.0, 4.0] and len(cut.offsets_us) == plan.origins[1]
    assert real.covariates["load"].past == load.tolist() and real.covariates["load"].future == [7.0] * 4


def test_member_bodies_split_into_calls_within_the_services_limits() -> None:
    plans = [plan_series(grid(np.arange(600, dtype=float)), horizon=4, count=6, series_id=str(i)) for i in range(40)]
    bodies = member_bodies(plans, 4, "m", past_covariates=set(), future_covariates=set(), skip_spread_backtests=False)
    requests = [PredictRequest.model_validate_json(body) for body in bodies]
    assert len(requests) > 1
    assert all(sum(len(s.offsets_us) for s in r.series) <= MAX_POINTS_PER_CALL for r in requests)
    assert [s.id for r in requests for s in r.series] == [str(i) for i in range(40) for _ in range(7)]
