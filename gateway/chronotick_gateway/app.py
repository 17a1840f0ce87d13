"""The gateway app: its parts made at start-up, its middleware and its routes.

Data flows one way: client -> gateway -> family services (and the in-process classical
forecasters) -> fusion -> client (``predict``). The classical members always answer, so the gateway
answers even with every model backend down (marked degraded). The configuration is reloaded while
it runs (``config``); each request runs under the one in force when it started.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Receive, Scope, Send

from chronotick.limits import BodySizeLimit
from chronotick.problems import install_problem_handlers
from chronotick_gateway.admission import Finishing
from chronotick_gateway.background import LoopLag, supervise
from chronotick_gateway.calls import CallCoalescer
from chronotick_gateway.classical_helper import ClassicalHelper
from chronotick_gateway.clocks import ClockMemory
from chronotick_gateway.clockstore import StoreUnavailable, open_clock_store
from chronotick_gateway.config import NO_FILE_VERSION, ConfigWatcher, FleetConfig, config_file, load_config
from chronotick_gateway.fleet import Fleet
from chronotick_gateway.metrics import GatewayMetrics
from chronotick_gateway.reuse import ForecastReuse
from chronotick_gateway.routes import api_key_guard, clocks, operations, predict
from chronotick_gateway.runtime import Gateway
from chronotick_gateway.settings import CONFIG_FILE_VARIABLE, GatewaySettings

# Read once, when the HTTP layer is built: a reload that changes them is told they wait for a restart.
_AT_START_ONLY = (
    "api_key",
    "cors_origins",
    "max_body_bytes",
    "clock_store_url",
    "clock_state_file",
    "max_clocks",
    "clock_idle_expiry_s",
    "warm_after_scored",
    "classical_processes",
)
# How often the number of clocks held is read from the store for its gauge.
CLOCKS_HELD_EVERY_S = 5.0
logger = logging.getLogger("chronotick.gateway.config")


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
    logger.warning(
        "SIGHUP: no configuration file to reload (set %s to use one); the environment is read at start only",
        CONFIG_FILE_VARIABLE,
    )


async def _count_clocks(gateway: Gateway) -> None:
    while True:
        try:
            gateway.metrics.clocks_held.set(await gateway.memory.store.count())
        except StoreUnavailable:
            gateway.metrics.memory_unavailable.inc()
        await asyncio.sleep(CLOCKS_HELD_EVERY_S)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway with ``settings``, fixed; without, with the configuration file and environment
    (``load_config``; an invalid one raises ``ConfigError``), reloaded when the file changes."""
    initial = FleetConfig(settings, NO_FILE_VERSION) if settings is not None else load_config()
    settings = initial.settings
    watched_file = config_file() if initial.version != NO_FILE_VERSION else None
    metrics = GatewayMetrics()

    async def put_in_force(config: FleetConfig) -> None:
        waiting = [key for key in _AT_START_ONLY if getattr(config.settings, key) != getattr(settings, key)]
        if waiting:
            logger.warning("configuration %s: %s take effect at the next start", config.version, ", ".join(waiting))
        await app.state.gateway.fleet.apply(config)
        logger.info("configuration %s in force", config.version)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No connection limit in the pools: the admission control of each service bounds the calls,
        # and a call that waited for a connection inside httpcore's pool could leak its slot when
        # cancelled or timed out (encode/httpcore#1093, #550), until every call failed with
        # PoolTimeout. Calls are never cancelled either (Fleet.let_finish).
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(limits=limits) as http, httpx.AsyncClient(limits=limits) as health_http:
            fleet = Fleet(initial, http, health_http, metrics)
            store = open_clock_store(
                url=settings.clock_store_url,
                max_clocks=settings.max_clocks,
                idle_expiry_s=settings.clock_idle_expiry_s,
                state_file=settings.clock_state_file,
            )
            helper = ClassicalHelper(settings.classical_processes, metrics) if settings.classical_processes else None
            gateway = Gateway(
                settings_at_start=settings,
                metrics=metrics,
                loop_lag=LoopLag(),
                finishing=Finishing(),
                fleet=fleet,
                calls=CallCoalescer(fleet),
                memory=ClockMemory(
                    store, metrics, warm_after=settings.warm_after_scored, decoded_held=settings.decoded_clocks_held
                ),
                reuse=ForecastReuse(max_clocks=settings.max_clocks),
                classical_helper=helper,
            )
            app.state.gateway = gateway
            await store.connect()
            if helper is not None:
                helper.start()
            await fleet.poll_once()
            # What start-up made (modules, the app, the fleet) lives as long as the process: out of the
            # collector's reach, a full collection under load paused the loop 13 ms, not 32 (measured).
            gc.freeze()
            tasks = [
                asyncio.create_task(supervise("health-poller", fleet.poll_forever, metrics), name="health-poller"),
                asyncio.create_task(
                    supervise("loop-lag", lambda: gateway.loop_lag.watch(metrics), metrics), name="loop-lag"
                ),
                asyncio.create_task(
                    supervise("clocks-held", lambda: _count_clocks(gateway), metrics), name="clocks-held"
                ),
            ]
            on_sighup = _nothing_to_reload
            if watched_file is not None:
                watcher = ConfigWatcher(watched_file, initial, put_in_force)
                tasks.append(
                    asyncio.create_task(supervise("config-watcher", watcher.run, metrics), name="config-watcher")
                )
                on_sighup = watcher.request_reload
            # Signals reach the main thread only (tests run gateways in other threads too). Without
            # a file, SIGHUP (an operator's `docker kill -s HUP`) would otherwise end the process.
            if threading.current_thread() is threading.main_thread():
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
            yield
            for task in tasks:
                task.cancel()
            await gateway.memory.close()
            if helper is not None:
                helper.close()

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
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-api-key"],
        )
    guarded = api_key_guard(None if settings.api_key is None else settings.api_key.get_secret_value())
    app.include_router(predict.router, dependencies=guarded)
    app.include_router(operations.router)
    app.include_router(clocks.router, dependencies=guarded)
    return app
