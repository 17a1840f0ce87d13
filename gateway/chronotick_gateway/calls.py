"""The gateway's calls to the models: their bodies, and requests in flight together asking in one call.

A model forecasts a batch of series for little more than one (measured on the micro-checkpoints,
each service alone, CPU per call: chronos-bolt 10.0 ms for one series, 14.5 for four, 17.8 for
eight; ttm 8.8 / 12.0 / 16.2; timemoe 10.7 / 21.3 / 36.0). The services batch the calls that reach
them together, but the gateway's calls to one model under load come a few a second each, spread
out, so the services' batches held 1.03-1.18 series on average at 8 and 16 clients: nearly every
series paid a whole call. Here, each model gets at most ``model_calls_in_flight`` calls (1 by
default) in flight from this gateway, per kind of call (``CallKind``), and the series of the
requests that want it meanwhile go together in the next one, as soon as one returns. An idle model
is asked at once, so a lone client waits for nothing; a busy one gets larger calls, and the busier
the larger, which is when the saving counts.

A call takes only as many requests as the kind's recent calls say can come back within half the
time to the earliest of their deadlines (``_Pace``: time per series, learned from the calls; a
kind's first call carries one request), so a slow model is not sent calls that would all time out
together. A request that waited for a call and could no longer come back in time is not sent
(``overloaded``, as admission control does), nor one whose deadline passed while it queued; and a
model whose series queue here counts as busy for the reuse of its kept forecasts (``busy``).

Nothing else changes for a request: its series come back as if it had asked alone (a service
forecasts each series of a batch as it would alone; ``chronotick.kit.batching``), and a call keeps
the retries, admission control, breaker and timeout of ``Fleet.predict``. A shared call waits for
the latest deadline among its requests; each request still stops waiting at its own (the app's
``members_by``). A call that the service refuses (a 4xx) is sent again one request at a time, so
one bad request fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from chronotick.contract import SeriesForecast
from chronotick_gateway.admission import BUSY_SHARE, smoothed
from chronotick_gateway.backtest import SeriesPlan
from chronotick_gateway.fleet import BackendError, Fleet, Service, encode_json
from chronotick_gateway.settings import GatewaySettings

logger = logging.getLogger("chronotick.gateway.calls")

# A backend call stays well under the services' limits (256 series, 2 MB body).
MAX_SERIES_PER_CALL = 256
MAX_POINTS_PER_CALL = 120_000


def member_items(
    plans: list[SeriesPlan],
    *,
    past_covariates: AbstractSet[str],
    future_covariates: AbstractSet[str],
) -> list[dict[str, object]]:
    """Every series and its backtest cuts, in order, as a model is sent them (``SeriesPlan.series_body``).

    Each series carries only the covariates named in ``past_covariates`` (those the model knows:
    ``member_covariates``), with their known future values where also named in ``future_covariates``;
    a model without covariates forecasts from the offsets alone.
    """
    return [
        plan.series_body(origin, past_covariates=past_covariates, future_covariates=future_covariates)
        for plan in plans
        for origin in (None, *plan.origins)
    ]


def item_points(item: dict[str, object]) -> int:
    """The values a series adds to a call: its offsets and each covariate's (the services' limits count them)."""
    covariates = item.get("covariates", {})
    return len(item["offsets_us"]) * (1 + len(covariates))  # type: ignore[arg-type]


def within_limits(items: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    """``items`` in order, in as few calls as fit under the services' limits (series and values)."""
    chunks: list[list[dict[str, object]]] = [[]]
    points = 0
    for item in items:
        size = item_points(item)
        if chunks[-1] and (len(chunks[-1]) >= MAX_SERIES_PER_CALL or points + size > MAX_POINTS_PER_CALL):
            chunks.append([])
            points = 0
        chunks[-1].append(item)
        points += size
    return chunks


