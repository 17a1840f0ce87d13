"""The agent's local HTTP endpoint: the corrected time now, its state, its metrics.

``GET /time`` answers with the offset estimate for this instant and its error bound; before the
first real measurement there is nothing honest to say, so it answers 503 problem+json.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from chronotick.agent.metrics import AgentMetrics
from chronotick.agent.runner import Agent, build_source
from chronotick.agent.settings import AgentSettings
from chronotick.client import AsyncClient
from chronotick.contract import OFFSET_SIGN_CONVENTION
from chronotick.problems import ProblemError, install_problem_handlers
from chronotick.serve import serve

# The agent's own retries stay short: its loops retry again on their next tick, with backoff.
_CLIENT_ATTEMPTS = 2
_CLIENT_MARGIN_S = 2.0


class CorrectedTime(BaseModel):
    local_time_s: float = Field(description="This host's clock (Unix seconds) when the answer was made.")
    corrected_time_s: float = Field(description="local_time_s - offset_us: the reference time by the estimate.")
    offset_us: float = Field(description="Estimated offset now: local - reference, microseconds (+ = fast).")
    error_bound_us: float = Field(
        description="The true offset is within this of offset_us as long as the offset moves no faster than "
        "max_drift_ppm from the last real measurement."
    )
    basis: str = Field(description="forecast:short, forecast:long, or last-measurement (no forecast covers now).")
    last_measurement_age_s: float
    max_drift_ppm: float
    forecast_interval95_us: float | None = Field(
        default=None, description="The fleet's own 95 % half-width for now (statistical; not part of the bound)."
    )
    sign_convention: str = OFFSET_SIGN_CONVENTION


def create_app(settings: AgentSettings) -> FastAPI:
    metrics = AgentMetrics()
    metrics.error_bound_limit_us.set(settings.error_bound_limit_us)
    state: dict[str, Agent] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        async with AsyncClient(
            str(settings.gateway_url),
            api_key=api_key,
            attempts=_CLIENT_ATTEMPTS,
            timeout_s=settings.deadline_s + _CLIENT_MARGIN_S,
        ) as client:
            agent = Agent(settings, build_source(settings), client, metrics)
            state["agent"] = agent
            loops = asyncio.create_task(agent.run(), name="agent-loops")
            yield
            loops.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loops

    app = FastAPIOffline(
        title="ChronoTick agent",
        summary="This host's clock, corrected by the fleet's forecast, with an honest error bound.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_problem_handlers(app)

    @app.get("/time", response_model=CorrectedTime, responses={503: {"description": "No real measurement yet."}})
    async def corrected_time() -> CorrectedTime:
        """The corrected time now, the offset estimate and its error bound."""
        current = state["agent"].current()
        if current is None:
            raise ProblemError(
                503,
                "No measurement yet",
                "the agent has not had a real measurement from its source yet: there is no honest estimate to serve",
                headers={"Retry-After": "1"},
            )
        return CorrectedTime(
            local_time_s=current.local_time_s,
            corrected_time_s=current.corrected_time_s,
            offset_us=current.offset_us,
            error_bound_us=current.error_bound_us,
            basis=current.basis,
            last_measurement_age_s=current.last_measurement_age_s,
            max_drift_ppm=settings.max_drift_ppm,
            forecast_interval95_us=current.forecast_interval95_us,
        )

    @app.get("/status")
    async def status() -> dict[str, Any]:
        """The window, the source, the forecasts held and the running scores."""
        agent = state["agent"]
        last = agent.last_measurement
        return {
            "source": agent.source.name,
            "gateway": agent.client.base_url,
            "clock_id": settings.clock_id,
            "window_slots": len(agent.window),
            "window_observed": agent.window.observed,
            "last_measurement": None
            if last is None
            else {
                "time_s": last.time_s,
                "offset_us": last.offset_us,
                "uncertainty_us": last.uncertainty_us,
                "stratum": last.stratum,
            },
            "last_forecast_request_s": agent.last_request_s,
            "forecasts": [
                {"kind": f.kind, "origin_s": f.origin_s, "steps": int(f.mean_us.size), "degraded": f.degraded}
                for f in agent.forecasts
            ],
            "scores": [
                {
                    "kind": kind,
                    "horizon_s": horizon_s,
                    "count": score.count,
                    "mae_us": score.mae_us,
                    "coverage80": score.coverage80,
                    "coverage95": score.coverage95,
                }
                for (kind, horizon_s), score in sorted(agent.scoreboard.scores.items())
            ],
        }

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        """Ready once a real measurement has been made (before that /time has nothing to serve)."""
        if state["agent"].last_measurement is None:
            raise ProblemError(503, "Not ready", "no real measurement yet")
        return {"status": "ready"}

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def run_agent(settings: AgentSettings) -> None:
    """Serve until stopped (SIGINT/SIGTERM end it cleanly)."""
    serve(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
