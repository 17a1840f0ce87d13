"""The gateway's background work (health polling, configuration reloads) never dies silently.

A long-running task that raises is logged with its traceback, counted in
``chronotick_gateway_background_failures_total{task=...}``, and started again after a short
backoff that doubles while it keeps failing (and starts small again once it has run for a
while). Only cancellation (the gateway stopping) ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from chronotick_gateway.metrics import GatewayMetrics

logger = logging.getLogger("chronotick.gateway.background")

RESTART_BACKOFF_S = 0.5
RESTART_BACKOFF_MAX_S = 10.0


async def supervise(task: str, run: Callable[[], Awaitable[None]], metrics: GatewayMetrics) -> None:
    """Run ``run()`` for as long as the gateway runs, restarting it whenever it fails."""
    loop = asyncio.get_running_loop()
    backoff_s = RESTART_BACKOFF_S
    while True:
        started = loop.time()
        error: Exception | None = None
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as failure:
            error = failure
        if loop.time() - started > RESTART_BACKOFF_MAX_S:  # it had worked for a while: a fresh failure
            backoff_s = RESTART_BACKOFF_S
        metrics.background_failures.labels(task=task).inc()
        logger.error(
            "background task %s %s; restarting it in %.1f s",
            task,
            "returned" if error is None else "failed",
            backoff_s,
            exc_info=error,
        )
        await asyncio.sleep(backoff_s)
        backoff_s = min(2.0 * backoff_s, RESTART_BACKOFF_MAX_S)


LOOP_LAG_PERIOD_S = 0.1
LOOP_LAG_MEMORY = 20  # samples: the worst lag of the last ~2 s is what a request starting now may meet


class LoopLag:
    """How late the event loop runs what is due: sampled by ``watch``, read by every request.

    A request's members must be done early enough for the answer to be fused and sent by its
    deadline; when the loop is busy, waking the request at the deadline takes that much longer,
    so a request keeps the recent worst lag back from its members' time (``recent_s``).
    """

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=LOOP_LAG_MEMORY)

    def recent_s(self) -> float:
        return max(self._samples, default=0.0)

    async def watch(self, metrics: GatewayMetrics) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + LOOP_LAG_PERIOD_S
            await asyncio.sleep(LOOP_LAG_PERIOD_S)
            lag_s = max(0.0, loop.time() - asked)
            self._samples.append(lag_s)
            metrics.loop_lag.observe(lag_s)
