"""Fusion members: a model of a family service, or a classical forecaster run in the gateway.

Every member forecasts the real origin and the backtest origins of each series (``backtest``)
and returns one ``MemberForecast`` per series, or a status that says why it could not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np

from chronotick.baselines import ClassicalForecaster
from chronotick.contract import BackendStatus, ModelInfo
from chronotick_gateway.backtest import SeriesPlan
from chronotick_gateway.fleet import BackendError, Fleet, Service, encode_json
from chronotick_gateway.fusion import MemberForecast
from chronotick_gateway.settings import GatewaySettings

# The classical member that finishes every series, past the deadline too: the cheapest.
ALWAYS_ANSWERS = "last-value"
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
    covariates_used: tuple[str, ...] = ()
    age_s: float | None = None  # not asked: its kept forecast from this much earlier, re-anchored (``reuse``)

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


def member_covariates(model: ModelInfo, plans: list[SeriesPlan]) -> tuple[str, ...]:
    """The request's covariates that ``model`` knows, sorted: the only ones it is sent.

    A model refuses a covariate it was not trained with (ttm-exog knows temperature_c and cpu_load
    only); one such name in a request must cost the fusion nothing, so it is simply not sent.
    """
    return tuple(model.known_covariates({name for plan in plans for name in plan.grid.past_covariates}))


def member_bodies(
    plans: list[SeriesPlan], horizon: int, model: str, *, past_covariates: AbstractSet[str],
    future_covariates: AbstractSet[str], skip_spread_backtests: bool,
) -> list[bytes]:
    """The encoded requests that ask ``model`` for every series and its backtest cuts, in order,
    in as few calls as fit under the services' limits.

    Each series carries only the covariates named in ``past_covariates`` (those the model knows:
    ``member_covariates``), with their known future values where also named in ``future_covariates``;
    a model without covariates forecasts from the offsets alone.
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
    settings: GatewaySettings, reach: int | None = None,
) -> MemberResult:
    """Ask one model of a service for every series and its backtests, in as few calls as fit, under
    the ``settings`` the request started with. With ``reach`` (of a request without backtests), its
    forecasts go that many steps ahead, ``horizon`` at least, as far as the model goes in the passes
    the horizon takes anyway: the steps past the horizon are for the forecast's reuse (``reuse``),
    not for the answer."""
    if horizon > model.max_horizon:
        return MemberResult(model.name, service.name, "skipped",
                            f"horizon {horizon} is beyond its maximum of {model.max_horizon}")
    # A context the model cannot read is no failure of the model: it sits this one out (an agent's
    # first forecasts, before its window has filled, must not come back degraded).
    for index, plan in enumerate(plans):
        observed = int(np.count_nonzero(~np.isnan(plan.grid.offsets_us[-model.max_context:])))
        if observed < model.min_context:
            return MemberResult(model.name, service.name, "skipped",
                                f"series {index} has {observed} observed samples; it needs at least {model.min_context}")
    refusal = service.load.refuses(deadline - asyncio.get_running_loop().time())
    if refusal is not None:  # not worth encoding: the call would not be sent
        fleet.metrics.overloaded.labels(backend=model.name).inc()
        return MemberResult(model.name, service.name, "overloaded", refusal)
    started = time.perf_counter()
    horizon = max(horizon, min(reach or horizon, model.one_pass_horizon or model.max_horizon))
    covariates = member_covariates(model, plans)
    bodies = member_bodies(plans, horizon, model.name, past_covariates=set(covariates),
                           future_covariates=set(covariates) if model.future_covariates else set(),
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
                        max(r.retries for r in results), forecasts, covariates_used=covariates)


async def classical_members(
    forecasters: list[ClassicalForecaster], plans: list[SeriesPlan], horizon: int, deadline: float
) -> list[MemberResult]:
    """The classical forecasters on every series and its backtests, on the event loop itself.

    They are the fallback that must always answer, so they are never queued: in worker threads,
    under load, they waited behind each other and the GIL until the deadline had passed (and the
    gateway answered 503 with its models busy). Here each series costs a few milliseconds of the
    loop, paid at once; between series the loop serves the other requests, so a request with many
    series does not stall them. Each forecaster answers a series and all its backtest cuts in one
    call (``forecast_with_backtests``), which shares their work: about a third of the cost of a
    forecast per cut. A failure (a backtest context with no observed sample, say) fails that member
    only. Once the ``deadline`` (event-loop time) has passed, only ``ALWAYS_ANSWERS`` goes on (a
    fraction of a millisecond per series), so even a request far too large for its deadline gets
    an answer, about on time, and the loop is not held from the other requests.
    """
    loop = asyncio.get_running_loop()
    elapsed_s = dict.fromkeys((f.name for f in forecasters), 0.0)
    forecasts: dict[str, list[MemberForecast]] = {f.name: [] for f in forecasters}
    failures: dict[str, tuple[BackendStatus, str]] = {}
    for index, plan in enumerate(plans):
        late = loop.time() > deadline
        for forecaster in forecasters:
            if forecaster.name in failures:
                continue
            if late and forecaster.name != ALWAYS_ANSWERS:
                failures[forecaster.name] = ("timeout", f"the deadline passed after {index} of {len(plans)} series")
                continue
            started = time.perf_counter()
            try:
                results = forecaster.forecast_with_backtests(
                    plan.context(None), plan.origins, horizon, interval_s=plan.grid.interval_s
                )
                answers = [(result.mean_us, result.std_us) for result in results]
                forecasts[forecaster.name].append(_member_forecast(plan, answers))
            except ValueError as error:
                failures[forecaster.name] = ("failed", str(error))
            elapsed_s[forecaster.name] += time.perf_counter() - started
        await asyncio.sleep(0)
    return [
        MemberResult(f.name, None, *failures[f.name], elapsed_s[f.name]) if f.name in failures
        else MemberResult(f.name, None, "ok", None, elapsed_s[f.name], 0, forecasts[f.name])
        for f in forecasters
    ]
