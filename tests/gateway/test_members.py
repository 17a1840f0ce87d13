"""Fusion members get the covariates they know and no others, and the answer says which each used;
the classical members answer each series and its backtest cuts in one call per forecaster."""

from __future__ import annotations

import asyncio
import math

import httpx
import numpy as np

from chronotick.baselines import CLASSICAL_FORECASTERS
from chronotick.contract import ModelInfo, PredictRequest
from chronotick.grid import GridSeries
from chronotick.kit import create_app as create_service
from chronotick_gateway.app import create_app
from chronotick_gateway.backtest import SeriesPlan, plan_series
from chronotick_gateway.calls import member_bodies
from chronotick_gateway.members import (
    ALWAYS_ANSWERS,
    MemberResult,
    classical_members,
    member_covariates,
)
from chronotick_gateway.settings import GatewaySettings
from support.line_family import LineFamily, LineModel
from support.servers import serve_in_thread

LENGTH = 120
HORIZON = 4


def model(name: str, *, covariates: bool, names: list[str] | None = None) -> ModelInfo:
    return ModelInfo(
        name=name,
        model_id="x",
        model_version="v",
        library="numpy",
        min_context=4,
        max_context=512,
        max_horizon=16,
        native_quantile_levels=[0.5],
        past_covariates=covariates,
        future_covariates=covariates,
        covariate_names=names,
    )


def agent_like_plan() -> SeriesPlan:
    """Offsets with the agent's covariates: cpu_load (with known future values) and memory_used_fraction."""
    grid = GridSeries(
        offsets_us=np.arange(LENGTH, dtype=float),
        interval_s=1.0,
        past_covariates={"cpu_load": np.linspace(0.0, 1.0, LENGTH), "memory_used_fraction": np.full(LENGTH, 0.4)},
        future_covariates={"cpu_load": np.full(HORIZON, 0.5)},
    )
    return plan_series(grid, HORIZON, 2, "host")


def test_a_model_that_lists_its_covariates_is_sent_only_those_of_the_request() -> None:
    plans = [agent_like_plan()]
    assert member_covariates(model("ttm-exog", covariates=True, names=["temperature_c", "cpu_load"]), plans) == (
        "cpu_load",
    )
    assert member_covariates(model("chronos-2", covariates=True), plans) == ("cpu_load", "memory_used_fraction")
    assert member_covariates(model("chronos-bolt", covariates=False), plans) == ()


def test_member_bodies_carry_only_the_named_covariates_and_future_values_only_where_named() -> None:
    plan = agent_like_plan()
    (body,) = member_bodies(
        [plan], HORIZON, "m", past_covariates={"cpu_load"}, future_covariates={"cpu_load"}, skip_spread_backtests=True
    )
    request = PredictRequest.model_validate_json(body)
    assert len(request.series) == 1 + len(plan.origins)
    assert all(set(series.covariates) == {"cpu_load"} for series in request.series)
    assert request.series[0].covariates["cpu_load"].future == [0.5] * HORIZON
    (past_only,) = member_bodies(
        [plan], HORIZON, "m", past_covariates={"cpu_load"}, future_covariates=set(), skip_spread_backtests=True
    )
    assert all(s.covariates["cpu_load"].future is None for s in PredictRequest.model_validate_json(past_only).series)


def test_an_unknown_covariate_costs_no_member_and_each_member_says_which_it_used() -> None:
    family = LineFamily()
    family.models["line-cpu"] = LineModel("line-cpu", covariates=True, covariate_names=["cpu_load"])
    series = {
        "offsets_us": [0.5 * k for k in range(64)],
        "interval_s": 1.0,
        "covariates": {
            "cpu_load": {"past": [0.3] * 64, "future": [0.3] * HORIZON},
            "memory_used_fraction": {"past": [0.4] * 64},
        },
    }
    with serve_in_thread(create_service(family)) as service:
        direct = httpx.post(f"{service}/predict", json={"series": [series], "horizon": HORIZON, "model": "line-cpu"})
        with serve_in_thread(create_app(GatewaySettings(services={"line": service}))) as gateway:
            response = httpx.post(f"{gateway}/predict", json={"series": [series], "horizon": HORIZON}, timeout=30.0)
    assert direct.status_code == 422  # the service's own contract: it refuses what it does not know
    assert direct.json()["errors"][0]["field"] == "series.0.covariates.memory_used_fraction"
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["degraded"] is False, answer["reasons"]
    used = {b["name"]: b["covariates_used"] for b in answer["backends"]}
    assert used == {
        "line": [],
        "line-cov": ["cpu_load", "memory_used_fraction"],
        "line-cpu": ["cpu_load"],
        "last-value": [],
        "chrony-fit": [],
        "kalman": [],
    }


def test_a_classical_member_forecasts_the_real_origin_then_scores_each_backtest_cut() -> None:
    rng = np.random.default_rng(6)
    offsets_us = np.cumsum(rng.normal(0.0, 1.0, 300)) + rng.normal(0.0, 0.5, 300)
    offsets_us[rng.choice(300, 20, replace=False)] = np.nan
    grid = GridSeries(offsets_us=offsets_us, interval_s=2.0, past_covariates={}, future_covariates={})
    plan = plan_series(grid, 30, 6, "host")
    results = asyncio.run(classical_members([f.name for f in CLASSICAL_FORECASTERS], [plan], 30, deadline=math.inf))
    for forecaster, result in zip(CLASSICAL_FORECASTERS, results, strict=True):
        assert result.ok and result.name == forecaster.name
        (member,) = result.forecasts
        answers = forecaster.forecast_with_backtests(offsets_us, plan.origins, 30, interval_s=2.0)
        real = forecaster.forecast(offsets_us, 30, interval_s=2.0)
        np.testing.assert_allclose(member.mean_us, real.mean_us, rtol=1e-12)
        np.testing.assert_allclose(member.std_us, real.std_us, rtol=1e-12)
        assert member.backtest_errors_us.shape == member.backtest_std_us.shape == (6, 30)
        np.testing.assert_array_equal(
            member.backtest_errors_us, plan.truth() - np.stack([a.mean_us for a in answers[1:]])
        )
        np.testing.assert_array_equal(member.backtest_std_us, np.stack([a.std_us for a in answers[1:]]))


def test_past_the_deadline_only_the_cheapest_classical_member_goes_on_so_a_huge_request_still_answers() -> None:
    rng = np.random.default_rng(7)
    plans = [
        plan_series(
            GridSeries(
                offsets_us=np.cumsum(rng.normal(0.0, 1.0, 200)),
                interval_s=1.0,
                past_covariates={},
                future_covariates={},
            ),
            10,
            6,
            f"s{i}",
        )
        for i in range(3)
    ]

    async def scenario() -> list[MemberResult]:
        # The deadline has passed already: as if the request waited that long behind others.
        names = [f.name for f in CLASSICAL_FORECASTERS]
        return await classical_members(names, plans, 10, asyncio.get_running_loop().time())

    results = {r.name: r for r in asyncio.run(scenario())}
    assert results[ALWAYS_ANSWERS].ok and len(results[ALWAYS_ANSWERS].forecasts) == 3
    for name in ("chrony-fit", "kalman"):
        assert results[name].status == "timeout" and "after 0 of 3 series" in results[name].reason
