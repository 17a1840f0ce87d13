"""Fusion members: a model of a family service, or a classical forecaster run in the gateway.

Every member forecasts the real origin and the backtest origins of each series (``backtest``)
and returns one ``MemberForecast`` per series, or a status that says why it could not.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from chronotick.baselines import ClassicalForecaster
from chronotick.contract import BackendStatus, ModelInfo
from chronotick_gateway.backtest import SeriesPlan
from chronotick_gateway.fleet import BackendError, Fleet, Service, encode_json
from chronotick_gateway.fusion import MemberForecast
from chronotick_gateway.settings import GatewaySettings

# A backend call stays well under the services' limits (256 series, 2 MB body).
MAX_SERIES_PER_CALL = 256
MAX_POINTS_PER_CALL = 120_000


@dataclass(frozen=True)
class MemberResult:
    name: str
    service: str | None
    status: BackendStatus
    reason: str | None = None
    latency_s: float | None = None
    retries: int = 0
    forecasts: list[MemberForecast] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _member_forecast(plan: SeriesPlan, answers: list[tuple[np.ndarray, np.ndarray]]) -> MemberForecast:
    """``answers``: (mean, std) at the real origin, then at each backtest origin."""
    (mean, std), backtests = answers[0], answers[1:]
    horizon = plan.horizon
    if backtests:
        errors = plan.truth() - np.stack([m for m, _ in backtests])
        stds = np.stack([s for _, s in backtests])
    else:
        errors = stds = np.empty((0, horizon))
    return MemberForecast(mean_us=mean, std_us=std, backtest_errors_us=errors, backtest_std_us=stds)


def member_bodies(
    plans: list[SeriesPlan], horizon: int, model: str, *, past_covariates: bool, future_covariates: bool,
    skip_spread_backtests: bool,
) -> list[bytes]:
    """The encoded requests that ask ``model`` for every series and its backtest cuts, in order,
    in as few calls as fit under the services' limits.

    Covariates go only to a model that uses them; the others forecast from the offsets alone.
    ``skip_spread_backtests`` is the contract's: the gateway calibrates the spread itself. The
    series were cleaned by the gateway already (``clean`` off: no second pass, and a backtest cut
    ending in what the full series shows to be a spike keeps the gateway's verdict).
    """
    chunks: list[list[dict[str, object]]] = [[]]
    points = 0
    for plan in plans:
        for origin in (None, *plan.origins):
            item = plan.series_body(origin, past_covariates=past_covariates, future_covariates=future_covariates)
            size = len(item["offsets_us"]) * (1 + len(item.get("covariates", {})))
            if chunks[-1] and (len(chunks[-1]) >= MAX_SERIES_PER_CALL or points + size > MAX_POINTS_PER_CALL):
                chunks.append([])
                points = 0
            chunks[-1].append(item)
            points += size
    return [
        encode_json({"series": chunk, "horizon": horizon, "quantile_levels": [0.5], "model": model,
                     "skip_spread_backtests": skip_spread_backtests, "clean": False})
        for chunk in chunks
    ]


async def remote_member(
    fleet: Fleet, service: Service, model: ModelInfo, plans: list[SeriesPlan], horizon: int, deadline: float,
    settings: GatewaySettings,
) -> MemberResult:
    """Ask one model of a service for every series and its backtests, in as few calls as fit, under
    the ``settings`` the request started with."""
    if horizon > model.max_horizon:
        return MemberResult(model.name, service.name, "skipped",
                            f"horizon {horizon} is beyond its maximum of {model.max_horizon}")
    started = time.perf_counter()
    bodies = member_bodies(plans, horizon, model.name, past_covariates=model.past_covariates,
                           future_covariates=model.future_covariates,
                           skip_spread_backtests=settings.skip_spread_backtests)
    calls = [fleet.predict(service, body, deadline, model.name, settings) for body in bodies]
    try:
        results = await asyncio.gather(*calls)
    except BackendError as error:
        return MemberResult(model.name, service.name, error.status, error.reason,
                            time.perf_counter() - started, error.retries)
    answers = [f for result in results for f in result.response.forecasts]
    if len(answers) != sum(1 + len(plan.origins) for plan in plans) or any(len(a.mean_us) != horizon or len(a.std_us) != horizon for a in answers):
        return MemberResult(model.name, service.name, "failed", "answer does not match the request's shape",
                            time.perf_counter() - started)
    pairs = iter([(np.asarray(a.mean_us), np.asarray(a.std_us)) for a in answers])
    forecasts = [_member_forecast(plan, [next(pairs) for _ in range(1 + len(plan.origins))]) for plan in plans]
    fleet.metrics.backend_seconds.labels(backend=model.name).observe(time.perf_counter() - started)
    return MemberResult(model.name, service.name, "ok", None, time.perf_counter() - started,
                        max(r.retries for r in results), forecasts)


def classical_member(forecaster: ClassicalForecaster, plans: list[SeriesPlan], horizon: int) -> MemberResult:
    """A classical forecaster on every series and its backtests, in the gateway's own process."""
    started = time.perf_counter()
    forecasts = []
    try:
        for plan in plans:
            answers = []
            for origin in (None, *plan.origins):
                result = forecaster.forecast(plan.context(origin), horizon, interval_s=plan.grid.interval_s)
                answers.append((result.mean_us, result.std_us))
            forecasts.append(_member_forecast(plan, answers))
    except ValueError as error:  # e.g. a backtest context with no observed sample
        return MemberResult(forecaster.name, None, "failed", str(error), time.perf_counter() - started)
    return MemberResult(forecaster.name, None, "ok", None, time.perf_counter() - started, 0, forecasts)