def call_body(items: list[dict[str, object]], horizon: int, model: str, *, skip_spread_backtests: bool) -> bytes:
    """One call's request: ``items`` (from ``member_items``) for ``model``. ``skip_spread_backtests`` is
    the contract's: the gateway calibrates the spread itself. The series were cleaned by the gateway
    already (``clean`` off: no second pass, and a backtest cut ending in what the full series shows to be
    a spike keeps the gateway's verdict)."""
    return encode_json(
        {
            "series": items,
            "horizon": horizon,
            "quantile_levels": [0.5],
            "model": model,
            "skip_spread_backtests": skip_spread_backtests,
            "clean": False,
        }
    )


def call_bodies(
    items: list[dict[str, object]], horizon: int, model: str, *, skip_spread_backtests: bool
) -> list[bytes]:
    """The encoded requests that ask ``model`` for ``items``, in order, in as few calls as fit under
    the services' limits."""
    return [
        call_body(chunk, horizon, model, skip_spread_backtests=skip_spread_backtests) for chunk in within_limits(items)
    ]


def member_bodies(
    plans: list[SeriesPlan],
    horizon: int,
    model: str,
    *,
    past_covariates: AbstractSet[str],
    future_covariates: AbstractSet[str],
    skip_spread_backtests: bool,
) -> list[bytes]:
    """The encoded requests that ask ``model`` for every series and its backtest cuts, in order,
    in as few calls as fit under the services' limits (one request's calls, sent alone)."""
    items = member_items(plans, past_covariates=past_covariates, future_covariates=future_covariates)
    return call_bodies(items, horizon, model, skip_spread_backtests=skip_spread_backtests)


@dataclass(frozen=True)
class CallKind:
    """What two requests' series must share to go in one call: everything a call says but its series."""

    service: str
    url: str
    model: str
    horizon: int
    covariates: tuple[str, ...]
    skip_spread_backtests: bool


@dataclass
class _Submission:
    """One request's series for a model, waiting for their forecasts (with the call's retries)."""

    items: list[dict[str, object]]
    deadline: float
    settings: GatewaySettings
    answered: asyncio.Future[tuple[list[SeriesForecast], int]]
    queued: bool = False  # it has waited for a call: every call its kind may have was in flight
    series: int = field(init=False)
    points: int = field(init=False)  # its values, as the services' limits count them

    def __post_init__(self) -> None:
        self.series = len(self.items)
        self.points = sum(item_points(item) for item in self.items)


@dataclass
class _Pace:
    """How long a series has taken in a kind's calls: an exponentially weighted mean of the calls'
    time per series (``seconds_per_series``; None until a call has come back)."""

    seconds_per_series: float | None = None

    def observe(self, duration_s: float, series: int) -> None:
        self.seconds_per_series = smoothed(self.seconds_per_series, duration_s / series)

    def observe_timeout(self, waited_s: float, series: int) -> None:
        """A call of ``series`` that had not come back after ``waited_s``: each series took more than
        ``waited_s / series``, by how much nobody knows. Counted at twice that, the next calls, sized
        to half the time they have (``in_time``), take a quarter of its series at most."""
        self.seconds_per_series = max(self.seconds_per_series or 0.0, 2.0 * waited_s / series)

    def could_return(self, series: int, remaining_s: float) -> bool:
        """Whether a call of ``series`` could come back within ``remaining_s`` at all (unknown: yes)."""
        return self.seconds_per_series is None or series * self.seconds_per_series <= remaining_s

    def describe(self) -> str:
        if self.seconds_per_series is None:
            return "an unknown time"
        return f"{self.seconds_per_series * 1000:.0f} ms a series"

    def in_time(self, series: int, remaining_s: float) -> bool:
        """Whether a call of ``series`` should come back within ``BUSY_SHARE`` of ``remaining_s``. Unknown
        (no call has come back yet): no, so a kind's first calls carry one request each. Counting every
        series at the whole call's share overstates a large call (a model's cost is mostly per call),
        which only keeps calls smaller than they could be."""
        return self.seconds_per_series is not None and series * self.seconds_per_series <= BUSY_SHARE * remaining_s


