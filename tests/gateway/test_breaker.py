"""The circuit breaker's state machine."""

from __future__ import annotations

from chronotick_gateway.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_s=2.0, clock=Clock())
    breaker.record_failure(), breaker.record_failure(), breaker.record_success(), breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(), breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allows_requests


def test_probe_waits_for_the_reset_time_then_half_opens_on_health() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_s=2.0, clock=clock)
    breaker.record_failure()
    clock.now = 1.0
    assert not breaker.probe_due
    clock.now = 2.5
    assert breaker.probe_due
    breaker.record_probe(healthy=True)
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allows_requests


def test_half_open_closes_on_success_and_reopens_on_failure() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=5, reset_s=1.0, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now = 1.0
    breaker.record_probe(healthy=True)
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now = 2.0
    breaker.record_probe(healthy=True)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0


def test_an_unhealthy_probe_keeps_it_open_for_another_reset_period() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now = 1.5
    breaker.record_probe(healthy=False)
    assert breaker.state is BreakerState.OPEN and not breaker.probe_due
