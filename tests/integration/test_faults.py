"""The fleet keeps answering while containers die, stop, come back or hang.

Every test puts the fleet back as it found it (in ``finally``), so the order of tests does not
matter and a failing test does not take the others down with it.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx

from chronotick.contract import FusedPredictResponse
from support.containers import MODEL_SERVICES, ComposeFleet
from support.fleet_calls import clock_body, metric_total, read_metrics

CLIENTS = 32
REQUESTS_PER_CLIENT = 3
REJOIN_S = 10.0


def restore(fleet: ComposeFleet, command: str, *services: str) -> None:
    """Start or unpause ``services`` again and wait until the gateway fuses them."""
    fleet.compose(command, *services)
    fleet.wait_until(lambda: set(services) <= fleet.ready_services(), 300.0, f"{services} back")


def test_killing_a_backend_under_load_fails_no_client_request(fleet: ComposeFleet) -> None:
    victim = "toto"
    before = read_metrics(fleet.url)
    answers: list[tuple[float, int, dict[str, object]]] = []
    lock = threading.Lock()
    killed_at: list[float] = []

    def client(index: int) -> None:
        with httpx.Client(timeout=60.0, headers=fleet.headers) as http:
            for k in range(REQUESTS_PER_CLIENT):
                sent_at = time.monotonic()
                response = http.post(f"{fleet.url}/predict", json=clock_body(index * 10 + k, deadline_s=10.0))
                with lock:
                    answers.append((sent_at, response.status_code, response.json()))

    try:
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            running = [pool.submit(client, index) for index in range(CLIENTS)]
            fleet.wait_until(lambda: len(answers) >= CLIENTS // 2, 600.0, "first answers under load")
            fleet.docker("kill", victim)
            killed_at.append(time.monotonic())
            for future in running:
                future.result()
        after = read_metrics(fleet.url)
    finally:
        restore(fleet, "start", victim)

    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT
    assert [status for _, status, _ in answers if status != 200] == []
    # Requests sent once the container is gone (docker kill returns when it is).
    late = [FusedPredictResponse.model_validate(body) for sent_at, _, body in answers if sent_at > killed_at[0]]
    assert late, "no request was sent after the kill"
    for answer in late:
        assert answer.degraded
        assert any(victim in reason for reason in answer.reasons), answer.reasons
        assert all(b.status != "ok" for b in answer.backends if b.service == victim)
        assert all(len(forecast.mean_us) == 10 for forecast in answer.forecasts)  # still a whole answer
    assert metric_total(after, "chronotick_gateway_backend_failures", backend=victim) > metric_total(
        before, "chronotick_gateway_backend_failures", backend=victim
    )
    assert metric_total(after, "chronotick_gateway_backend_retries", backend=victim) > metric_total(
        before, "chronotick_gateway_backend_retries", backend=victim
    )
    # It stopped being asked: its breaker opened, or its health checks had it not ready first (the
    # requests in flight share one call per model, so a dead backend fails a few calls, not one a request).
    assert (
        metric_total(after, "chronotick_gateway_breaker_state", service=victim) > 0
        or metric_total(after, "chronotick_gateway_service_ready", service=victim) == 0
    )


def test_with_every_model_backend_stopped_the_classical_fallback_answers_and_they_rejoin(
    fleet: ComposeFleet,
) -> None:
    gateway_started = fleet.inspect("gateway")["State"]["StartedAt"]
    try:
        fleet.compose("stop", "--timeout", "5", *MODEL_SERVICES)
        fleet.wait_until(lambda: not fleet.ready_services(), 30.0, "backends seen down")
        response = fleet.predict(clock_body(7, deadline_s=2.0), timeout_s=10.0)
        assert response.status_code == 200, response.text
        answer = FusedPredictResponse.model_validate(response.json())
        assert answer.degraded
        answered = {b.name for b in answer.backends if b.status == "ok"}
        assert answered and all(b.service is None for b in answer.backends if b.status == "ok")
        assert all(len(f.mean_us) == 10 for f in answer.forecasts)
    finally:
        fleet.compose("start", *MODEL_SERVICES)
    # Rejoining is the gateway's health polling; count from the moment every backend answers ready.
    fleet.wait_until(lambda: all(fleet.answers_ready(s) for s in MODEL_SERVICES), 300.0, "ready again")
    rejoin_s = fleet.wait_until(lambda: fleet.ready_services() == set(MODEL_SERVICES), REJOIN_S, "rejoined")
    assert rejoin_s <= REJOIN_S
    assert fleet.inspect("gateway")["State"]["StartedAt"] == gateway_started  # the gateway was not touched


def test_a_hanging_backend_does_not_hold_any_request_past_its_deadline(fleet: ComposeFleet) -> None:
    deadline_s = 1.0
    victim = "timemoe"
    fleet.compose("pause", victim)
    try:
        elapsed = []
        answers = []
        with httpx.Client(timeout=10.0, headers=fleet.headers) as http:
            for seed in range(10):
                started = time.monotonic()
                response = http.post(f"{fleet.url}/predict", json=clock_body(seed, deadline_s=deadline_s))
                elapsed.append(time.monotonic() - started)
                assert response.status_code == 200, response.text
                answers.append(FusedPredictResponse.model_validate(response.json()))
    finally:
        restore(fleet, "unpause", victim)
    # The deadline is the gateway's promise; loopback HTTP adds a few milliseconds at most.
    assert max(elapsed) <= deadline_s + 0.1, elapsed
    for answer in answers:
        assert answer.degraded
        assert all(
            b.status in ("timeout", "overloaded", "not_ready", "circuit_open")
            for b in answer.backends
            if b.service == victim
        )
