"""A forecast request's path through the gateway, from its parsed query to its answer.

The limits and each series' grid (cleaned once: every member, its backtests and the calibration see
the same series); the clocks it names, recalled and scored on its samples; the members it asks
(``selection``), kept model forecasts standing in for a warm clock (``reuse``), the remote calls
and the classical members by the deadline; the fused answer (``fusion.answer``); the clocks kept
with what it taught them. The routes (``routes.predict``) are the HTTP side of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

import numpy as np
from fastapi import Response

from chronotick.contract import MIN_OBSERVED_SAMPLES, FusedPredictRequest, FusedPredictResponse, ModelInfo, SeriesInput
from chronotick.grid import regularize
from chronotick.problems import ProblemError, validation_problem
from chronotick.responses import model_json_response
from chronotick_gateway import online_ar
from chronotick_gateway.backtest import SeriesPlan, plan_series
from chronotick_gateway.calls import CallCoalescer
from chronotick_gateway.classical_helper import ClassicalHelper
from chronotick_gateway.clocks import ClockMemory, RecalledClock, online_ar_member, series_memory, warm_clocks
from chronotick_gateway.fleet import Service
from chronotick_gateway.fusion.answer import fuse_answer
from chronotick_gateway.members import MemberResult, classical_members, remote_member
from chronotick_gateway.memory import Samples, remember
from chronotick_gateway.reuse import keep_fresh, reuse_reach, reused_members, within
from chronotick_gateway.runtime import Gateway
from chronotick_gateway.selection import rest_weightless, select_members
from chronotick_gateway.settings import GatewaySettings

# How often a request waiting on its members looks again at what the load leaves it (``members_by``):
# 32 waiting requests wake 640 times a second, a few ms of the loop's time.
DEADLINE_RECHECK_S = 0.05


async def answer(gateway: Gateway, query: FusedPredictRequest, arrived_at: float | None) -> Response:
    """The fused answer to ``query``, which reached the gateway at ``arrived_at`` (event-loop time;
    None: now): its deadline counts from then."""
    loop = asyncio.get_running_loop()
    started = arrived_at or loop.time()
    settings = gateway.fleet.config.settings  # this request's, to its end, whatever a reload does meanwhile
    # The members' deadline: the client's, less the time to fuse and answer, less how late the busy
    # event loop has lately been in waking a request (it will be that late at the deadline too),
    # and less the time to finish the other requests in flight, should they all end together.
    answer_by = started + (query.deadline_s or settings.default_deadline_s) - settings.fusion_margin_s

    def members_deadline() -> float:
        return answer_by - gateway.loop_lag.recent_s() - gateway.finishing.reserve_s()

    deadline = members_deadline()
    _check_limits(query, settings)
    plans = [
        series_plan(series, i, query.horizon, settings.backtest_origins, query.clean)
        for i, series in enumerate(query.series)
    ]
    clocks, memory_trouble = await _recall_clocks(gateway.memory, query, plans, deadline)
    # The warm path: a clock with enough scored forecasts needs no backtests.
    plans = [dataclasses.replace(p, origins=()) if i in clocks and clocks[i].warm else p for i, p in enumerate(plans)]
    wanted = query.backends
    if wanted is None:
        wanted = settings.default_backends(max(query.horizon * p.grid.interval_s for p in plans))
    remote, classical, absent = select_members(gateway.fleet, wanted, configured=query.backends is None)
    warm = warm_clocks(clocks, len(plans))
    remote, resting = rest_weightless(remote, classical, warm, query.horizon)
    absent += resting
    # A warm clock's model forecasts stand in for a few seconds of its time (``reuse``).
    versions = {model.name: model.model_version for _, model in remote}
    order = [model.name for _, model in remote] + classical
    reach = reuse_reach(plans, warm, query.horizon, settings.longest_reuse_s)
    reused: list[MemberResult] = []
    if reach is not None:
        remote, reused = reused_members(
            gateway.reuse,
            remote,
            plans,
            warm,
            query.horizon,
            settings.reuse_forecasts_s,
            settings.longest_reuse_s,
            deadline - loop.time(),
            gateway.calls.busy,
        )
    for result in reused:
        gateway.metrics.forecasts_reused.labels(backend=result.name).inc()
    # The helper frees the loop for other work: the member calls' answers, other requests. A
    # request alone with nothing to call would only wait for it, longer than the loop would take
    # (1 context: 2.0 ms on the loop against 3.4 ms handed over, at the median, measured).
    helper = gateway.classical_helper if remote or gateway.finishing.in_flight > 1 else None
    results = await _gather_members(
        gateway.calls, remote, classical, plans, query.horizon, deadline, settings, reach, helper, members_deadline
    )
    if reach is not None:
        keep_fresh(gateway.reuse, results, versions, warm)
    results = sorted(reused + [within(r, query.horizon) for r in results], key=lambda r: order.index(r.name))
    if clocks and (wanted is None or online_ar.NAME in wanted):
        results.append(online_ar_member(plans, clocks, query.horizon))
    members_done = loop.time()
    if not any(r.ok for r in results):
        reasons = [f"{r.name}: {r.status}: {r.reason}" for r in results] + [
            f"{b.name}: {b.status}: {b.reason}" for b in absent
        ]
        raise ProblemError(
            503, "No backend answered", "; ".join(reasons) or "no backend was selected", headers={"Retry-After": "1"}
        )
    fused = fuse_answer(results, plans, clocks, query.quantile_levels, settings.weight_floor)
    answered = [r for r in results if r.ok]
    for index, clock in clocks.items():
        fusion = fused.fusions[index]
        means = {r.name: r.forecasts[index].mean_us for r in answered if r.forecasts is not None}
        remember(clock.state, clock.samples.last_s, means, fusion.mean_us, fusion.std_us, remembered=clock.warm)
    gateway.memory.keep(list(clocks.values()))
    backends = absent + fused.backends
    reasons = [f"{b.name}: {b.status}: {b.reason}" for b in backends if b.status not in ("ok", "skipped")]
    if memory_trouble is not None:
        reasons.append(memory_trouble)
    series_memories = [series_memory(s.clock_id, clocks.get(i)) for i, s in enumerate(query.series)]
    for entry in series_memories:
        gateway.metrics.series_memory.labels(state=entry.state).inc()
    degraded = bool(reasons)
    gateway.metrics.fused.labels(degraded=str(degraded).lower()).inc()
    gateway.metrics.request_seconds.observe(loop.time() - started)
    response = model_json_response(
        FusedPredictResponse(
            horizon=query.horizon,
            quantile_levels=query.quantile_levels,
            forecasts=fused.forecasts,
            degrees_of_freedom=fused.degrees_of_freedom,
            flagged_outliers=[p.grid.flagged_outliers.tolist() for p in plans],
            backends=backends,
            memory=series_memories,
            degraded=degraded,
            reasons=reasons,
            elapsed_ms=(loop.time() - started) * 1000.0,
        )
    )
    gateway.finishing.observe(loop.time() - members_done)
    return response


def _check_limits(query: FusedPredictRequest, settings: GatewaySettings) -> None:
    """The configured input limits (the contract's caps are checked while parsing): 422 naming each field."""
    errors = []
    if len(query.series) > settings.max_series:
        errors.append(
            {"field": "series", "reason": f"{len(query.series)} series; at most {settings.max_series} per request here"}
        )
    if query.horizon > settings.max_horizon:
        errors.append({"field": "horizon", "reason": f"{query.horizon} steps; at most {settings.max_horizon} here"})
    errors += [
        {
            "field": f"series.{i}.offsets_us",
            "reason": f"{len(series.offsets_us)} samples; at most {settings.max_points_per_series} per series here",
        }
        for i, series in enumerate(query.series)
        if len(series.offsets_us) > settings.max_points_per_series
    ]
    if query.deadline_s is not None and query.deadline_s <= settings.fusion_margin_s:
        reason = (
            f"{query.deadline_s:g} s leaves the members no time: this gateway keeps "
            f"{settings.fusion_margin_s:g} s of it for fusion"
        )
        errors.append({"field": "deadline_s", "reason": reason})
    if errors:
        raise validation_problem(errors)


def series_plan(series: SeriesInput, index: int, horizon: int, origins: int, clean: bool) -> SeriesPlan:
    # Cleaned once here, so every member, its backtests and the calibration see the same series.
    grid = regularize(series, f"series.{index}", clean=clean)
    observed = int(np.count_nonzero(~np.isnan(grid.offsets_us)))
    if observed < MIN_OBSERVED_SAMPLES:
        reason = f"{observed} observed samples; at least {MIN_OBSERVED_SAMPLES} are needed"
        raise validation_problem([{"field": f"series.{index}.offsets_us", "reason": reason}])
    return plan_series(grid, horizon, origins, series.id)


async def _recall_clocks(
    memory: ClockMemory, query: FusedPredictRequest, plans: list[SeriesPlan], deadline: float
) -> tuple[dict[int, RecalledClock], str | None]:
    """The request's clocks by series index, scored on its samples; or why none could be recalled
    before the members' ``deadline`` (event-loop time)."""
    named = [
        (i, series.clock_id, _samples_of(series, plan))
        for i, (series, plan) in enumerate(zip(query.series, plans, strict=True))
        if series.clock_id
    ]
    if not named:
        return {}, None
    recalled = await memory.recall(
        [(clock_id, samples) for _, clock_id, samples in named],
        query.horizon,
        deadline - asyncio.get_running_loop().time(),
    )
    if isinstance(recalled, str):
        return {}, recalled
    return {i: clock for (i, _, _), clock in zip(named, recalled, strict=True)}, None


async def _gather_members(
    calls: CallCoalescer,
    remote: list[tuple[Service, ModelInfo]],
    classical: list[str],
    plans: list[SeriesPlan],
    horizon: int,
    deadline: float,
    settings: GatewaySettings,
    reach: int | None = None,
    helper: ClassicalHelper | None = None,
    brought_forward: Callable[[], float] | None = None,
) -> list[MemberResult]:
    """Every member's result by the deadline (or the earlier one ``brought_forward`` says while they
    are out: see ``members_by``): the remote calls go out first, the classical members run while
    they are under way, and a remote member still out at the deadline is a timeout (its calls are
    left to end by their own timeouts: see ``Fleet.let_finish``). A member that fails in a way
    nobody foresaw fails alone: the answer comes from the others."""
    tasks = {
        asyncio.create_task(remote_member(calls, service, model, plans, horizon, deadline, settings, reach)): (
            model.name,
            service.name,
        )
        for service, model in remote
    }
    pending: set[asyncio.Task[MemberResult]] = set(tasks)
    try:
        # Three turns of the loop: the members make their series, their calls are encoded (together
        # with other requests' for the same model: ``calls``), then written out.
        for _ in range(3 if tasks else 0):
            await asyncio.sleep(0)
        results = await classical_members(classical, plans, horizon, deadline, helper)
        if tasks:
            pending = await members_by(pending, deadline, brought_forward)
            results += [_result_of(task, *tasks[task]) for task in tasks if task not in pending]
            results += [MemberResult(*tasks[task], "timeout", "no answer within the deadline") for task in pending]
    finally:
        calls.fleet.let_finish(pending)
    order: list[tuple[str, str | None]] = [*tasks.values(), *((name, None) for name in classical)]
    return sorted(results, key=lambda r: order.index((r.name, r.service)))


async def members_by(
    pending: set[asyncio.Task[MemberResult]], deadline: float, brought_forward: Callable[[], float] | None = None
) -> set[asyncio.Task[MemberResult]]:
    """Wait for the members' tasks until ``deadline`` (event-loop time); those still out then.

    ``brought_forward`` says the deadline as the gateway's load puts it now, looked at every
    DEADLINE_RECHECK_S. A request keeps back from its members the time to finish every request in
    flight, counted when it arrives: the first of a burst counts only itself, and the others come
    in behind it (at the start of a CI drill of 32 clients, the first request was answered 158 ms
    past its 1 s deadline). The deadline only ever comes forward: the calls went out with it."""
    loop = asyncio.get_running_loop()
    while pending:
        until = deadline if brought_forward is None else min(deadline, brought_forward())
        left_s = until - loop.time()
        if left_s <= 0.0:
            break
        _, pending = await asyncio.wait(
            pending, timeout=left_s if brought_forward is None else min(left_s, DEADLINE_RECHECK_S)
        )
    return pending


def _result_of(task: asyncio.Task[MemberResult], name: str, service: str) -> MemberResult:
    if task.exception() is None:
        return task.result()
    error = task.exception()
    logging.getLogger("chronotick.gateway").error("member %s of %s failed unexpectedly", name, service, exc_info=error)
    return MemberResult(name, service, "failed", f"unexpected error: {type(error).__name__}: {error}")


def _samples_of(series: SeriesInput, plan: SeriesPlan) -> Samples:
    """The series' grid with the time of its first slot (a clocked series has one: the contract)."""
    start_s = series.timestamps_s[0] if series.timestamps_s else series.start_s
    assert start_s is not None
    return Samples.on_grid(start_s, plan.grid.interval_s, plan.grid.offsets_us)
