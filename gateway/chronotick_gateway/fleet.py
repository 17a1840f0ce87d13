"""The gateway's view of the family services: health polling, breakers, and calls with retries.

One pooled ``httpx.AsyncClient`` serves every call. A call is retried (tenacity, exponential
backoff with jitter) only on connection errors, timeouts and 502/503/504, a bounded number of
times and never past the caller's deadline; a 4xx is the request's fault and is never retried.
A background task polls ``/health/ready`` of every service, so a restarted service rejoins
without a gateway restart, and probes open breakers. A new configuration (``apply``) adds and
removes services; those it keeps keep their state and breaker.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

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

from chronotick.contract import BackendStatus, PredictResponse, ServiceInfo, ServiceStatus
from chronotick_gateway.breaker import CircuitBreaker
from chronotick_gateway.config import FleetConfig
from chronotick_gateway.metrics import GatewayMetrics
from chronotick_gateway.settings import GatewaySettings

logger = logging.getLogger("chronotick.gateway.fleet")

RETRYABLE_STATUS = frozenset({502, 503, 504})
_JSON_HEADERS = {"content-type": "application/json"}


def encode_json(body: object) -> bytes:
    """A request body as JSON, with NaN written as ``null`` (the contract's missing sample).

    pydantic-core's encoder takes the plain lists of ``ndarray.tolist()`` in one pass, an order
    of magnitude faster than the standard library's, and writes floats in their shortest exact form.
    """
    return to_json(body, inf_nan_mode="null")


class BackendError(Exception):
    """A call that gave no usable answer; ``counts`` says whether the breaker should hear of it."""

    def __init__(self, status: BackendStatus, reason: str, *, retries: int = 0, counts: bool = True) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retries = retries
        self.counts = counts


class _Retryable(BackendError):
    pass


@dataclass
class Service:
    name: str
    url: str
    breaker: CircuitBreaker
    ready: bool = False
    info: ServiceInfo | None = None
    last_error: str | None = None
    failed_checks: int = 0

    def status(self) -> ServiceStatus:
        return ServiceStatus(
            name=self.name, url=self.url, ready=self.ready, breaker=self.breaker.state.value,
            last_error=self.last_error, info=self.info,
        )


@dataclass(frozen=True)
class CallResult:
    response: PredictResponse
    retries: int


@dataclass
class Fleet:
    config: FleetConfig
    http: httpx.AsyncClient
    metrics: GatewayMetrics
    services: dict[str, Service] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._put_in_force(self.config, self._services_of(self.config))

    @property
    def settings(self) -> GatewaySettings:
        """The settings in force now; a request uses those it started with (``config.settings``)."""
        return self.config.settings

    async def apply(self, config: FleetConfig) -> None:
        """Put ``config`` in force for requests that start from now on. Its new services are checked
        first: a request under it never finds a member it names "not ready" only because nobody
        has asked that service yet."""
        services = self._services_of(config)
        await asyncio.gather(*(self._check(service) for name, service in services.items()
                               if self.services.get(name) is not service))
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
                services[name] = Service(name=name, url=str(url).rstrip("/"), breaker=breaker)
        return services

    def _put_in_force(self, config: FleetConfig, services: dict[str, Service]) -> None:
        """Swap in the configuration and its ``services`` (from ``_services_of``) in one step (no
        await in between)."""
        for service in services.values():
            service.breaker.failure_threshold = config.settings.breaker_failures
            service.breaker.reset_s = config.settings.breaker_reset_s
        for gone in set(self.services) - set(services):
            self.metrics.breaker.remove(gone)
        self.services = services
        self.config = config

    # --- health ---------------------------------------------------------------------------------

    async def poll_forever(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.settings.health_interval_s)

    async def poll_once(self) -> None:
        await asyncio.gather(*(self._check(service) for service in self.services.values()))

    async def _check(self, service: Service) -> None:
        was_ready = service.ready
        try:
            response = await self.http.get(f"{service.url}/health/ready", timeout=self.settings.health_timeout_s)
            healthy = response.status_code == 200
            error = None if healthy else f"/health/ready answered {response.status_code}"
            if healthy and (not was_ready or service.info is None):
                # A service that (re)joins may come back with other models or versions.
                info = await self.http.get(f"{service.url}/info", timeout=self.settings.health_timeout_s)
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
        self.metrics.observe_breaker(service.name, service.breaker.state)

    # --- calls ----------------------------------------------------------------------------------

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
                multiplier=settings.retry_initial_s, max=settings.retry_max_s, jitter=settings.retry_initial_s,
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
                    result = await self._attempt(service, body, deadline - loop.time())
        except BackendError as error:
            error.retries = attempts - 1
            if error.counts:
                service.breaker.record_failure()
                self.metrics.failures.labels(backend=member, status=error.status).inc()
            self.metrics.observe_breaker(service.name, service.breaker.state)
            raise
        service.breaker.record_success()
        self.metrics.observe_breaker(service.name, service.breaker.state)
        return CallResult(result, attempts - 1)

    async def _attempt(self, service: Service, body: bytes, remaining_s: float) -> PredictResponse:
        if remaining_s <= 0:
            raise BackendError("timeout", "no time left before the deadline")
        try:
            response = await self.http.post(f"{service.url}/predict", content=body, headers=_JSON_HEADERS,
                                           timeout=remaining_s)
        except httpx.TimeoutException as error:
            raise _Retryable("timeout", f"no answer within the deadline ({type(error).__name__})") from error
        except httpx.TransportError as error:
            raise _Retryable("failed", f"connection failed: {type(error).__name__}: {error}") from error
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable("failed", f"HTTP {response.status_code}: {_detail(response)}")
        if response.status_code >= 400:
            # The backend refused this request (a 4xx): the backend is healthy, the request is not.
            raise BackendError("failed", f"HTTP {response.status_code}: {_detail(response)}",
                               counts=response.status_code >= 500)
        try:
            return PredictResponse.model_validate_json(response.content)
        except ValidationError as error:
            raise BackendError("failed", f"malformed answer: {error.error_count()} schema errors, "
                                         f"first: {error.errors()[0]['msg']}") from error


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text[:200]))
    except ValueError:
        return response.text[:200]
