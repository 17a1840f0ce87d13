"""A stand-in gateway that remembers clocks: the contract's clock endpoints and a /predict that
holds the last value (fused, and as its one classical member), so that the client, the command,
the agent and the benchmark's replay are tested over real HTTP on the shapes the gateway answers
(``ClockReport``, ``ObservationsScored``, ``SeriesMemory``).

It keeps what it was sent (``requests``): the tests check what a caller put on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chronotick.contract import (
    BackendResult,
    ClockObservations,
    ClockReport,
    FleetModels,
    FusedPredictRequest,
    FusedPredictResponse,
    HorizonMemory,
    ObservationsScored,
    Problem,
    SeriesForecast,
    SeriesMemory,
)

REPORT_HORIZON = HorizonMemory(
    horizon_s=10.0,
    scored=42,
    rule="weights",
    weights={"kalman": 0.6, "chrony-fit": 0.3, "last-value": 0.1},
    mae_us={"fused": 1.25, "kalman": 1.5, "chrony-fit": 2.0, "last-value": 4.0},
    coverage={"0.8": 0.81, "0.95": 0.952},
    error_scale_us=1.3,
)


@dataclass
class ClockMemoryStandIn:
    """The clocks it knows (id -> requests seen), and every request body it was sent, by path."""

    clocks: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def report(self, clock_id: str) -> ClockReport:
        return ClockReport(
            clock_id=clock_id,
            interval_s=1.0,
            last_sample_s=1_700_000_099.0,
            requests=self.clocks[clock_id],
            pending_forecasts=3,
            state_bytes=2048,
            horizons=[REPORT_HORIZON, REPORT_HORIZON.model_copy(update={"horizon_s": 1.0})],
        )


def _not_found(clock_id: str) -> JSONResponse:
    problem = Problem(title="Unknown clock", status=404, detail=f"no clock {clock_id!r} is remembered")
    return JSONResponse(problem.model_dump(), status_code=404, media_type="application/problem+json")


def clock_memory_app(stand_in: ClockMemoryStandIn) -> FastAPI:
    app = FastAPI()

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/models")
    async def models() -> FleetModels:
        return FleetModels(services=[], classical=["last-value"])

    @app.post("/predict")
    async def predict(request: FusedPredictRequest, raw: Request) -> FusedPredictResponse:
        stand_in.requests.append(("POST", "/predict", await raw.json()))
        forecasts, memory = [], []
        for series in request.series:
            last = [v for v in series.offsets_us if v is not None][-1]
            interval_s = series.interval_s or 1.0
            quantiles = [[last - 1.0 + level] * request.horizon for level in request.quantile_levels]
            forecasts.append(
                SeriesForecast(
                    id=series.id,
                    interval_s=interval_s,
                    mean_us=[last] * request.horizon,
                    quantiles_us=quantiles,
                    std_us=[1.0] * request.horizon,
                )
            )
            if series.clock_id is None:
                memory.append(SeriesMemory(state="stateless"))
                continue
            seen = stand_in.clocks.get(series.clock_id, 0)
            stand_in.clocks[series.clock_id] = seen + 1
            memory.append(
                SeriesMemory(
                    clock_id=series.clock_id,
                    state="remembered" if seen else "cold-start",
                    scored=seen,
                    newly_scored=min(seen, 1),
                    handover=1.0 if seen else 0.0,
                )
            )
        return FusedPredictResponse(
            horizon=request.horizon,
            quantile_levels=request.quantile_levels,
            forecasts=forecasts,
            degrees_of_freedom=[[10.0] * request.horizon for _ in request.series],
            backends=[BackendResult(name="last-value", service=None, status="ok", forecasts=forecasts)],
            memory=memory,
            degraded=False,
            elapsed_ms=1.0,
        )

    @app.get("/clocks/{clock_id}", response_model=None)
    async def clock(clock_id: str) -> ClockReport | JSONResponse:
        stand_in.requests.append(("GET", f"/clocks/{clock_id}", None))
        return stand_in.report(clock_id) if clock_id in stand_in.clocks else _not_found(clock_id)

    @app.delete("/clocks/{clock_id}", status_code=204, response_model=None)
    async def forget(clock_id: str) -> None | JSONResponse:
        stand_in.requests.append(("DELETE", f"/clocks/{clock_id}", None))
        if stand_in.clocks.pop(clock_id, None) is None:
            return _not_found(clock_id)
        return None

    @app.post("/clocks/{clock_id}/observations", response_model=None)
    async def observe(clock_id: str, observations: ClockObservations) -> ObservationsScored | JSONResponse:
        stand_in.requests.append(("POST", f"/clocks/{clock_id}/observations", observations.model_dump()))
        if clock_id not in stand_in.clocks:
            return _not_found(clock_id)
        scored = sum(v is not None for v in observations.offsets_us)
        return ObservationsScored(clock_id=clock_id, scored=scored, pending=5 - scored)

    return app
