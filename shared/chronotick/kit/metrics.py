"""Prometheus metrics of one service, on a registry of its own (several apps can share a process)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chronotick.kit.batching import MicroBatcher

_LATENCY_BUCKETS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chronotick_requests",
            "Forecast requests answered, by HTTP status.",
            ["status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "chronotick_request_seconds",
            "Time to answer POST /predict.",
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "chronotick_inference_seconds",
            "Model call time per batch.",
            ["model"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.batch_series = Histogram(
            "chronotick_batch_series",
            "Series per model call (micro-batching at work).",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "chronotick_errors",
            "Error answers, by HTTP status.",
            ["status"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "chronotick_ready",
            "1 once the weights are loaded and a warm-up forecast succeeded.",
            registry=self.registry,
        )

    def observe_batch(self, model: str, series: int, inference_s: float) -> None:
        self.batch_series.labels(model=model).observe(series)
        self.inference_seconds.labels(model=model).observe(inference_s)


class PredictionMeter:
    """Pure ASGI middleware around POST /predict: tells the micro-batcher a request is on its way
    (``scope["state"]["arrival"]``, before its body is read and parsed, so a forming batch waits
    for it) and counts the answer.

    Not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs each request in a task
    group and streams the answer through a memory channel, which cost a share of every call.
    """

    def __init__(self, app: ASGIApp, *, batcher: MicroBatcher, metrics: ServiceMetrics) -> None:
        self.app = app
        self.batcher = batcher
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before it answers

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        arrival = self.batcher.announce()
        scope.setdefault("state", {})["arrival"] = arrival
        try:
            await self.app(scope, receive, counting_send)
        finally:
            arrival.close()
            self.metrics.request_seconds.observe(time.perf_counter() - started)
            self.metrics.requests.labels(status=str(status)).inc()
