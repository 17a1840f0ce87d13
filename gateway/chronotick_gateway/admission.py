"""Admission control: send a service only the work it can finish before the caller's deadline.

When the model services cannot keep up, every call sent to them anyway waits in their queues,
times out, and leaves them computing answers nobody reads; the next requests then wait behind
that dead work, and every request times out together. So each service gets a bounded number of
calls in flight from this gateway, and a call is only sent when the service's recent latency
says it can come back in time; otherwise the member is skipped at once with the reason, and the
request is answered from the members that can answer.

The bound is also what limits the gateway's connections: its HTTP pools have no limit of their
own, so that no call ever waits inside httpcore's pool, where a cancellation or a pool timeout
can leave a connection slot taken for good (encode/httpcore#1093, #550).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

# Weight of the newest call in the latency estimate: about the last ten calls count.
_LATENCY_SMOOTHING = 0.2
# A timed-out call counts as this many times the time it took (see ServiceLoad.observe_timeout).
_TIMEOUT_FACTOR = 1.5
# Less time than this left and no call is sent, even to an idle service: no forecast comes back
# over HTTP that fast, and the failed call would only pull the latency estimate down.
MIN_CALL_S = 0.005


def smoothed(estimate: float | None, observed: float) -> float:
    """``estimate`` moved towards ``observed`` by ``_LATENCY_SMOOTHING`` (the first observation, when
    there is no estimate yet): the exponentially weighted mean every duration estimate here keeps."""
    return observed if estimate is None else estimate + _LATENCY_SMOOTHING * (observed - estimate)


# A service whose calls are expected to take more than this share of a request's remaining time is
# busy (``ServiceLoad.busy``): past half, a call has no room left for one slow answer or one retry.
BUSY_SHARE = 0.5


class Overloaded(Exception):
    """The service cannot answer this call before the deadline; it was not sent."""


@dataclass
class ServiceLoad:
    """This gateway's calls to one service: how many are in flight, waiting, and how long they take.

    ``latency_s`` is an exponentially weighted mean of the calls' durations (a timeout counts as
    longer than it took: ``observe_timeout``): it is measured under the load the service carries
    now, queueing included, so it rises when the service falls behind.
    A freed slot is handed to the oldest waiting call directly, so a newcomer never overtakes it.
    """

    max_in_flight: int
    in_flight: int = 0
    latency_s: float | None = None
    _waiters: deque[asyncio.Future[None]] = field(default_factory=deque, repr=False)

    @property
    def waiting(self) -> int:
        return sum(not waiter.done() for waiter in self._waiters)

    def expected_s(self) -> float:
        """How long a call sent now should take to come back, waiting for a slot included."""
        if self.latency_s is None:
            return 0.0
        if self.in_flight < self.max_in_flight:
            return self.latency_s
        # Slots free up about max_in_flight per latency: the calls ahead of this one go first.
        return self.latency_s * (1 + math.ceil((self.waiting + 1) / self.max_in_flight))

    def busy(self, remaining_s: float) -> bool:
        """Whether a call sent now is expected to take more than ``BUSY_SHARE`` of ``remaining_s``:
        the service is falling behind this gateway's calls (``reuse`` then prefers a member's older
        forecast to waiting for a new one)."""
        return self.in_flight > 0 and self.expected_s() > BUSY_SHARE * remaining_s

    def observe(self, duration_s: float) -> None:
        self.latency_s = smoothed(self.latency_s, duration_s)

    def observe_timeout(self, waited_s: float) -> None:
        """A call that timed out after ``waited_s``: it would have taken longer, by how much nobody
        knows. Counted at the time it took, the estimate would settle just under the time calls
        have, and calls that cannot make it would go on being sent; counted half as long again,
        it rises above it, and the service is tried one call at a time until it is fast again."""
        self.observe(_TIMEOUT_FACTOR * waited_s)

    def refuses(self, remaining_s: float) -> str | None:
        """Why a call with ``remaining_s`` left would be refused now (``slot`` says the same), or None:
        lets a caller skip preparing a call that will not be sent."""
        if remaining_s < MIN_CALL_S or (self.in_flight > 0 and self.expected_s() > remaining_s):
            return self._why(remaining_s)
        return None

    @asynccontextmanager
    async def slot(self, remaining_s: float) -> AsyncIterator[None]:
        """Hold one of the service's call slots, or raise ``Overloaded`` when the call would not
        come back within ``remaining_s``.

        A service with none of our calls in flight is always tried, whatever its estimate says:
        that is how a service that was slow (or down) shows that it is fast again.
        """
        refusal = self.refuses(remaining_s)
        if refusal is not None:
            raise Overloaded(refusal)
        if self.in_flight < self.max_in_flight and not self.waiting:
            self.in_flight += 1
        else:
            # Waiting longer than this leaves too little time for the call itself.
            await self._wait_for_slot(remaining_s - (self.latency_s or 0.0), remaining_s)
        try:
            yield
        finally:
            self._release()

    async def _wait_for_slot(self, patience_s: float, remaining_s: float) -> None:
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(handed)
        try:
            # asyncio.wait never cancels ``handed``: whether a slot was handed over stays known.
            done, _ = await asyncio.wait({handed}, timeout=max(0.0, patience_s))
        except asyncio.CancelledError:
            self._abandon(handed)
            raise
        if not done:
            self._abandon(handed)
            raise Overloaded(self._why(remaining_s))

    def _abandon(self, handed: asyncio.Future[None]) -> None:
        if handed.done():  # the slot came just as we gave up: pass it on
            self._release()
        else:
            handed.cancel()
            self._waiters.remove(handed)

    def _release(self) -> None:
        # A reload may have lowered the bound: calls above it give their slots up, not on.
        while self._waiters and self.in_flight <= self.max_in_flight:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to it: in_flight stays as it is
                return
        self.in_flight -= 1

    def _why(self, remaining_s: float) -> str:
        latency = "unknown" if self.latency_s is None else f"{self.latency_s * 1000:.0f} ms"
        return (
            f"service busy: {self.in_flight} calls in flight, {self.waiting} waiting, recent calls took "
            f"{latency}; {max(remaining_s, 0.0) * 1000:.0f} ms were left before the deadline"
        )


@dataclass
class Finishing:
    """The gateway's own work after a request's members: fusing, and writing the answer.

    Requests that wait on the same deadline (all of them, when a backend hangs) finish together,
    one after the other on the event loop: the last of 32 would be 32 answers late. So each
    request keeps back from its members' time what finishing every request in flight would take.
    """

    in_flight: int = 0
    # Until measured, what a fresh gateway's first answers take: 32 cold requests that reached their
    # deadline together took 0.37 s to finish (11-12 ms each), and with 5 ms kept back each, the
    # last 7 of them came 150-180 ms past their deadline (a drill's first second after a restart).
    answer_s: float = 0.015

    def reserve_s(self) -> float:
        return self.in_flight * self.answer_s

    def observe(self, duration_s: float) -> None:
        self.answer_s = smoothed(self.answer_s, duration_s)
