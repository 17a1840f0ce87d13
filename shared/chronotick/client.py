"""The Python client of the gateway, sync (``Client``) and async (``AsyncClient``).

Requests and answers are the shared contract's models, so a client is checked by the same rules
as the gateway before anything is sent. Only what a retry can fix is retried, with exponential
backoff and jitter: a connection that could not be made, and a 503 (the gateway's "no backend
answered", or a proxy in front of it). Every other error answer is raised at once as
``GatewayError`` carrying the gateway's problem+json, so callers act on its reason.

Needs the ``client`` extra of chronotick-shared (httpx, tenacity).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import TypeAdapter, ValidationError
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from chronotick.contract import (
    ClockId,
    ClockObservations,
    ClockReport,
    FleetModels,
    FusedPredictRequest,
    FusedPredictResponse,
    ObservationsScored,
    Problem,
)

DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
API_KEY_HEADER = "X-API-Key"
# The median with the 80 % and 95 % central intervals: what the CLI shows and the agent scores.
INTERVAL_QUANTILE_LEVELS = [0.025, 0.1, 0.5, 0.9, 0.975]
# Errors raised before the gateway saw the request (or on a pooled connection it had closed):
# sending again cannot do anything twice. A read timeout is not here: the gateway may be working.
_CONNECTION_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class ClientError(Exception):
    """Base of everything this client raises."""


class GatewayError(ClientError):
    """The gateway answered with an error; ``problem`` is its problem+json."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail}")
        self.problem = problem

    @property
    def status(self) -> int:
        return self.problem.status


class GatewayUnreachable(ClientError):
    """No answer: connection refused or timed out after every attempt."""


def _retryable(error: BaseException) -> bool:
    return isinstance(error, _CONNECTION_ERRORS) or (isinstance(error, GatewayError) and error.status == 503)


def _problem_of(response: httpx.Response) -> Problem:
    try:
        return Problem.model_validate_json(response.content)
    except ValidationError:
        # Not the gateway's problem+json (a proxy's page, say): keep what it said, shortened.
        return Problem(
            title=response.reason_phrase or "HTTP error",
            status=response.status_code,
            detail=response.text[:500] or "(empty body)",
        )


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise GatewayError(_problem_of(response))
    return response


def _body(request: FusedPredictRequest | ClockObservations) -> dict[str, Any]:
    return request.model_dump(mode="json", exclude_none=True)


_CLOCK_ID = TypeAdapter(ClockId)


def _clock_path(clock_id: str) -> str:
    """``/clocks/{clock_id}``, the id checked first: one the contract refuses ('/', '..') never
    reaches a URL."""
    return f"/clocks/{_CLOCK_ID.validate_python(clock_id)}"


def _observations(timestamps_s: Sequence[float], offsets_us: Sequence[float | None]) -> dict[str, Any]:
    return _body(ClockObservations(timestamps_s=list(timestamps_s), offsets_us=list(offsets_us)))


