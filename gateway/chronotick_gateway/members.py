"""Fusion members: a model of a family service, or a classical forecaster run in the gateway.

Every member forecasts the real origin and the backtest origins of each series (``backtest``)
and returns one ``MemberForecast`` per series, or a status that says why it could not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chronotick.baselines import CLASSICAL_FORECASTERS
from chronotick.contract import BackendStatus, ModelInfo
from chronotick_gateway.backtest import SeriesPlan
from chronotick_gateway.calls import CallCoalescer, CallKind, member_items
from chronotick_gateway.fleet import BackendError, Service
from chronotick_gateway.fusion import MemberForecast
from chronotick_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from chronotick_gateway.classical_helper import ClassicalHelper

CLASSICAL_BY_NAME = {forecaster.name: forecaster for forecaster in CLASSICAL_FORECASTERS}
# The classical member that finishes every series, past the deadline too: the cheapest.
ALWAYS_ANSWERS = "last-value"


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


async def remote_member(
    calls: CallCoalescer,
    service: Service,
    model: ModelInfo,
    plans: list[SeriesPlan],
    horizon: int,
    deadline: float,
    settings: GatewaySettings,
    reach: int | None = None,
) -> MemberResult:
    """Ask one model of a service for every series and its backtests, under the ``settings`` the
    request started with, in the calls that ``calls`` sends (with other requests' series, when they
    want the same model at the same time). With ``reach`` (of a request without backtests), its
    forecasts go that many steps ahead, ``horizon`` at least, as far as the model goes in the passes
    the horizon takes anyway: the steps past the horizon are for the forecast's reuse (``reuse``),
    not for the answer."""
    if horizon > model.max_horizon:
        return MemberResult(
            model.name, service.name, "skipped", f"horizon {horizon} is beyond its maximum of {model.max_horizon}"
        )
    # A context the model cannot read is no failure of the model: it sits this one out (an agent's
    # first forecasts, before its window has filled, must not come back degraded).
    for index, plan in enumerate(plans):
        observed = int(np.count_nonzero(~np.isnan(plan.grid.offsets_us[-model.max_context :])))
        if observed < model.min_context:
            return MemberResult(
                model.name,
                service.name,
                "skipped",
                f"series {index} has {observed} observed samples; it needs at least {model.min_context}",
            )
    refusal = service.load.refuses(deadline - asyncio.get_running_loop().time())
    if refusal is not None:  # not worth encoding: the call would not be sent
        calls.fleet.metrics.overloaded.labels(backend=model.name).inc()
        return MemberResult(model.name, service.name, "overloaded", refusal)
    started = time.perf_counter()
    horizon = max(horizon, min(reach or horizon, model.one_pass_horizon or model.max_horizon))
    covariates = member_covariates(model, plans)
    items = member_items(
        plans, past_covariates=set(covariates), future_covariates=set(covariates) if model.future_covariates else set()
    )
    kind = CallKind(service.name, service.url, model.name, horizon, covariates, settings.skip_spread_backtests)
    try:
        answers, retries = await calls.forecast(service, kind, items, deadline, settings)
    except BackendError as error:
        return MemberResult(
            model.name, service.name, error.status, error.reason, time.perf_counter() - started, error.retries
        )
    if any(len(a.mean_us) != horizon or len(a.std_us) != horizon for a in answers):
        return MemberResult(
            model.name,
            service.name,
            "failed",
            "answer does not match the request's shape",
            time.perf_counter() - started,
        )
    pairs = iter([(np.asarray(a.mean_us), np.asarray(a.std_us)) for a in answers])
    forecasts = [_member_forecast(plan, [next(pairs) for _ in range(1 + len(plan.origins))]) for plan in plans]
    calls.fleet.metrics.backend_seconds.labels(backend=model.name).observe(time.perf_counter() - started)
    return MemberResult(
        model.name,
        service.name,
        "ok",
        None,
        time.perf_counter() - started,
        retries,
        forecasts,
        covariates_used=covariates,
    )


@dataclass(frozen=True)
class ClassicalSeries:
    """One series as the classical forecasters take it: picklable, to go to the helper process."""

    context_us: np.ndarray
    origins: tuple[int, ...]
    interval_s: float


def classical_series(plans: list[SeriesPlan]) -> list[ClassicalSeries]:
    return [ClassicalSeries(plan.context(None), plan.origins, plan.grid.interval_s) for plan in plans]


@dataclass
class ClassicalRun:
    """What the classical forecasters made of a request's series: per member, per series, the
    (mean, std) at the real origin and then at each backtest cut; or why a member has none."""

    names: tuple[str, ...]
    answers: dict[str, list[list[tuple[np.ndarray, np.ndarray]]]]
    failures: dict[str, tuple[BackendStatus, str]]
    elapsed_s: dict[str, float]

    @classmethod
    def begun(cls, names: Sequence[str]) -> ClassicalRun:
        return cls(tuple(names), {name: [] for name in names}, {}, dict.fromkeys(names, 0.0))

    def results(self, plans: list[SeriesPlan]) -> list[MemberResult]:
        return [
            MemberResult(name, None, *self.failures[name], self.elapsed_s[name])
            if name in self.failures
            else MemberResult(
                name,
                None,
                "ok",
                None,
                self.elapsed_s[name],
                0,
                [_member_forecast(plan, answers) for plan, answers in zip(plans, self.answers[name], strict=True)],
            )
            for name in self.names
        ]


def classical_steps(
    run: ClassicalRun, series: Sequence[ClassicalSeries], horizon: int, deadline: float, now: Callable[[], float]
) -> Iterator[None]:
    """Fill ``run`` series by series, pausing (a yield) after each. Each forecaster answers a series
    and all its backtest cuts in one call (``forecast_with_backtests``), which shares their work:
    about a third of the cost of a forecast per cut. A failure (a backtest context with no observed
    sample, say) fails that member only. Once ``deadline`` (on ``now``'s clock) has passed, only
    ``ALWAYS_ANSWERS`` goes on (a fraction of a millisecond per series), so even a request far too
    large for its deadline gets an answer, about on time."""
    for index, one in enumerate(series):
        late = now() > deadline
        for name in run.names:
            if name in run.failures:
                continue
            if late and name != ALWAYS_ANSWERS:
                run.failures[name] = ("timeout", f"the deadline passed after {index} of {len(series)} series")
                continue
            started = time.perf_counter()
            try:
                results = CLASSICAL_BY_NAME[name].forecast_with_backtests(
                    one.context_us, one.origins, horizon, interval_s=one.interval_s
                )
                run.answers[name].append([(result.mean_us, result.std_us) for result in results])
            except ValueError as error:
                run.failures[name] = ("failed", str(error))
            run.elapsed_s[name] += time.perf_counter() - started
        yield


def run_classical(
    names: Sequence[str], series: Sequence[ClassicalSeries], horizon: int, deadline_monotonic_s: float
) -> ClassicalRun:
    """The classical members of one request, at once: what the helper process runs."""
    run = ClassicalRun.begun(names)
    for _ in classical_steps(run, series, horizon, deadline_monotonic_s, time.monotonic):
        pass
    return run


async def classical_members(
    names: Sequence[str],
    plans: list[SeriesPlan],
    horizon: int,
    deadline: float,
    helper: ClassicalHelper | None = None,
) -> list[MemberResult]:
    """The classical forecasters on every series and its backtests: in the ``helper`` process when it
    can finish them by the ``deadline`` (event-loop time), else on the event loop itself.

    They are the fallback that must always answer, so they never wait on anything they cannot
    count on: in worker threads, under load, they waited behind each other and the GIL until the
    deadline had passed (and the gateway answered 503 with its models busy). The helper process
    takes them off the loop, which then only reads, sends and fuses (half its work at 32 clients,
    measured), and its backlog is known; a helper that is behind, broken or absent leaves them to
    the loop, where each series costs a few milliseconds, paid at once, and between series the
    loop serves the other requests, so a request with many series does not stall them.
    """
    series = classical_series(plans)
    if helper is not None:
        run = await helper.run(names, series, horizon, deadline)
        if run is not None:
            return run.results(plans)
    loop = asyncio.get_running_loop()
    run = ClassicalRun.begun(names)
    for _ in classical_steps(run, series, horizon, deadline, loop.time):
        await asyncio.sleep(0)
    return run.results(plans)
