"""A per-backend circuit breaker: stop calling a backend that keeps failing, probe it, let it back.

closed --(N consecutive failures)--> open --(reset time, then /health/ready answers)--> half-open
half-open --(a request succeeds)--> closed;  half-open --(a request fails)--> open
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


# Numeric values for the Prometheus gauge.
STATE_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        # Public: a configuration reload changes them on a breaker that keeps its state.
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self._opened_at = 0.0

    @property
    def allows_requests(self) -> bool:
        return self.state is not BreakerState.OPEN

    @property
    def probe_due(self) -> bool:
        """Open long enough that a health probe may try to bring it back."""
        return self.state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_s

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.state = BreakerState.CLOSED

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            self._open()

    def record_probe(self, healthy: bool) -> None:
        if self.state is not BreakerState.OPEN:
            return
        if healthy:
            self.state = BreakerState.HALF_OPEN
        else:
            self._open()

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self._opened_at = self._clock()
