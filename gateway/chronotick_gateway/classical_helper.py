"""The classical members computed in a helper process, so that the event loop only reads, sends and fuses.

At 32 clients on 2 cores the gateway's event loop was the fleet's bottleneck (84 % of a core) and
half of its time went to the classical members (the last value, chrony's fit and the Kalman
filter on every series and each of its backtest cuts; py-spy). A request that reached the
gateway then waited behind that work before the gateway even noticed it: time its client waited
that the gateway's deadline could not see (80 ms at the median, up to 290 ms, between the
gateway's own time and the client's, measured with the kernel's receive timestamps). A helper
process takes that work to the other core.

The helper is an accelerator, never a dependency: a request whose classical members it could not
finish by the deadline (its backlog at its recent pace says so), or that meets a helper that has
died, has them computed on the loop as before, and a dead helper is replaced. So is one that is
alive but stuck (frozen, or starved of every cycle): a request waits for it only until its deadline
and a short grace, and a helper from which nothing at all came back in that time is killed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from chronotick_gateway.members import CLASSICAL_BY_NAME, ClassicalRun, ClassicalSeries, run_classical
from chronotick_gateway.metrics import GatewayMetrics

logger = logging.getLogger("chronotick.gateway")

# Until measured: one series and its 6 cuts, three forecasters (about 4 ms), and the two copies.
_FIRST_GUESS_S = 0.005
# Weight of the newest request in the pace estimate: about the last ten count.
_PACE_SMOOTHING = 0.2
# A clock drifting at 1 ppm, forecast 8 s ahead from its end and from one backtest cut.
_WARM_UP = [ClassicalSeries(np.arange(128, dtype=np.float64), (96,), 1.0)]
# How long past a request's deadline its members may still come back from a helper that is merely
# slow (finishing the series it was on, waiting out a time slice) before the loop answers for it.
# Past its deadline a request asks only for the last value, a fraction of a millisecond per series.
GRACE_S = 0.05
# The helpers are started by a server process that has imported the forecasters once: a helper
# that replaces a dead one is ready in milliseconds, and none inherits the gateway's threads, locks
# or sockets (as a fork of the gateway itself would).
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["chronotick_gateway.members"])


def _end_with(gateway_pid: int) -> None:
    """Every helper's first act: end when the gateway ends, however it ends.

    A gateway that stops closes its helpers. One killed outright (SIGKILL, the OOM killer, a crash)
    cannot, and a ``ProcessPoolExecutor`` worker never notices its parent's death: it waits on its
    call queue, whose write end it holds itself, and it holds the forkserver's lifeline too, so
    both stayed behind, idle, holding their memory (seen after benchmark runs). A thread of the
    helper waits on the gateway's pidfd, which becomes readable when the gateway exits (Linux 5.3+;
    elsewhere the helpers end only when closed)."""
    try:
        gateway = os.pidfd_open(gateway_pid)
    except ProcessLookupError:  # gone already
        os._exit(0)
    except (AttributeError, OSError):  # no pidfd here
        return

    def wait_for_the_gateway() -> None:
        select.select([gateway], [], [])
        os._exit(0)  # nobody is left to read a result, or to be told of this exit

    threading.Thread(target=wait_for_the_gateway, name="end-with-gateway", daemon=True).start()


class ClassicalHelper:
    """``processes`` helper processes that compute the classical members of requests in turn."""

    def __init__(self, processes: int, metrics: GatewayMetrics) -> None:
        self.processes = processes
        self.metrics = metrics
        self.in_flight = 0  # requests handed over and not yet back
        self.pace_s = _FIRST_GUESS_S  # what one request's classical members have lately taken a helper
        self._pool: ProcessPoolExecutor | None = None
        self._came_back_at = -math.inf  # event-loop time of the last request a helper gave back

    def start(self) -> None:
        """Start the helpers now, not at the first request, and have them import their code."""
        pool = ProcessPoolExecutor(self.processes, mp_context=_CONTEXT, initializer=_end_with, initargs=(os.getpid(),))
        try:
            for _ in range(self.processes):  # its first forecast, so that no request pays for it
                pool.submit(run_classical, tuple(CLASSICAL_BY_NAME), _WARM_UP, 8, math.inf)
        except OSError as error:  # no process can be started here (a sandbox's limits): the loop does it all
            logger.error(
                "classical helper process could not start (%s); the event loop computes the classical members", error
            )
            self.metrics.background_failures.labels(task="classical-helper").inc()
            pool.shutdown(wait=False, cancel_futures=True)
            return
        self._pool = pool

    def close(self, kill: bool = False) -> None:
        """Let the helpers go; with ``kill``, at once (a stuck helper would never pick up the call to
        stop). The requests they held then fail with ``BrokenProcessPool``."""
        if self._pool is not None:
            if kill:  # the executor has no public way to kill its workers before Python 3.14
                for process in list(getattr(self._pool, "_processes", {}).values()):
                    process.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def expected_s(self) -> float:
        """How long the classical members of a request handed over now should take to come back."""
        return math.ceil((self.in_flight + 1) / self.processes) * self.pace_s

    async def run(
        self, names: Sequence[str], series: Sequence[ClassicalSeries], horizon: int, deadline: float
    ) -> ClassicalRun | None:
        """The classical members of a request by its ``deadline`` (event-loop time), from a helper; or
        None, when the helpers could not say in time, have died or are stuck: the caller computes them itself."""
        loop = asyncio.get_running_loop()
        if self._pool is None or loop.time() + self.expected_s() > deadline:
            return None
        # The helper's clock is the system's monotonic one; the loop's may count from elsewhere.
        deadline_monotonic_s = time.monotonic() + (deadline - loop.time())
        pool, handed_at = self._pool, loop.time()
        wait_s = max(deadline - handed_at, 0.0) + GRACE_S
        try:
            # A death noticed while the helper was idle fails the submission itself, at once.
            future = asyncio.wrap_future(
                pool.submit(run_classical, tuple(names), list(series), horizon, deadline_monotonic_s)
            )
            self.in_flight += 1
            future.add_done_callback(self._came_back)  # also for a request that stopped waiting for it
            return await asyncio.wait_for(asyncio.shield(future), wait_s if math.isfinite(wait_s) else None)
        except BrokenProcessPool as error:
            if pool is self._pool:  # not replaced yet by another request that met the same death
                self._replace(f"died ({error})")
            return None
        except TimeoutError:
            # A helper that is behind still gives back the requests ahead of this one; from one
            # that gave back nothing since this was handed over, nothing is coming.
            if pool is self._pool and self._came_back_at < handed_at:
                self._replace(f"gave nothing back in {loop.time() - handed_at:.3f} s", kill=True)
            return None

    def _came_back(self, future: asyncio.Future[ClassicalRun]) -> None:
        self.in_flight -= 1
        if future.cancelled() or future.exception() is not None:  # retrieved, so never logged as lost
            return
        self._came_back_at = asyncio.get_running_loop().time()
        self.pace_s += _PACE_SMOOTHING * (sum(future.result().elapsed_s.values()) - self.pace_s)

    def _replace(self, what: str, kill: bool = False) -> None:
        """A helper died (killed, out of memory) or is stuck: every request it held is computed on the
        loop, and new helpers take over. Counted with the background tasks that fail and come back."""
        logger.error("classical helper process %s; starting another", what)
        self.metrics.background_failures.labels(task="classical-helper").inc()
        self.close(kill)
        self.start()
