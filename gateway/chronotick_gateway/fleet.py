"""The gateway's view of the family services: health polling, breakers, and calls with retries.

Two pooled ``httpx.AsyncClient``s: one for forecast calls, one for health checks, so that the
view of the fleet never waits behind forecast traffic. A call is retried (tenacity, exponential
backoff with jitter) only on connection errors, timeouts and 502/503/504, a bounded number of
times and never past the caller's deadline; a 4xx is the request's fault and is never retried.
Each attempt first takes a slot of the service's admission control (``admission``): a service
that cannot answer in time is not sent the call. A background task polls ``/health/ready`` of
every service, so a restarted service rejoins without a gateway restart, and probes open
breakers; a round that fails or hangs is logged and counted, and the view's age is exported,
so a stale view shows. A new configuration (``apply``) adds and removes services; those it keeps
keep their state, breaker and admission control.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError
from pydantic_core import to_json
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from chronotick.contract import TIMEOUT_HEADER, BackendStatus, PredictResponse, ServiceInfo, ServiceStatus
from chronotick_gateway.admission import Overloaded, ServiceLoad
from chronotick_gateway.breaker import CircuitBreaker
from chronotick_gateway.config import FleetConfig
from chronotick_gateway.metrics import GatewayMetrics
from chronotick_gateway.settings import GatewaySettings

logger = logging.getLogger("chronotick.gateway.fleet")

RETRYABLE_STATUS = frozenset({502, 503, 504})


def encode_json(body: object) -> bytes:
    """A request body as JSON, with NaN written as ``null`` (the contract's missing sample).

    pydantic-core's encoder takes the plain lists of ``ndarray.tolist()`` in one pass, an order
    of magnitude faster than the standard library's, and writes floats in their shortest exact form.
    """
    return to_json(body, inf_nan_mode="null")


class BackendError(Exception):
    """A call that gave no usable answer; ``counts`` says whether the breaker should hear of it."""

    def __init__(
        self, status: BackendStatus, reason: str, *, retries: int = 0, counts: bool = True, refused: bool = False
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retries = retries
        self.counts = counts
        self.refused = refused  # the service answered 4xx: the request's fault, not the service's


class _Retryable(BackendError):
    pass


@dataclass
class Service:
    name: str
    url: str
    breaker: CircuitBreaker
    load: ServiceLoad
    ready: bool = False
    info: ServiceInfo | None = None
    last_error: str | None = None
    failed_checks: int = 0

    def status(self) -> ServiceStatus:
        return ServiceStatus(
            name=self.name,
            url=self.url,
            ready=self.ready,
            breaker=self.breaker.state.value,
            last_error=self.last_error,
            info=self.info,
        )


@dataclass(frozen=True)
class CallResult:
    response: PredictResponse
    retries: int


@dataclass
class Fleet:
    """``http`` carries the forecast calls, ``health_http`` the health checks (never the same
    client: a pool busy with forecasts must not make healthy services look dead)."""

    config: FleetConfig
    http: httpx.AsyncClient
    health_http: httpx.AsyncClient
    metrics: GatewayMetrics
    services: dict[str, Service] = field(default_factory=dict)
    last_poll_at: float | None = None  # time.monotonic() of the last completed health-poll round
    _unfinished: set[asyncio.Task[Any]] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self._put_in_force(self.config, self._services_of(self.config))
        self.metrics.fleet_view_age.set_function(lambda: self.view_age_s() or 0.0)

    @property
    def settings(self) -> GatewaySettings:
        """The settings in force now; a request uses those it started with (``config.settings``)."""
        return self.config.settings

    async def apply(self, config: FleetConfig) -> None:
        """Put ``config`` in force for requests that start from now on. Its new services are checked
        first: a request under it never finds a member it names "not ready" only because nobody
        has asked that service yet."""
        services = self._services_of(config)
        await asyncio.gather(
            *(self._check(service) for name, service in services.items() if self.services.get(name) is not service)
        )
        self._put_in_force(config, services)

    def _services_of(self, config: FleetConfig) -> dict[str, Service]:
        """The services ``config`` names: those kept (same URL) with their state and breaker, the others new."""
        settings = config.settings
        services: dict[str, Service] = {}
        for name, url in settings.services.items():
            kept = self.services.get(name)
            if kept is not None and kept.url == str(url).rstrip("/"):
                services[name] = kept
            else:
                breaker = CircuitBreaker(failure_threshold=settings.breaker_failures, reset_s=settings.breaker_reset_s)
                services[name] = Service(
                    name=name,
                    url=str(url).rstrip("/"),
                    breaker=breaker,
                    load=ServiceLoad(settings.service_max_in_flight),
                )
        return services

    def _put_in_force(self, config: FleetConfig, services: dict[str, Service]) -> None:
        """Swap in the configuration and its ``services`` (from ``_services_of``) in one step (no
        await in between)."""
        for service in services.values():
            service.breaker.failure_threshold = config.settings.breaker_failures
            service.breaker.reset_s = config.settings.breaker_reset_s
            service.load.max_in_flight = config.settings.service_max_in_flight
        for gone in set(self.services) - set(services):
            self.metrics.forget_service(gone)
        self.services = services
        self.config = config
        self.metrics.default_deadline.set(config.settings.default_deadline_s)

    # --- health ---------------------------------------------------------------------------------

    async def poll_forever(self) -> None:
        """Poll every service's health, a round each ``health_interval_s``, for as long as the
        gateway runs. A round that fails or hangs is logged and counted; the next one comes anyway
        (``background.supervise`` restarts this loop should anything else go wrong)."""
        while True:
            try:
                # Each check has its own timeout; this bounds the round whatever happens inside.
                await asyncio.wait_for(self.poll_once(), timeout=self.round_timeout_s())
            except TimeoutError:
                self.metrics.background_failures.labels(task="health-poll-round").inc()
                logger.error("a health-poll round did not finish within %.1f s", self.round_timeout_s())
            await asyncio.sleep(self.settings.health_interval_s)

    async def poll_once(self) -> None:
        await asyncio.gather(*(self._check(service) for service in self.services.values()))
        self.last_poll_at = time.monotonic()

    def round_timeout_s(self) -> float:
        return 2.0 * self.settings.health_timeout_s + 1.0  # /health/ready, then /info when it (re)joins

    def view_age_s(self) -> float | None:
        """Seconds since the last completed health-poll round; None before the first."""
        if self.last_poll_at is None:
            return None
        return time.monotonic() - self.last_poll_at

    def view_is_stale(self) -> bool:
        """The view of the fleet is older than a few rounds: the poller is not keeping it current."""
        age = self.view_age_s()
        return age is None or age > 3.0 * self.settings.health_interval_s + self.round_timeout_s()

    async def _check(self, service: Service) -> None:
        was_ready = service.ready
        try:
            response = await self.health_http.get(f"{service.url}/health/ready", timeout=self.settings.health_timeout_s)
            healthy = response.status_code == 200
            error = None if healthy else f"/health/ready answered {response.status_code}"
            if healthy and (not was_ready or service.info is None):
                # A service that (re)joins may come back with other models or versions.
                info = await self.health_http.get(f"{service.url}/info", timeout=self.settings.health_timeout_s)
                service.info = ServiceInfo.model_validate_json(info.content)
        except (httpx.HTTPError, ValidationError) as problem:
            healthy, error = False, f"health check failed: {type(problem).__name__}: {problem}"
        service.failed_checks = 0 if healthy else service.failed_checks + 1
        service.ready = healthy or (was_ready and service.failed_checks < self.settings.unready_after_failed_checks)
        service.last_error = error
        if service.breaker.probe_due:
            service.breaker.record_probe(healthy)
        if service.ready != was_ready:
            logger.info("service %s is %s", service.name, "ready" if service.ready else f"not ready ({error})")
        self._observe_service(service)

    # --- calls ----------------------------------------------------------------------------------

    def let_finish(self, tasks: set[asyncio.Task[Any]]) -> None:
        """Keep calls that a request stopped waiting for running until they end by themselves.

        They are never cancelled: a cancellation that lands while httpcore is between assigning a
        connection and using it leaves that connection in the pool for good (encode/httpcore#1093,
        the likely cause of every call, health checks included, failing with PoolTimeout after a
        load test). Every call carries a timeout that ends at its request's deadline, so they end
        about then, and they hold their admission slots until they do.
        """
        for task in tasks:
            self._unfinished.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._unfinished.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a call left to finish failed unexpectedly", exc_info=task.exception())

    async def predict(
        self, service: Service, body: bytes, deadline: float, member: str, settings: GatewaySettings
    ) -> CallResult:
        """POST /predict (``body``: JSON from ``encode_json``) with retries inside ``deadline`` (event-loop
        time), under the ``settings`` the request started with."""
        loop = asyncio.get_running_loop()
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.retry_attempts) | stop_before_delay(max(0.0, deadline - loop.time())),
            wait=wait_exponential_jitter(
                multiplier=settings.retry_initial_s,
                max=settings.retry_max_s,
                jitter=settings.retry_initial_s,
            ),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    if attempts > 1:
                        self.metrics.retries.labels(backend=member).inc()
                    result = await self._attempt(service, body, deadline)
        except BackendError as error:
            error.retries = attempts - 1
            if error.status == "overloaded":
                self.metrics.overloaded.labels(backend=member).inc()
            if error.counts:
                service.breaker.record_failure()
                self.metrics.failures.labels(backend=member, status=error.status).inc()
            self._observe_service(service)
            raise
        service.breaker.record_success()
        self._observe_service(service)
        return CallResult(result, attempts - 1)

    def _in_force(self, service: Service) -> bool:
        """Still the service of that name: a call or check that outlived a reload must not bring
        back the gauges of a service the reload removed or replaced."""
        return self.services.get(service.name) is service

    def _observe_service(self, service: Service) -> None:
        if self._in_force(service):
            self.metrics.observe_service(service.name, service.ready, service.breaker.state)

    def _observe_in_flight(self, service: Service) -> None:
        if self._in_force(service):
            self.metrics.in_flight.labels(service=service.name).set(service.load.in_flight)

    async def _attempt(self, service: Service, body: bytes, deadline: float) -> PredictResponse:
        loop = asyncio.get_running_loop()
        remaining_s = deadline - loop.time()
        if remaining_s <= 0:
            raise BackendError("timeout", "no time left before the deadline", counts=False)  # ours, not its
        try:
            async with service.load.slot(remaining_s):
                self._observe_in_flight(service)
                if deadline - loop.time() <= 0:
                    raise BackendError(
                        "timeout", "no time left before the deadline after waiting for a call slot", counts=False
                    )
                response = await self._post(service, body, deadline - loop.time())
        except Overloaded as error:
            # Not sent: the service is not at fault, only busy. Retrying within this deadline
            # would only find it as busy.
            raise BackendError("overloaded", str(error), counts=False) from None
        finally:
            self._observe_in_flight(service)
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable("failed", f"HTTP {response.status_code}: {_detail(response)}")
        if response.status_code >= 400:
            # The backend refused this request (a 4xx): the backend is healthy, the request is not.
            raise BackendError(
                "failed",
                f"HTTP {response.status_code}: {_detail(response)}",
                counts=response.status_code >= 500,
                refused=response.status_code < 500,
            )
        try:
            return PredictResponse.model_validate_json(response.content)
        except ValidationError as error:
            raise BackendError(
                "failed", f"malformed answer: {error.error_count()} schema errors, first: {error.errors()[0]['msg']}"
            ) from error

    async def _post(self, service: Service, body: bytes, remaining_s: float) -> httpx.Response:
        """One POST /predict inside ``remaining_s``; its duration feeds the service's latency estimate
        (answers and timeouts, not refused connections: those say nothing about its speed)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        headers = {"content-type": "application/json", TIMEOUT_HEADER: f"{remaining_s * 1000:.0f}"}
        try:
            response = await self.http.post(
                f"{service.url}/predict", content=body, headers=headers, timeout=remaining_s
            )
        except httpx.TimeoutException as error:
            service.load.observe_timeout(loop.time() - started)
            raise _Retryable("timeout", f"no answer within the deadline ({type(error).__name__})") from error
        except httpx.TransportError as error:
            raise _Retryable("failed", f"connection failed: {type(error).__name__}: {error}") from error
        except httpx.HTTPError as error:  # an answer httpx cannot read (bad encoding, redirects)
            raise BackendError("failed", f"unreadable answer: {type(error).__name__}: {error}") from error
        service.load.observe(loop.time() - started)
        return response


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", response.text[:200])) if isinstance(body, dict) else response.text[:200]
