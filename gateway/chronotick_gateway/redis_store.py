"""The clock memory in Redis: one key per clock, the idle expiry as its TTL.

Every gateway worker and replica that names the same Redis shares the clocks. A Redis that is down
or slow must cost requests nothing: every call is bounded (``CALL_DEADLINE_S``), and after a failure
the store answers ``StoreUnavailable`` at once, without touching the network, until one background
probe finds the server again (a PING at once, then every ``BACKOFF_S``).
Requests never try the server while it is believed down: under load, each of them trying once its
backoff ended would mean one connection attempt (and one name lookup: on Docker's internal network a
stopped container's name takes up to the resolver's timeout to fail, seconds, in the event loop's
few lookup threads) per request a second, and recovery would wait behind those that hang.
For the same reason no request opens a connection while the server is up: the pool holds
``POOL_CONNECTIONS``, all opened before the first request and again when the probe has found the
server, and a request waits for a free one (within its call's deadline). A pool that opened
connections as requests needed them did so in the first seconds of a load, when the event loop is
latest: a connect that timed out took a healthy Redis for a dead one, again and again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from chronotick_gateway.clockstore import StoreUnavailable

logger = logging.getLogger("chronotick.gateway.memory")

KEY_PREFIX = "chronotick:clock:"
# A whole call, its one retry included: what a request waits for its clocks at most, taken from its
# members' time (a stuck Redis costs one request a second this much; the backoff answers the others
# at once). Not less: the time counts the gateway's own event loop too, which at 32 clients is late
# by tens of milliseconds, and a tenth of a second took a healthy Redis for a dead one (measured).
CALL_DEADLINE_S = 0.5
# One socket operation (connect, or one reply). A healthy Redis beside the gateway answers in well
# under a millisecond, but the reply is read by the event loop, which under load wakes a few hundred
# milliseconds late: a bound tighter than the call's own would take that lateness for a dead server.
SOCKET_TIMEOUT_S = CALL_DEADLINE_S
# count() walks every key (SCAN); only the metrics gauge and the memory report ask for it.
COUNT_DEADLINE_S = 5.0
SCAN_BATCH = 10_000
# After a failure, how often the probe tries the server (the store answers StoreUnavailable at once
# meanwhile), and how long one try may take: it holds no request, so it may wait out a late event loop.
BACKOFF_S = 1.0
PROBE_DEADLINE_S = 2.0
# The pool's connections, every one opened before it is needed (see the module's docstring). A call
# holds one for a round trip, well under a millisecond, or as long as the event loop takes to read
# the reply; a request's load and save are two calls. In the drill that restarts Redis under 32
# clients, a pool of 16 was taken whole each time Redis was slow for a moment after its restart,
# and the calls waiting for a connection outlived their requests' time; with 64 none waited.
POOL_CONNECTIONS = 64

T = TypeVar("T")


class RedisClockStore:
    """Clock states as ``chronotick:clock:<id>`` keys in the Redis at ``url``, each saved with the
    idle expiry (whole seconds, at least 1) as its TTL. Redis bounds its memory itself
    (``maxmemory`` with ``volatile-lru``: every key here has a TTL, so all of them may be evicted)."""

    name = "redis"

    def __init__(self, url: str, *, idle_expiry_s: float) -> None:
        self.idle_expiry_s = idle_expiry_s
        # Rounded up: a clock is never forgotten sooner than configured.
        self._expiry_s = max(1, math.ceil(idle_expiry_s))
        self._where = _without_credentials(url)
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_CONNECTIONS,
            timeout=CALL_DEADLINE_S,  # waiting for a free connection (the call's deadline bounds it too)
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            # The pool reconnects a connection it finds closed (a restarted server) when it hands it
            # out; one that breaks after that fails once with a ConnectionError: one immediate retry
            # on a fresh connection. Timeouts are not retried: a stuck server would only double the wait.
            retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        )
        self._redis = Redis.from_pool(pool)  # the client owns the pool: aclose() closes both
        self._next_try = 0.0  # time.monotonic() of the probe's next try while the server is believed down
        self._last_failure = ""
        self._probe: asyncio.Task[None] | None = None  # running while the server is believed down

    async def connect(self) -> None:
        """Open the pool's connections (within PROBE_DEADLINE_S); a server that does not answer is
        only logged: the first requests find out, as they would have."""
        outcome = await _attempt(self._open_every_connection, PROBE_DEADLINE_S)
        if isinstance(outcome, str):
            logger.warning("clock memory: redis at %s not reached at start-up: %s", self._where, outcome)

    async def _open_every_connection(self) -> None:
        """A PING on each of the pool's connections at once: each opens one (a restarted server's
        too: the pool reconnects a closed connection as it hands it out). One that fails leaves the
        others to open (the first call that needs it opens it); all failing is the server's failure."""
        outcomes = await asyncio.gather(*(self._redis.ping() for _ in range(POOL_CONNECTIONS)), return_exceptions=True)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if len(failures) == len(outcomes):
            raise failures[0]

    async def load(self, clock_ids: Sequence[str]) -> dict[str, bytes]:
        if not clock_ids:
            return {}
        keys = [_key(clock_id) for clock_id in clock_ids]
        values = await self._call(lambda: self._redis.mget(keys), CALL_DEADLINE_S)
        # (bytes, as the client does not decode; None for a clock with no state)
        return {clock_id: value for clock_id, value in zip(clock_ids, values, strict=True) if isinstance(value, bytes)}

    async def save(self, states: Mapping[str, bytes]) -> None:
        if not states:
            return

        async def write() -> None:
            # One round trip for every clock of a request; no MULTI: each key stands alone.
            async with self._redis.pipeline(transaction=False) as pipe:
                for clock_id, state in states.items():
                    pipe.set(_key(clock_id), state, ex=self._expiry_s)
                await pipe.execute()

        await self._call(write, CALL_DEADLINE_S)

    async def delete(self, clock_id: str) -> bool:
        deleted = await self._call(lambda: self._redis.delete(_key(clock_id)), CALL_DEADLINE_S)
        return bool(deleted)

    async def count(self) -> int:
        async def scan() -> int:
            return sum([1 async for _ in self._redis.scan_iter(match=f"{KEY_PREFIX}*", count=SCAN_BATCH)])

        return await self._call(scan, COUNT_DEADLINE_S)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self._redis.aclose()

    async def _call(self, operation: Callable[[], Awaitable[T]], deadline_s: float) -> T:
        """``operation`` within ``deadline_s``; any failure becomes StoreUnavailable and starts the
        probe, until whose success calls fail at once."""
        if self._probe is not None:
            remaining_s = max(0.0, self._next_try - time.monotonic())
            raise StoreUnavailable(
                f"redis at {self._where} is unavailable (next try in {remaining_s:.1f} s): {self._last_failure}"
            )
        outcome = await _attempt(operation, deadline_s)
        if isinstance(outcome, str):
            self._believe_down(outcome)
            raise StoreUnavailable(f"redis at {self._where} is unavailable: {outcome}")
        return outcome.value

    def _believe_down(self, failure: str) -> None:
        """Note the failure and when the probe tries next: at once after a request's call failed (a
        timeout may have been the event loop's lateness, and the probe's PING waits that out), then
        every BACKOFF_S; start the probe if none runs."""
        self._last_failure = failure
        if self._probe is None:
            self._next_try = time.monotonic()
            self._probe = asyncio.get_running_loop().create_task(self._find_the_server(), name="redis-probe")
        else:
            self._next_try = time.monotonic() + BACKOFF_S

    async def _find_the_server(self) -> None:
        """PING until the server answers, and open the pool's connections again before the calls go
        to it (those it cannot open in time are opened by the first calls that need them)."""
        while True:
            await asyncio.sleep(max(0.0, self._next_try - time.monotonic()))
            outcome = await _attempt(self._redis.ping, PROBE_DEADLINE_S)
            if not isinstance(outcome, str):
                await _attempt(self._open_every_connection, PROBE_DEADLINE_S)
                self._probe = None
                return
            self._believe_down(outcome)  # (the probe runs: only the next try moves)


@dataclass(frozen=True)
class _Answered(Generic[T]):
    value: T


async def _attempt(operation: Callable[[], Awaitable[T]], deadline_s: float) -> _Answered[T] | str:
    """What ``operation`` answered within ``deadline_s``, or why it did not."""
    try:
        return _Answered(await asyncio.wait_for(operation(), deadline_s))
    except TimeoutError:
        return f"no answer within {deadline_s:g} s"
    except (RedisError, OSError) as error:
        return f"{type(error).__name__}: {error}"


def _key(clock_id: str) -> str:
    return KEY_PREFIX + clock_id


def _without_credentials(url: str) -> str:
    """The URL for messages: the password (if any) stays out of logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
