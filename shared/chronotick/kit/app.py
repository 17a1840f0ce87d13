"""The app factory: one model family in, one forecasting service out.

Loading weights can take a while, so it runs in the background: ``/health/live`` answers at once,
``/health/ready`` only once every model has loaded and answered a warm-up forecast, and
``/predict`` says 503 until then.
"""

from __future__ import annotations

import asyncio
import logging
import math
import platform
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chronotick.contract import (
    TIMEOUT_HEADER,
    BatchingInfo,
    PredictRequest,
    PredictResponse,
    Problem,
    ServiceInfo,
    Timings,
)
from chronotick.kit.adapter import BatchForecast, ForecastModel, ModelBatch, ModelFamily
from chronotick.kit.batching import Expired, MicroBatcher
from chronotick.kit.metrics import PredictionMeter, ServiceMetrics
from chronotick.kit.series import check_forecast, prepare_request, to_series_forecasts
from chronotick.kit.settings import ServiceSettings
from chronotick.limits import BodySizeLimit
from chronotick.problems import PROBLEM_MEDIA_TYPE, ProblemError, install_problem_handlers, validation_problem
from chronotick.responses import model_json_response

logger = logging.getLogger("chronotick.kit")

_PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": Problem, "description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for status, description in {
        404: "Unknown model.",
        413: "Request body too large.",
        422: "Invalid request: each field and the reason.",
        503: "Weights not loaded yet.",
        504: f"The caller's time limit ({TIMEOUT_HEADER} header, ms) passed while the request was queued.",
    }.items()
}


@dataclass
class _State:
    models: dict[str, ForecastModel] = field(default_factory=dict)
    ready: bool = False
    load_error: str | None = None

    def require_model(self, name: str | None) -> tuple[str, ForecastModel]:
        if not self.ready:
            raise ProblemError(
                503,
                "Not ready",
                self.load_error or "weights are still loading",
                headers={"Retry-After": "1"},
            )
        chosen = name or next(iter(self.models))
        model = self.models.get(chosen)
        if model is None:
            raise ProblemError(
                404,
                "Unknown model",
                f"no model {chosen!r} in this service; available: {', '.join(self.models)}",
            )
        return chosen, model


def _expiry(http: Request) -> float | None:
    """Event-loop time after which the caller no longer waits (``TIMEOUT_HEADER``, counted from now:
    the body is parsed by then); None without the header; 422 for a malformed one."""
    value = http.headers.get(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        timeout_ms = float(value)
    except ValueError:
        timeout_ms = math.nan
    if not math.isfinite(timeout_ms) or timeout_ms < 0:
        raise validation_problem(
            [{"field": f"header {TIMEOUT_HEADER}", "reason": f"{value!r} is not a non-negative number of milliseconds"}]
        )
    return asyncio.get_running_loop().time() + timeout_ms / 1000.0


def _warm_up(name: str, model: ForecastModel) -> None:
    """One forecast on a smooth synthetic context: proves the weights run before we say ready."""
    info = model.info
    length = min(info.max_context, max(info.min_context, 64))
    context = np.cumsum(np.full(length, 0.1)) - 0.1 * length
    horizon = min(info.max_horizon, 60)
    forecast = model.forecast(ModelBatch(contexts=[context], horizon=horizon, interval_s=[1.0]))
    check_forecast(forecast, 1, horizon)
    logger.info("model %s ready (%s, version %s)", name, info.model_id, info.model_version)


def _load(family: ModelFamily, state: _State, settings: ServiceSettings) -> None:
    models = family.load()
    torch = sys.modules.get("torch")  # set only where the family runs on torch
    if torch is not None and settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)
    if not models:
        raise RuntimeError(f"family {family.name!r} loaded no model")
    for name, model in models.items():
        _warm_up(name, model)
    state.models = models
    state.ready = True


def create_app(family: ModelFamily, settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    state = _State()
    metrics = ServiceMetrics()

    def run_model(name: str, batch: ModelBatch) -> BatchForecast:
        forecast = state.models[name].forecast(batch)
        check_forecast(forecast, len(batch), batch.horizon)
        return forecast

    batcher = MicroBatcher(
        run_model,
        enabled=settings.batching,
        window_s=settings.batch_window_ms / 1000.0,
        max_batch_series=settings.max_batch_series,
        on_batch=metrics.observe_batch,
    )

    async def load_in_background() -> None:
        try:
            await asyncio.to_thread(_load, family, state, settings)
            metrics.ready.set(1)
        except Exception as error:  # a broken checkpoint must show in /health/ready, not kill the process
            logger.exception("loading family %s failed", family.name)
            state.load_error = f"loading failed: {type(error).__name__}: {error}"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        loader = asyncio.create_task(load_in_background())
        yield
        loader.cancel()
        await batcher.stop()

    # Docs assets are served by the service itself: many hosts that run it have no internet.
    app = FastAPIOffline(
        title=f"ChronoTick {family.name} service",
        summary="Clock-offset forecasts from one model family.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_problem_handlers(app, on_error=lambda status: metrics.errors.labels(status=str(status)).inc())
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)

    app.add_middleware(PredictionMeter, batcher=batcher, metrics=metrics)

    @app.post("/predict", response_model=PredictResponse, responses=_PROBLEM_RESPONSES)
    async def predict(request: PredictRequest, http: Request) -> Response:
        """Forecast the offset of each series ``horizon`` steps ahead, with quantiles."""
        started = time.perf_counter()
        name, model = state.require_model(request.model)
        prepared = prepare_request(request, model.info)
        try:
            result = await batcher.submit(
                name, prepared, getattr(http.state, "arrival", None), expires_at=_expiry(http)
            )
        except Expired as expired:
            raise ProblemError(504, "Deadline exceeded", str(expired)) from None
        info = model.info
        return model_json_response(
            PredictResponse(
                family=family.name,
                model=name,
                model_id=info.model_id,
                model_version=info.model_version,
                horizon=request.horizon,
                quantile_levels=request.quantile_levels,
                forecasts=to_series_forecasts(request, prepared, result.forecast),
                flagged_outliers=prepared.flagged_outliers,
                batch_series=result.batch_series,
                timings=Timings(
                    queue_ms=result.queue_s * 1000.0,
                    inference_ms=result.inference_s * 1000.0,
                    total_ms=(time.perf_counter() - started) * 1000.0,
                ),
            )
        )

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        """The process answers. Says nothing about the models."""
        return {"status": "live"}

    @app.get("/health/ready", responses={503: _PROBLEM_RESPONSES[503]})
    async def ready() -> dict[str, object]:
        """Ready once every model loaded and answered a warm-up forecast."""
        state.require_model(None)
        return {"status": "ready", "models": list(state.models)}

    @app.get("/info", response_model=ServiceInfo, responses={503: _PROBLEM_RESPONSES[503]})
    async def info() -> ServiceInfo:
        """Models, their limits and covariate support, and the library versions they run on."""
        default, _ = state.require_model(None)
        return ServiceInfo(
            family=family.name,
            default_model=default,
            models=[m.info for m in state.models.values()],
            versions={"python": platform.python_version(), "numpy": np.__version__, **family.versions()},
            batching=BatchingInfo(
                enabled=settings.batching,
                window_ms=settings.batch_window_ms,
                max_batch_series=settings.max_batch_series,
            ),
        )

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