class _Settings:
    """What both clients share: where, how long, how often to try, and with which key."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_s: float,
        attempts: int,
        backoff_initial_s: float,
        backoff_max_s: float,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.base_url = base_url.rstrip("/")
        self.headers = {API_KEY_HEADER: api_key} if api_key else {}
        self.timeout = httpx.Timeout(timeout_s)
        self.retry_policy: dict[str, Any] = {
            "retry": retry_if_exception(_retryable),
            "stop": stop_after_attempt(attempts),
            # Jitter as large as the first wait keeps clients that failed together from retrying together.
            "wait": wait_exponential_jitter(multiplier=backoff_initial_s, jitter=backoff_initial_s, max=backoff_max_s),
            "reraise": True,
        }


class Client:
    """Blocking client; use it as a context manager or call ``close()``.

    >>> with Client("http://127.0.0.1:8000", api_key="secret") as client:
    ...     answer = client.predict(FusedPredictRequest(series=[...], horizon=10))
    """

    def __init__(
        self,
        base_url: str = DEFAULT_GATEWAY_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        attempts: int = 3,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = _Settings(base_url, api_key, timeout_s, attempts, backoff_initial_s, backoff_max_s)
        self._http = httpx.Client(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=self._settings.timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    def _attempt(self, method: str, path: str, json: dict[str, Any] | None) -> httpx.Response:
        return _checked(self._http.request(method, path, json=json))

    def _send(self, method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return Retrying(**self._settings.retry_policy)(self._attempt, method, path, json)
        except httpx.TransportError as error:
            raise GatewayUnreachable(f"{self.base_url}{path}: {error!r}") from error

    def predict(self, request: FusedPredictRequest) -> FusedPredictResponse:
        """The fused forecast of every series in ``request``."""
        return FusedPredictResponse.model_validate_json(self._send("POST", "/predict", _body(request)).content)

    def models(self) -> FleetModels:
        """The fleet: services, their models and versions, breaker state, classical members."""
        return FleetModels.model_validate_json(self._send("GET", "/models").content)

    def ready(self) -> dict[str, Any]:
        """The gateway's readiness and the services it counts as ready."""
        return dict(self._send("GET", "/health/ready").json())

    def clock(self, clock_id: str) -> ClockReport:
        """What the gateway remembers of one clock; a clock it does not know raises GatewayError 404."""
        return ClockReport.model_validate_json(self._send("GET", _clock_path(clock_id)).content)

    def forget_clock(self, clock_id: str) -> None:
        """Forget a clock, so that its next request starts cold; one it does not know raises GatewayError 404."""
        self._send("DELETE", _clock_path(clock_id))

    def observe(
        self, clock_id: str, timestamps_s: Sequence[float], offsets_us: Sequence[float | None]
    ) -> ObservationsScored:
        """Send measurements of a remembered clock without asking for a forecast: they score its pending
        forecasts (for a client that measures more often than it asks)."""
        body = _observations(timestamps_s, offsets_us)
        response = self._send("POST", f"{_clock_path(clock_id)}/observations", body)
        return ObservationsScored.model_validate_json(response.content)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class AsyncClient:
    """The same calls for asyncio; use it with ``async with`` or await ``aclose()``."""

    def __init__(
        self,
        base_url: str = DEFAULT_GATEWAY_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        attempts: int = 3,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = _Settings(base_url, api_key, timeout_s, attempts, backoff_initial_s, backoff_max_s)
        self._http = httpx.AsyncClient(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=self._settings.timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    async def _attempt(self, method: str, path: str, json: dict[str, Any] | None) -> httpx.Response:
        return _checked(await self._http.request(method, path, json=json))

    async def _send(self, method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return await AsyncRetrying(**self._settings.retry_policy)(self._attempt, method, path, json)
        except httpx.TransportError as error:
            raise GatewayUnreachable(f"{self.base_url}{path}: {error!r}") from error

    async def predict(self, request: FusedPredictRequest) -> FusedPredictResponse:
        """The fused forecast of every series in ``request``."""
        response = await self._send("POST", "/predict", _body(request))
        return FusedPredictResponse.model_validate_json(response.content)

    async def models(self) -> FleetModels:
        """The fleet: services, their models and versions, breaker state, classical members."""
        return FleetModels.model_validate_json((await self._send("GET", "/models")).content)

    async def ready(self) -> dict[str, Any]:
        """The gateway's readiness and the services it counts as ready."""
        return dict((await self._send("GET", "/health/ready")).json())

    async def clock(self, clock_id: str) -> ClockReport:
        """What the gateway remembers of one clock; a clock it does not know raises GatewayError 404."""
        return ClockReport.model_validate_json((await self._send("GET", _clock_path(clock_id))).content)

    async def forget_clock(self, clock_id: str) -> None:
        """Forget a clock, so that its next request starts cold; one it does not know raises GatewayError 404."""
        await self._send("DELETE", _clock_path(clock_id))

    async def observe(
        self, clock_id: str, timestamps_s: Sequence[float], offsets_us: Sequence[float | None]
    ) -> ObservationsScored:
        """Send measurements of a remembered clock without asking for a forecast: they score its pending
        forecasts (for a client that measures more often than it asks)."""
        body = _observations(timestamps_s, offsets_us)
        response = await self._send("POST", f"{_clock_path(clock_id)}/observations", body)
        return ObservationsScored.model_validate_json(response.content)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()
