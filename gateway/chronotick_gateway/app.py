"""The gateway app: fan a query out to the fleet, fuse what comes back within the deadline.

Data flows one way: client -> gateway -> family services (and the in-process classical
forecasters) -> fusion -> client. The classical members always answer, so the gateway answers
even with every model backend down (marked degraded). The configuration is reloaded while it runs
(``config``); each request runs under the one in force when it started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import secrets
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx
import numpy as np
from fastapi import Depends, FastAPI, Path, Request, Response, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import APIKeyHeader
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from chronotick.contract import (
    CLOCK_ID_PATTERN,
    BackendResult,
    ClockObservations,
    ClockReport,
    FleetModels,
    FusedPredictRequest,
    FusedPredictResponse,
    ModelInfo,
    ObservationsScored,
    Problem,
    SeriesForecast,
    SeriesInput,
)
from chronotick.grid import as_array, regularize
from chronotick.limits import BodySizeLimit
from chronotick.problems import PROBLEM_MEDIA_TYPE, ProblemError, install_problem_handlers, validation_problem
from chronotick.responses import model_json_response
from chronotick_gateway import online_ar
from chronotick_gateway.admission import Finishing
from chronotick_gateway.background import LoopLag, supervise
from chronotick_gateway.backtest import SeriesPlan, plan_series
from chronotick_gateway.calls import CallCoalescer
from chronotick_gateway.classical_helper import ClassicalHelper
from chronotick_gateway.clocks import (
    ClockMemory,
    RecalledClock,
    SeriesFusion,
    fuse_remembered,
    handed_over,
    online_ar_member,
    series_memory,
    warm_clocks,
)
from chronotick_gateway.clockstore import StoreUnavailable, open_clock_store
from chronotick_gateway.config import NO_FILE_VERSION, ConfigWatcher, FleetConfig, config_file, load_config
from chronotick_gateway.fleet import Fleet, Service
from chronotick_gateway.fusion import fuse, predictive_quantiles, standardized_errors, variance_scale
from chronotick_gateway.members import CLASSICAL_BY_NAME, MemberResult, classical_members, remote_member
from chronotick_gateway.memory import REPROBE_EVERY, Samples, remember, weightless_members
from chronotick_gateway.metrics import GatewayMetrics
from chronotick_gateway.reuse import ForecastReuse, keep_fresh, reuse_reach, reused_members, within
from chronotick_gateway.settings import CONFIG_FILE_VARIABLE, GatewaySettings

_PROBLEMS: dict[int | str, dict[str, object]] = {
    status: {"model": Problem, "description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for status, description in {
        401: "Missing or wrong API key.",
        413: "Request body too large.",
        422: "Invalid request: each field and the reason.",
    }.items()
}
# Read once, when the HTTP layer is built: a reload that changes them is told they wait for a restart.
_AT_START_ONLY = ("api_key", "cors_origins", "max_body_bytes", "clock_store_url", "clock_state_file", "max_clocks",
                  "clock_idle_expiry_s", "warm_after_scored", "classical_processes")
# How often the number of clocks held is read from the store for its gauge.
CLOCKS_HELD_EVERY_S = 5.0
logger = logging.getLogger("chronotick.gateway.config")
_T = TypeVar("_T")
# Fewer observations than this leave every member, classical ones included, without a spread.
MIN_OBSERVED_SAMPLES = 8
# How often a request waiting on its members looks again at what the load leaves it (``members_by``):
# 32 waiting requests wake 640 times a second, a few ms of the loop's time.
DEADLINE_RECHECK_S = 0.05


def _select(
    fleet: Fleet, wanted: list[str] | None, *, configured: bool = False
) -> tuple[list[tuple[Service, ModelInfo]], list[str], list[BackendResult]]:
    """The remote members and classical members to ask, and results for those that cannot answer.

    An unknown name in a request is the client's mistake (422); in the configuration
    (``configured``) it is a member whose service has not told its models yet: absent, not an error.
    """
    remote: list[tuple[Service, ModelInfo]] = []
    absent: list[BackendResult] = []
    known = set(CLASSICAL_BY_NAME) | {online_ar.NAME} | set(fleet.services)
    for service in fleet.services.values():
        known |= {m.name for m in service.info.models} if service.info else set()
    if wanted is not None:
        unknown = [name for name in wanted if name not in known]
        if unknown and not configured:
            raise validation_problem([{"field": "backends", "reason": f"unknown backends {unknown}; "
                                                                      f"known: {sorted(known)}"}])
        absent += [BackendResult(name=name, service=None, status="not_ready",
                                 reason="configured for this horizon, but no ready service offers it")
                   for name in unknown]
    for service in fleet.services.values():
        models = service.info.models if service.info else []
        chosen = [m for m in models if wanted is None or service.name in wanted or m.name in wanted]
        if wanted is not None and not chosen and service.name not in wanted:
            continue
        if not service.ready or not service.breaker.allows_requests:
            status = "not_ready" if not service.ready else "circuit_open"
            reason = service.last_error if not service.ready else "circuit breaker open after repeated failures"
            names = [m.name for m in chosen] or [service.name]
            absent += [BackendResult(name=n, service=service.name, status=status, reason=reason) for n in names]
            continue
        remote += [(service, model) for model in chosen]
    classical = [name for name in CLASSICAL_BY_NAME if wanted is None or name in wanted]
    return remote, classical, absent


def _backend_result(result: MemberResult, plans: list[SeriesPlan], weights: list[np.ndarray] | None,
                    member_std: list[np.ndarray] | None) -> BackendResult:
    forecasts: list[SeriesForecast | None] | None = None
    scales = None
    if result.forecasts is not None:
        scales = [variance_scale(standardized_errors(f)) for f in result.forecasts]
        forecasts = []
        for i, (plan, forecast) in enumerate(zip(plans, result.forecasts, strict=True)):
            std = member_std[i] if member_std is not None else forecast.std_us
            # A member with no usable spread for a series (too few observations) had no weight in it.
            forecasts.append(
                SeriesForecast(id=plan.id, interval_s=plan.grid.interval_s, mean_us=forecast.mean_us.tolist(),
                               quantiles_us=[], std_us=std.tolist())
                if np.all(np.isfinite(std)) and np.all(np.isfinite(forecast.mean_us)) else None
            )
    return BackendResult(
        name=result.name, service=result.service, status=result.status, reason=result.reason,
        latency_ms=None if result.latency_s is None else result.latency_s * 1000.0, retries=result.retries,
        covariates_used=list(result.covariates_used), calibration_scale=scales,
        forecast_age_s=result.age_s,
        weights=None if weights is None else [w.tolist() for w in weights],
        forecasts=forecasts,
    )


def _check_limits(query: FusedPredictRequest, settings: GatewaySettings) -> None:
    """The configured input limits (the contract's caps are checked while parsing): 422 naming each field."""
    errors = []
    if len(query.series) > settings.max_series:
        errors.append({"field": "series", "reason": f"{len(query.series)} series; at most {settings.max_series} "
                                                    "per request here"})
    if query.horizon > settings.max_horizon:
        errors.append({"field": "horizon", "reason": f"{query.horizon} steps; at most {settings.max_horizon} here"})
    errors += [
        {"field": f"series.{i}.offsets_us", "reason": f"{len(series.offsets_us)} samples; at most "
                                                      f"{settings.max_points_per_series} per series here"}
        for i, series in enumerate(query.series) if len(series.offsets_us) > settings.max_points_per_series
    ]
    if query.deadline_s is not None and query.deadline_s <= settings.fusion_margin_s:
        reason = (f"{query.deadline_s:g} s leaves the members no time: this gateway keeps "
                  f"{settings.fusion_margin_s:g} s of it for fusion")
        errors.append({"field": "deadline_s", "reason": reason})
    if errors:
        raise validation_problem(errors)


def _plan(series: SeriesInput, index: int, horizon: int, origins: int, clean: bool) -> SeriesPlan:
    # Cleaned once here, so every member, its backtests and the calibration see the same series.
    grid = regularize(series, f"series.{index}", clean=clean)
    observed = int(np.count_nonzero(~np.isnan(grid.offsets_us)))
    if observed < MIN_OBSERVED_SAMPLES:
        reason = f"{observed} observed samples; at least {MIN_OBSERVED_SAMPLES} are needed"
        raise validation_problem([{"field": f"series.{index}.offsets_us", "reason": reason}])
    return plan_series(grid, horizon, origins, series.id)


async def _gather_members(
    calls: CallCoalescer, remote: list[tuple[Service, ModelInfo]], classical: list[str], plans: list[SeriesPlan],
    horizon: int, deadline: float, settings: GatewaySettings, reach: int | None = None,
    helper: ClassicalHelper | None = None, brought_forward: Callable[[], float] | None = None,
) -> list[MemberResult]:
    """Every member's result by the deadline (or the earlier one ``brought_forward`` says while they
    are out: see ``members_by``): the remote calls go out first, the classical members run while
    they are under way, and a remote member still out at the deadline is a timeout (its calls are
    left to end by their own timeouts: see ``Fleet.let_finish``). A member that fails in a way
    nobody foresaw fails alone: the answer comes from the others."""
    tasks = {
        asyncio.create_task(remote_member(calls, service, model, plans, horizon, deadline, settings, reach)):
            (model.name, service.name)
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
    order = list(tasks.values()) + [(name, None) for name in classical]
    return sorted(results, key=lambda r: order.index((r.name, r.service)))


async def members_by(pending: set[asyncio.Task[MemberResult]], deadline: float,
                     brought_forward: Callable[[], float] | None = None) -> set[asyncio.Task[MemberResult]]:
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
        _, pending = await asyncio.wait(pending, timeout=left_s if brought_forward is None
                                        else min(left_s, DEADLINE_RECHECK_S))
    return pending


def _result_of(task: asyncio.Task[MemberResult], name: str, service: str) -> MemberResult:
    if task.exception() is None:
        return task.result()
    error = task.exception()
    logging.getLogger("chronotick.gateway").error("member %s of %s failed unexpectedly", name, service,
                                                  exc_info=error)
    return MemberResult(name, service, "failed", f"unexpected error: {type(error).__name__}: {error}")


def _rest_weightless(
    remote: list[tuple[Service, ModelInfo]], classical: list[str], warm: list[RecalledClock], horizon: int,
) -> tuple[list[tuple[Service, ModelInfo]], list[BackendResult]]:
    """The remote members worth asking, and those left out: on the warm path (``warm``: the request's
    clocks), members that carry no remembered weight at this forecast's horizons on any of its clocks
    are not asked, but on every REPROBE_EVERY-th request of a clock, which keeps their record current."""
    if not warm or any(c.state.requests % REPROBE_EVERY == 0 for c in warm):
        return remote, []
    names = [model.name for _, model in remote] + classical
    resting = set.intersection(*(weightless_members(c.state, names, horizon) for c in warm))
    reason = (f"no remembered weight on this clock at these horizons; asked again every {REPROBE_EVERY}th "
              "request")
    return ([(service, model) for service, model in remote if model.name not in resting],
            [BackendResult(name=model.name, service=service.name, status="skipped", reason=reason)
             for service, model in remote if model.name in resting])


def _samples_of(series: SeriesInput, plan: SeriesPlan) -> Samples:
    """The series' grid with the time of its first slot (a clocked series has one: the contract)."""
    start_s = series.timestamps_s[0] if series.timestamps_s else series.start_s
    assert start_s is not None
    return Samples.on_grid(start_s, plan.grid.interval_s, plan.grid.offsets_us)


def _fuse_series(
    clock: RecalledClock | None, answered: list[MemberResult], index: int, plan: SeriesPlan,
    levels: list[float], weight_floor: float,
) -> SeriesFusion:
    """One series' fusion: from its clock's memory on the warm path, else on the request's own
    backtests, its weights handed over towards the clock's remembered ones as their evidence grows."""
    names = [r.name for r in answered]
    means = np.stack([r.forecasts[index].mean_us for r in answered])
    if clock is not None and clock.warm:
        return fuse_remembered(clock, names, means, np.stack([r.forecasts[index].std_us for r in answered]), levels)
    fused = fuse([r.forecasts[index] for r in answered], origins=plan.origins, weight_floor=weight_floor)
    return handed_over(clock, fused, names, means)


class StampArrival:
    """Notes in the request's state when it reached the gateway, before its body was read and
    parsed: its deadline counts from then (in a burst of clients, reading and validating the
    bodies ahead of it is part of the time its client waits). Pure ASGI: no task, no copy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["arrived_at"] = asyncio.get_running_loop().time()
        await self.app(scope, receive, send)


def _nothing_to_reload() -> None:
    logger.warning("SIGHUP: no configuration file to reload (set %s to use one); the environment is read "
                   "at start only", CONFIG_FILE_VARIABLE)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway with ``settings``, fixed; without, with the configuration file and environment
    (``load_config``; an invalid one raises ``ConfigError``), reloaded when the file changes."""
    initial = FleetConfig(settings, NO_FILE_VERSION) if settings is not None else load_config()
    settings = initial.settings
    watched_file = config_file() if initial.version != NO_FILE_VERSION else None
    metrics = GatewayMetrics()
    loop_lag = LoopLag()
    finishing = Finishing()
    state: dict[str, Fleet] = {}
    callers: dict[str, CallCoalescer] = {}
    memories: dict[str, ClockMemory] = {}
    helpers: dict[str, ClassicalHelper] = {}
    reuse = ForecastReuse(max_clocks=settings.max_clocks)

    async def put_in_force(config: FleetConfig) -> None:
        waiting = [key for key in _AT_START_ONLY if getattr(config.settings, key) != getattr(settings, key)]
        if waiting:
            logger.warning("configuration %s: %s take effect at the next start", config.version, ", ".join(waiting))
        await state["fleet"].apply(config)
        logger.info("configuration %s in force", config.version)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # No connection limit in the pools: the admission control of each service bounds the calls,
        # and a call that waited for a connection inside httpcore's pool could leak its slot when
        # cancelled or timed out (encode/httpcore#1093, #550), until every call failed with
        # PoolTimeout. Calls are never cancelled either (Fleet.let_finish).
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(limits=limits) as http, httpx.AsyncClient(limits=limits) as health_http:
            fleet = Fleet(initial, http, health_http, metrics)
            state["fleet"] = fleet
            callers["calls"] = CallCoalescer(fleet)
            store = open_clock_store(url=settings.clock_store_url, max_clocks=settings.max_clocks,
                                     idle_expiry_s=settings.clock_idle_expiry_s, state_file=settings.clock_state_file)
            memories["memory"] = ClockMemory(store, metrics, warm_after=settings.warm_after_scored,
                                             decoded_held=settings.decoded_clocks_held)
            await store.connect()
            if settings.classical_processes:
                helpers["classical"] = ClassicalHelper(settings.classical_processes, metrics)
                helpers["classical"].start()
            await fleet.poll_once()
            # What start-up made (modules, the app, the fleet) lives as long as the process: out of the
            # collector's reach, a full collection under load paused the loop 13 ms, not 32 (measured).
            gc.freeze()
            tasks = [asyncio.create_task(supervise("health-poller", fleet.poll_forever, metrics),
                                         name="health-poller"),
                     asyncio.create_task(supervise("loop-lag", lambda: loop_lag.watch(metrics), metrics),
                                         name="loop-lag"),
                     asyncio.create_task(supervise("clocks-held", count_clocks, metrics), name="clocks-held")]
            on_sighup = _nothing_to_reload
            if watched_file is not None:
                watcher = ConfigWatcher(watched_file, initial, put_in_force)
                tasks.append(asyncio.create_task(supervise("config-watcher", watcher.run, metrics),
                                                 name="config-watcher"))
                on_sighup = watcher.request_reload
            # Signals reach the main thread only (tests run gateways in other threads too). Without
            # a file, SIGHUP (an operator's `docker kill -s HUP`) would otherwise end the process.
            if threading.current_thread() is threading.main_thread():
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
            yield
            for task in tasks:
                task.cancel()
            await memories["memory"].close()
            if "classical" in helpers:
                helpers.pop("classical").close()

    app = FastAPIOffline(
        title="ChronoTick gateway",
        summary="Fused clock-offset forecasts from the whole fleet, with calibrated bounds.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_problem_handlers(app, on_error=lambda status: metrics.errors.labels(status=str(status)).inc())
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(StampArrival)  # outermost: the time before the body is read counts too
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["content-type", "x-api-key"])

    # The schema advertises the key only when there is one: a client (or schemathesis) reading it
    # must not be told to authenticate against a gateway that accepts anyone.
    predict_dependencies = []
    if settings.api_key is not None:
        expected_key = settings.api_key.get_secret_value()
        api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The gateway's API key.")

        # async: a plain def would be sent to a worker thread on every request, for a string compare.
        async def require_api_key(given: str | None = Security(api_key_header)) -> None:
            if not secrets.compare_digest(given or "", expected_key):
                raise ProblemError(401, "Unauthorized", "missing or wrong X-API-Key header",
                                   headers={"WWW-Authenticate": "APIKey"})

        predict_dependencies.append(Depends(require_api_key))

    def fleet() -> Fleet:
        return state["fleet"]

    async def count_clocks() -> None:
        while True:
            try:
                metrics.clocks_held.set(await memories["memory"].store.count())
            except StoreUnavailable:
                metrics.memory_unavailable.inc()
            await asyncio.sleep(CLOCKS_HELD_EVERY_S)

    async def recall_clocks(query: FusedPredictRequest, plans: list[SeriesPlan],
                            deadline: float) -> tuple[dict[int, RecalledClock], str | None]:
        """The request's clocks by series index, scored on its samples; or why none could be recalled
        before the members' ``deadline`` (event-loop time)."""
        named = [(i, series.clock_id, _samples_of(series, plan))
                 for i, (series, plan) in enumerate(zip(query.series, plans, strict=True)) if series.clock_id]
        if not named:
            return {}, None
        recalled = await memories["memory"].recall([(clock_id, samples) for _, clock_id, samples in named],
                                                   query.horizon, deadline - asyncio.get_running_loop().time())
        if isinstance(recalled, str):
            return {}, recalled
        return {i: clock for (i, _, _), clock in zip(named, recalled, strict=True)}, None

    @app.post("/predict", response_model=FusedPredictResponse, responses=_PROBLEMS,
              dependencies=predict_dependencies)
    async def predict(query: FusedPredictRequest, http: Request) -> Response:
        """Forecast every series with the requested backends (by default those configured for its
        horizon, else every ready one) and fuse them by calibrated inverse variance."""
        finishing.in_flight += 1
        try:
            return await fused_answer(query, http)
        finally:
            finishing.in_flight -= 1

    async def fused_answer(query: FusedPredictRequest, http: Request) -> Response:
        loop = asyncio.get_running_loop()
        started = getattr(http.state, "arrived_at", None) or loop.time()
        settings = fleet().config.settings  # this request's, to its end, whatever a reload does meanwhile
        # The members' deadline: the client's, less the time to fuse and answer, less how late the busy
        # event loop has lately been in waking a request (it will be that late at the deadline too),
        # and less the time to finish the other requests in flight, should they all end together.
        answer_by = started + (query.deadline_s or settings.default_deadline_s) - settings.fusion_margin_s

        def members_deadline() -> float:
            return answer_by - loop_lag.recent_s() - finishing.reserve_s()

        deadline = members_deadline()
        _check_limits(query, settings)
        plans = [_plan(series, i, query.horizon, settings.backtest_origins, query.clean)
                 for i, series in enumerate(query.series)]
        clocks, memory_trouble = await recall_clocks(query, plans, deadline)
        # The warm path: a clock with enough scored forecasts needs no backtests.
        plans = [dataclasses.replace(plan, origins=()) if i in clocks and clocks[i].warm else plan
                 for i, plan in enumerate(plans)]
        wanted = query.backends
        if wanted is None:
            wanted = settings.default_backends(max(query.horizon * plan.grid.interval_s for plan in plans))
        remote, classical, absent = _select(fleet(), wanted, configured=query.backends is None)
        warm = warm_clocks(clocks, len(plans))
        remote, resting = _rest_weightless(remote, classical, warm, query.horizon)
        absent += resting
        # A warm clock's model forecasts stand in for a few seconds of its time (``reuse``).
        versions = {model.name: model.model_version for _, model in remote}
        order = [model.name for _, model in remote] + classical
        reach = reuse_reach(plans, warm, query.horizon, settings.longest_reuse_s)
        reused: list[MemberResult] = []
        if reach is not None:
            remote, reused = reused_members(reuse, remote, plans, warm, query.horizon, settings.reuse_forecasts_s,
                                            settings.longest_reuse_s, deadline - loop.time(), callers["calls"].busy)
        for result in reused:
            metrics.forecasts_reused.labels(backend=result.name).inc()
        # The helper frees the loop for other work: the member calls' answers, other requests. A
        # request alone with nothing to call would only wait for it, longer than the loop would take
        # (1 context: 2.0 ms on the loop against 3.4 ms handed over, at the median, measured).
        helper = helpers.get("classical") if remote or finishing.in_flight > 1 else None
        results = await _gather_members(callers["calls"], remote, classical, plans, query.horizon, deadline,
                                        settings, reach, helper, members_deadline)
        if reach is not None:
            keep_fresh(reuse, results, versions, warm)
        results = sorted(reused + [within(r, query.horizon) for r in results], key=lambda r: order.index(r.name))
        if clocks and (wanted is None or online_ar.NAME in wanted):
            results.append(online_ar_member(plans, clocks, query.horizon))
        members_done = loop.time()
        answered = [r for r in results if r.ok]
        if not answered:
            reasons = [f"{r.name}: {r.status}: {r.reason}" for r in results] + [
                f"{b.name}: {b.status}: {b.reason}" for b in absent
            ]
            raise ProblemError(503, "No backend answered", "; ".join(reasons) or "no backend was selected",
                               headers={"Retry-After": "1"})
        fused_series, dofs = [], []
        weights, member_std = {r.name: [] for r in answered}, {r.name: [] for r in answered}
        for index, plan in enumerate(plans):
            clock = clocks.get(index)
            fused = _fuse_series(clock, answered, index, plan, query.quantile_levels, settings.weight_floor)
            dofs.append(fused.degrees_of_freedom.tolist())
            for row, result in enumerate(answered):
                weights[result.name].append(fused.weights[row])
                member_std[result.name].append(fused.member_std_us[row])
            quantiles = fused.quantiles_us if fused.quantiles_us is not None else predictive_quantiles(
                fused.mean_us, fused.std_us, query.quantile_levels, fused.degrees_of_freedom)
            fused_series.append(SeriesForecast(
                id=plan.id, interval_s=plan.grid.interval_s, mean_us=fused.mean_us.tolist(),
                quantiles_us=quantiles.tolist(), std_us=fused.std_us.tolist(),
            ))
            if clock is not None:
                remember(clock.state, clock.samples.last_s, {r.name: r.forecasts[index].mean_us for r in answered},
                         fused.mean_us, fused.std_us, remembered=clock.warm)
        memories["memory"].keep(list(clocks.values()))
        backends = absent + [
            _backend_result(r, plans, weights.get(r.name), member_std.get(r.name)) for r in results
        ]
        failures = [b for b in backends if b.status not in ("ok", "skipped")]
        reasons = [f"{b.name}: {b.status}: {b.reason}" for b in failures]
        if memory_trouble is not None:
            reasons.append(memory_trouble)
        series_memories = [series_memory(s.clock_id, clocks.get(i)) for i, s in enumerate(query.series)]
        for entry in series_memories:
            metrics.series_memory.labels(state=entry.state).inc()
        degraded = bool(reasons)
        metrics.fused.labels(degraded=str(degraded).lower()).inc()
        metrics.request_seconds.observe(loop.time() - started)
        response = model_json_response(FusedPredictResponse(
            horizon=query.horizon,
            quantile_levels=query.quantile_levels,
            forecasts=fused_series,
            degrees_of_freedom=dofs,
            flagged_outliers=[plan.grid.flagged_outliers.tolist() for plan in plans],
            backends=backends,
            memory=series_memories,
            degraded=degraded,
            reasons=reasons,
            elapsed_ms=(loop.time() - started) * 1000.0,
        ))
        finishing.observe(loop.time() - members_done)
        return response

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready", responses={503: {"model": Problem, "description": "The view of the fleet is stale.",
                                                "content": {PROBLEM_MEDIA_TYPE: {}}}})
    async def ready() -> dict[str, object]:
        """Ready while the view of the fleet is current: the gateway can always answer (its classical
        members need no backend), but with a stale view it would send calls to services it
        wrongly thinks dead or alive, so it says 503 and a load balancer can send clients elsewhere."""
        current = fleet()
        age_s = current.view_age_s()
        if current.view_is_stale():
            detail = "no health-poll round has completed yet" if age_s is None else (
                f"the view of the fleet is stale: the last health-poll round completed {age_s:.1f} s ago")
            raise ProblemError(503, "Not ready", detail, headers={"Retry-After": "1"})
        services = current.services.values()
        return {"status": "ready", "services_ready": [s.name for s in services if s.ready],
                "fleet_view_age_s": age_s}

    @app.get("/models", response_model=FleetModels)
    async def models() -> FleetModels:
        """Backends, their models and versions, breaker state, and the configuration version in force."""
        return FleetModels(services=[s.status() for s in fleet().services.values()],
                           classical=list(CLASSICAL_BY_NAME),
                           per_clock=[online_ar.NAME], config_version=fleet().config.version)

    clock_path = Path(min_length=1, max_length=128, pattern=CLOCK_ID_PATTERN, description="The clock's id.")
    clock_problems: dict[int | str, dict[str, object]] = {
        status: {"model": Problem, "description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}
        for status, description in {404: "No clock of this id is remembered.",
                                    503: "The clock memory cannot be reached."}.items()
    } | _PROBLEMS

    async def from_store(action: Awaitable[_T]) -> _T:
        try:
            return await action
        except StoreUnavailable as error:
            metrics.memory_unavailable.inc()
            raise ProblemError(503, "Clock memory unavailable", str(error), headers={"Retry-After": "1"}) from error

    def unknown_clock(clock_id: str) -> ProblemError:
        return ProblemError(404, "Unknown clock", f"no clock {clock_id!r} is remembered here (never asked about, "
                                                  "expired after being idle, or forgotten)")

    @app.get("/clocks/{clock_id}", response_model=ClockReport, responses=clock_problems,
             dependencies=predict_dependencies)
    async def clock_report(clock_id: str = clock_path) -> ClockReport:
        """What the gateway remembers of a clock, per scored horizon: each member's weight and realised
        error, the fused error, and the realised coverage of the remembered 80 % and 95 % intervals."""
        report = await from_store(memories["memory"].report(clock_id))
        if report is None:
            raise unknown_clock(clock_id)
        return report

    @app.delete("/clocks/{clock_id}", status_code=204, responses=clock_problems, dependencies=predict_dependencies)
    async def forget_clock(clock_id: str = clock_path) -> Response:
        """Forget a clock (after a hardware change, say): its next request starts it afresh."""
        reuse.forget(clock_id)
        if not await from_store(memories["memory"].forget(clock_id)):
            raise unknown_clock(clock_id)
        return Response(status_code=204)

    @app.post("/clocks/{clock_id}/observations", response_model=ObservationsScored, responses=clock_problems,
              dependencies=predict_dependencies)
    async def observe_clock(observations: ClockObservations, clock_id: str = clock_path) -> ObservationsScored:
        """Measurements of a remembered clock that score its pending forecasts, without a forecast."""
        clock = await from_store(memories["memory"].observe(
            clock_id, np.asarray(observations.timestamps_s), as_array(observations.offsets_us)))
        if clock is None:
            raise unknown_clock(clock_id)
        return ObservationsScored(clock_id=clock_id, scored=clock.newly_scored, pending=len(clock.state.pending))

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
