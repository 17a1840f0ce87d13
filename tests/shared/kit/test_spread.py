"""Quantiles for models that give samples or a single value per step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from chronotick.contract import ModelInfo
from chronotick.kit.adapter import ModelBatch
from chronotick.kit.spread import SPREAD_LEVELS, ResidualSpread, quantiles_from_samples

INFO = ModelInfo(
    name="p",
    model_id="x",
    model_version="v",
    library="numpy",
    min_context=2,
    max_context=512,
    max_horizon=64,
    native_quantile_levels=SPREAD_LEVELS.tolist(),
    past_covariates=False,
    future_covariates=False,
)


class LastValuePoint:
    """Repeats the last observed value; records the contexts it was shown."""

    info = INFO

    def __init__(self) -> None:
        self.seen: list[int] = []

    def point_forecast(self, batch: ModelBatch) -> np.ndarray:
        self.seen.append(len(batch))
        last = [c[np.flatnonzero(~np.isnan(c))[-1]] for c in batch.contexts]
        return np.repeat(np.array(last)[:, None], batch.horizon, axis=1)


def batch_of(*contexts: np.ndarray, horizon: int = 10) -> ModelBatch:
    return ModelBatch(
        contexts=[c - c[~np.isnan(c)][-1] for c in contexts], horizon=horizon, interval_s=[1.0] * len(contexts)
    )


def test_sample_quantiles_are_the_samples_own() -> None:
    samples = np.random.default_rng(0).normal(5.0, 2.0, (3, 4000, 6))
    forecast = quantiles_from_samples(samples)
    median = forecast.quantiles[:, list(SPREAD_LEVELS).index(0.5)]
    np.testing.assert_allclose(median, 5.0, atol=0.15)
    np.testing.assert_allclose(forecast.mean, 5.0, atol=0.1)
    assert np.all(np.diff(forecast.quantiles, axis=1) >= 0)


def test_residual_spread_runs_backtests_in_the_same_model_call() -> None:
    model = LastValuePoint()
    ResidualSpread(model, origins=4).forecast(batch_of(np.arange(200.0), np.arange(300.0)))
    assert model.seen == [2 + 4 + 4]


def test_residual_spread_matches_the_errors_of_a_random_walk() -> None:
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(0, 1.0, 4000))
    forecast = ResidualSpread(LastValuePoint(), origins=32).forecast(batch_of(walk, horizon=16))
    std = forecast.quantiles[0, -1] - forecast.quantiles[0, 5]
    z95 = 1.6448536269514722
    # Random-walk errors grow like sqrt(h): about 1 at h=1 and 4 at h=16 (32 origins: rough).
    assert 2.0 < std[-1] / z95 < 7.0
    assert np.all(np.diff(forecast.quantiles[0, -1] - forecast.mean[0]) >= -1e-12)


def test_a_perfect_forecaster_gets_a_tight_spread() -> None:
    forecast = ResidualSpread(LastValuePoint()).forecast(batch_of(np.full(300, 7.0)))
    assert np.all(forecast.quantiles[0, -1] - forecast.quantiles[0, 0] < 1e-3)


def test_a_short_context_falls_back_to_a_random_walk_bound() -> None:
    context = np.array([0.0, 1.0, 0.0, 2.0, 1.0, 3.0, 2.0, 4.0])
    forecast = ResidualSpread(LastValuePoint()).forecast(batch_of(context, horizon=3))
    spread = forecast.quantiles[0, -1] - forecast.quantiles[0, 0]
    assert np.all(spread > 0.5) and np.all(np.diff(spread) >= 0)


def test_skip_spread_backtests_makes_no_extra_model_call_and_answers_the_random_walk_spread() -> None:
    model = LastValuePoint()
    line = np.arange(300.0)  # every h-step change is exactly h
    plain = ResidualSpread(model, origins=4).forecast(batch_of(line, np.arange(200.0)))
    batch = replace(batch_of(line, np.arange(200.0)), skip_spread_backtests=True)
    skipping = ResidualSpread(model, origins=4).forecast(batch)
    assert model.seen == [2 + 4 + 4, 2]
    np.testing.assert_array_equal(skipping.mean, plain.mean)
    z95 = 1.6448536269514722
    upper = list(SPREAD_LEVELS).index(0.95)
    np.testing.assert_allclose((skipping.quantiles[:, upper] - skipping.mean) / z95, [np.arange(1.0, 11.0)] * 2)
