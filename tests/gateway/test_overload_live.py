"""The gateway when a backend cannot keep up: it answers every request by its deadline from what
can answer, sends the slow backend only what it can finish, and trusts it again after the load.

A real gateway process in front of a real backend process whose work grows with the series it is
asked for (the flaky backend's ``slow-series`` mode: a request's series and backtest cuts take 0.3 s,
alone or in one call with other requests'), loaded by many concurrent clients.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from conftest import set_mode
from test_gateway_live import body

from support.load_drill import run_drill, summarize
from support.servers import serve_in_process, venv_python, wait_for

CLIENTS = 24
DEADLINE_S = 0.5
MAX_IN_FLIGHT = 2
MARGIN_S = 0.25  # loopback HTTP and the test's own client threads, on the same 2 cores
REQUEST_S = 0.3
SERIES_PER_REQUEST = 7  # the series and its 6 backtest cuts


@pytest.fixture(scope="module")
def gateway(flaky_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "CHRONOTICK_GATEWAY_SERVICES": json.dumps({"flaky": flaky_url}),
        "CHRONOTICK_GATEWAY_SERVICE_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        "CHRONOTICK_GATEWAY_HEALTH_INTERVAL_S": "0.2",
    }
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with serve_in_process("chronotick_gateway.main:app", env=env, python=venv_python("gateway"), log_path=log) as url:
        yield url


@pytest.fixture(autouse=True)
def slow_backend(flaky_url: str) -> Iterator[None]:
    set_mode(flaky_url, "slow-series", seconds_per_series=REQUEST_S / SERIES_PER_REQUEST)
    yield
    set_mode(flaky_url, "ok")


def predict_calls(flaky_url: str) -> int:
    return int(httpx.get(f"{flaky_url}/control").json()["predict_calls"])


def test_a_backend_that_cannot_keep_up_gets_only_what_it_can_answer(gateway: str, flaky_url: str) -> None:
    request = json.dumps(body(horizon=10, backends=["line", "kalman", "last-value"], deadline_s=DEADLINE_S)).encode()
    calls_before = predict_calls(flaky_url)
    result = run_drill(gateway, [request], clients=CLIENTS, duration_s=6.0)
    calls = predict_calls(flaky_url) - calls_before

    stats = summarize(result.answers)
    assert stats["statuses"] == {200: len(result.answers)}, stats
    assert stats["max_ms"] <= (DEADLINE_S + MARGIN_S) * 1000.0, stats
    overloaded = [a for a in result.answers if any(r.startswith("line: overloaded: service busy") for r in a.reasons)]
    fused = [a for a in result.answers if "flaky" in a.answered]
    assert overloaded and fused, stats  # it kept answering some, and was spared the rest
    assert all("classical" in a.answered for a in result.answers)
    # No more calls reached it than it could serve: at most MAX_IN_FLIGHT at a time, 0.3 s a request.
    assert calls <= MAX_IN_FLIGHT * (result.duration_s + DEADLINE_S) / REQUEST_S + MAX_IN_FLIGHT, (calls, stats)
    metrics = httpx.get(f"{gateway}/metrics").text
    assert 'chronotick_gateway_backend_overloaded_total{backend="line"}' in metrics

    # After the load it is trusted at once: ready, breaker closed, its answers fused.
    set_mode(flaky_url, "ok")
    models = {s["name"]: s for s in httpx.get(f"{gateway}/models").json()["services"]}
    assert models["flaky"]["ready"] and models["flaky"]["breaker"] != "open", models["flaky"]
    wait_for(
        lambda: (
            httpx.post(
                f"{gateway}/predict", content=request, timeout=5.0, headers={"content-type": "application/json"}
            ).json()["degraded"]
            is False
        ),
        timeout_s=5.0,
        what="a fused answer that is not degraded",
    )


def test_its_own_health_says_ready_while_the_view_of_the_fleet_is_fresh(gateway: str) -> None:
    ready = httpx.get(f"{gateway}/health/ready").json()
    assert ready["services_ready"] == ["flaky"] and 0.0 <= ready["fleet_view_age_s"] < 2.0
    metrics = httpx.get(f"{gateway}/metrics").text
    assert "chronotick_gateway_fleet_view_age_seconds" in metrics
    assert "chronotick_gateway_event_loop_lag_seconds_count" in metrics