@dataclass
class _Lane:
    """A kind of call: the requests waiting for a call, and the calls in flight."""

    service: Service
    pace: _Pace
    waiting: deque[_Submission] = field(default_factory=deque)
    in_flight: int = 0
    series_in_flight: int = 0
    scheduled: bool = False

    def expected_s(self, calls_in_flight: int) -> float:
        """How long a series that wants this kind now should take to come back: the calls ahead of
        it (those in flight, if no other may go out meanwhile, and the series waiting) and its own,
        at the kind's pace; 0 while it is unknown."""
        per_series = self.pace.seconds_per_series
        if per_series is None:
            return 0.0
        ahead = self.series_in_flight if self.in_flight >= calls_in_flight else 0
        return per_series * (ahead + sum(submission.series for submission in self.waiting) + 1)


@dataclass
class CallCoalescer:
    """The calls of this gateway's requests to the model services: of each kind at most
    ``fleet.settings.model_calls_in_flight`` at a time, the requests that come meanwhile together
    in the next."""

    fleet: Fleet
    _lanes: dict[CallKind, _Lane] = field(default_factory=dict)
    # Kept when a lane empties: a kind's next burst is sized by what its calls took before.
    _paces: dict[CallKind, _Pace] = field(default_factory=dict)
    _sending: set[asyncio.Task[None]] = field(default_factory=set)

    async def forecast(
        self,
        service: Service,
        kind: CallKind,
        items: list[dict[str, object]],
        deadline: float,
        settings: GatewaySettings,
    ) -> tuple[list[SeriesForecast], int]:
        """The forecasts of ``items`` (in order) and the retries their call took, asked together with
        those of the other requests that want the same kind of call now; raises ``BackendError``."""
        submission = _Submission(items, deadline, settings, asyncio.get_running_loop().create_future())
        lane = self._lanes.get(kind)
        if lane is None:
            lane = self._lanes[kind] = _Lane(service, self._paces.setdefault(kind, _Pace()))
        # One that finds a call slot free is sent whatever the pace says (as admission control tries
        # a service with no call in flight): that is how a model that was slow shows it is fast again.
        submission.queued = lane.in_flight >= self.fleet.settings.model_calls_in_flight
        lane.waiting.append(submission)
        if not lane.scheduled:
            # At the end of this turn of the loop: the requests that want the model in the same turn
            # go together even when nothing is in flight.
            lane.scheduled = True
            asyncio.get_running_loop().call_soon(self._pump, kind, lane)
        return await submission.answered

    def busy(self, service: Service, model: str, remaining_s: float) -> bool:
        """Whether a call of ``model`` sent now is expected to take more than ``BUSY_SHARE`` of
        ``remaining_s``: its service is busy (``ServiceLoad.busy``), or its series queue here behind
        the calls in flight (``reuse`` then prefers a member's older forecast)."""
        if service.load.busy(remaining_s):
            return True
        calls_in_flight = self.fleet.settings.model_calls_in_flight
        return any(
            lane.expected_s(calls_in_flight) > BUSY_SHARE * remaining_s
            for kind, lane in self._lanes.items()
            if kind.service == service.name and kind.model == model
        )

    def _pump(self, kind: CallKind, lane: _Lane) -> None:
        """Send the lane's waiting requests while fewer than the allowed calls are in flight."""
        lane.scheduled = False
        while lane.waiting and lane.in_flight < self.fleet.settings.model_calls_in_flight:
            batch = self._next_batch(kind, lane)
            if not batch:
                break
            lane.in_flight += 1
            lane.series_in_flight += sum(submission.series for submission in batch)
            task = asyncio.create_task(self._send_then_pump(kind, lane, batch), name=f"call to {kind.model}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        for submission in lane.waiting:  # left for a later call: they wait for one now
            submission.queued = True
        if not lane.waiting and not lane.in_flight and self._lanes.get(kind) is lane:
            del self._lanes[kind]

    async def _send_then_pump(self, kind: CallKind, lane: _Lane, batch: list[_Submission]) -> None:
        try:
            await self._send(lane, kind, batch)
        except Exception as error:  # a defect here must not leave requests waiting for ever
            logger.exception("a call to %s failed unexpectedly", kind.model)
            for submission in batch:
                _settle(submission, error=BackendError("failed", f"unexpected error: {type(error).__name__}: {error}"))
        finally:
            lane.in_flight -= 1
            lane.series_in_flight -= sum(submission.series for submission in batch)
            self._pump(kind, lane)

    def _next_batch(self, kind: CallKind, lane: _Lane) -> list[_Submission]:
        """The waiting requests that the next call takes, in order of arrival: as many as fit under
        the services' limits and as the kind's recent calls say can come back within half the time to
        the earliest of their deadlines (``_Pace.in_time``; at least one, which ``_send`` splits if it
        is too large alone); those whose deadline passed while they waited are told so and dropped."""
        now = asyncio.get_running_loop().time()
        batch: list[_Submission] = []
        series = points = 0
        earliest = float("inf")
        while lane.waiting:
            submission = lane.waiting[0]
            if submission.deadline <= now:
                lane.waiting.popleft()
                _settle(
                    submission,
                    error=BackendError(
                        "timeout", "the deadline passed while the call waited for the one before it", counts=False
                    ),
                )
                continue
            if submission.queued and not lane.pace.could_return(submission.series, submission.deadline - now):
                # As admission control does for a call: not sent, the service is not at fault.
                lane.waiting.popleft()
                self.fleet.metrics.overloaded.labels(backend=kind.model).inc()
                _settle(
                    submission,
                    error=BackendError(
                        "overloaded",
                        f"service busy: its calls of this model took {lane.pace.describe()}; after "
                        f"waiting for the call before, {(submission.deadline - now) * 1000:.0f} ms were left "
                        "before the deadline",
                        counts=False,
                    ),
                )
                continue
            if batch and (
                series + submission.series > MAX_SERIES_PER_CALL
                or points + submission.points > MAX_POINTS_PER_CALL
                or not lane.pace.in_time(series + submission.series, min(earliest, submission.deadline) - now)
            ):
                break
            lane.waiting.popleft()
            batch.append(submission)
            series += submission.series
            points += submission.points
            earliest = min(earliest, submission.deadline)
        return batch

    async def _send(self, lane: _Lane, kind: CallKind, batch: list[_Submission]) -> None:
        """One call for the ``batch`` (or, for one request too large for a call, its calls), each
        request answered with its own series' forecasts."""
        items = [item for submission in batch for item in submission.items]
        deadline = max(submission.deadline for submission in batch)
        settings = batch[0].settings
        bodies = call_bodies(items, kind.horizon, kind.model, skip_spread_backtests=kind.skip_spread_backtests)
        self.fleet.metrics.requests_per_call.labels(backend=kind.model).observe(len(batch))
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            results = await asyncio.gather(
                *(self.fleet.predict(lane.service, body, deadline, kind.model, settings) for body in bodies)
            )
        except BackendError as error:
            if error.status == "timeout" and error.counts:  # sent, and not back in time
                lane.pace.observe_timeout(loop.time() - started, len(items))
            if len(batch) > 1 and error.refused:
                # One request's series may be what the service refused: each is asked alone.
                await asyncio.gather(*(self._send(lane, kind, [submission]) for submission in batch))
                return
            for submission in batch:
                _settle(submission, error=error)
            return
        lane.pace.observe(loop.time() - started, len(items))
        forecasts = [forecast for result in results for forecast in result.response.forecasts]
        if len(forecasts) != len(items):
            shape = BackendError(
                "failed",
                f"answer does not match the request's shape: {len(forecasts)} forecasts for {len(items)} series",
            )
            for submission in batch:
                _settle(submission, error=shape)
            return
        retries = max(result.retries for result in results)
        start = 0
        for submission in batch:
            _settle(submission, answer=(forecasts[start : start + submission.series], retries))
            start += submission.series


def _settle(
    submission: _Submission,
    *,
    answer: tuple[list[SeriesForecast], int] | None = None,
    error: BaseException | None = None,
) -> None:
    if submission.answered.done():
        return
    if error is not None:
        submission.answered.set_exception(error)
        # Its request may have stopped waiting (its deadline): nobody would read the error.
        submission.answered.add_done_callback(_read_error)
    else:
        submission.answered.set_result(answer)  # type: ignore[arg-type]


def _read_error(future: asyncio.Future[Any]) -> None:
    future.exception()
