"""The Python client and the `chronotick` command against real servers over HTTP: the gateway in
its own process (with an API key), and a small server that answers 503 a set number of times to
prove what is retried."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI, Response
from typer.testing import CliRunner

from chronotick.cli import app
from chronotick.client import AsyncClient, Client, GatewayError, GatewayUnreachable
from chronotick.contract import ClockReport, FleetModels, FusedPredictRequest, ObservationsScored, SeriesInput
from chronotick.synthetic import generate_clock
from support.clock_memory import ClockMemoryStandIn, clock_memory_app
from support.servers import free_port, serve_in_process, serve_in_thread

API_KEY = "client-test-key"
CLASSICAL = {"last-value", "chrony-fit", "kalman"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("client-gateway") / "gateway.log"
    env = {"CHRONOTICK_GATEWAY_SERVICES": "{}", "CHRONOTICK_GATEWAY_API_KEY": API_KEY}
    with serve_in_process("chronotick_gateway.main:app", env=env, log_path=log) as url:
        yield url


def clock_request(horizon: int = 5, **extra: object) -> FusedPredictRequest:
    clock = generate_clock("server_load", 200, seed=3)
    offsets = [None if np.isnan(v) else float(v) for v in clock.observed_offset_us]
    # A generous deadline: on a busy machine a member missing 1 s would change the fused answer.
    return FusedPredictRequest(
        series=[SeriesInput(id="host-a", offsets_us=offsets, interval_s=1.0)],
        horizon=horizon,
        quantile_levels=[0.1, 0.5, 0.9],
        deadline_s=10.0,
        **extra,
    )


def test_sync_client_gets_a_typed_fused_forecast_with_the_api_key(gateway: str) -> None:
    with Client(gateway, api_key=API_KEY) as client:
        answer = client.predict(clock_request(horizon=7))
        fleet = client.models()
        ready = client.ready()
    assert answer.horizon == 7 and len(answer.forecasts[0].mean_us) == 7
    assert answer.forecasts[0].id == "host-a"
    assert {b.name for b in answer.backends if b.status == "ok"} == CLASSICAL
    assert isinstance(fleet, FleetModels) and set(fleet.classical) == CLASSICAL
    assert ready["status"] == "ready"


def test_async_client_gets_the_same_answer_as_the_sync_one(gateway: str) -> None:
    async def ask() -> list[float]:
        async with AsyncClient(gateway, api_key=API_KEY) as client:
            answers = await asyncio.gather(*(client.predict(clock_request()) for _ in range(3)))
        return [a.forecasts[0].mean_us[0] for a in answers]

    with Client(gateway, api_key=API_KEY) as client:
        expected = client.predict(clock_request()).forecasts[0].mean_us[0]
    assert asyncio.run(ask()) == pytest.approx([expected] * 3)


def test_missing_api_key_is_a_401_problem_not_retried(gateway: str) -> None:
    with Client(gateway) as client, pytest.raises(GatewayError) as caught:
        client.predict(clock_request())
    assert caught.value.status == 401
    assert "X-API-Key" in caught.value.problem.detail


def test_a_refused_request_carries_the_gateways_reason_per_field(gateway: str) -> None:
    with Client(gateway, api_key=API_KEY) as client, pytest.raises(GatewayError) as caught:
        client.predict(clock_request(backends=["no-such-model"]))
    assert caught.value.status == 422
    assert caught.value.problem.errors and caught.value.problem.errors[0]["field"] == "backends"


def flaky_app(failures: int, delay_s: float = 0.0) -> tuple[FastAPI, list[float]]:
    """Answers /models with 503 ``failures`` times, then a real FleetModels, each after ``delay_s``;
    records call times."""
    app = FastAPI()
    calls: list[float] = []

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/models")
    async def models() -> Response:
        calls.append(time.monotonic())
        await asyncio.sleep(delay_s)
        if len(calls) <= failures:
            return Response(
                '{"type":"about:blank","title":"No backend answered","status":503,"detail":"busy"}',
                status_code=503,
                media_type="application/problem+json",
            )
        return Response(FleetModels(services=[], classical=["kalman"]).model_dump_json(), media_type="application/json")

    return app, calls


def test_503_is_retried_with_backoff_until_an_answer() -> None:
    app, calls = flaky_app(failures=2)
    with serve_in_thread(app) as url, Client(url, attempts=3, backoff_initial_s=0.05) as client:
        fleet = client.models()
    assert fleet.classical == ["kalman"]
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.05 and calls[2] - calls[1] >= 0.05


def test_503_after_every_attempt_raises_the_last_problem() -> None:
    app, calls = flaky_app(failures=10)

    async def ask() -> None:
        async with AsyncClient(url, attempts=2, backoff_initial_s=0.01) as client:
            await client.models()

    with serve_in_thread(app) as url, pytest.raises(GatewayError) as caught:
        asyncio.run(ask())
    assert caught.value.status == 503 and caught.value.problem.detail == "busy"
    assert len(calls) == 2


def test_nothing_listening_is_unreachable_after_the_attempts() -> None:
    port = free_port()
    with socket.socket() as probe:  # the port is free: nobody accepts there
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    started = time.monotonic()
    with (
        Client(f"http://127.0.0.1:{port}", attempts=3, backoff_initial_s=0.1, backoff_max_s=0.1) as client,
        pytest.raises(GatewayUnreachable),
    ):
        client.models()
    # Three attempts, two waits of at least 0.1 s each.
    assert time.monotonic() - started >= 0.2


def test_cli_predict_forecasts_a_clock_log_through_the_gateway(gateway: str, tmp_path: Path) -> None:
    clock = generate_clock("server_load", 120, seed=5)
    lines = ["time_s,offset_us"] + [
        f"{1_700_000_000 + i},{v:.3f}" for i, v in enumerate(clock.observed_offset_us) if not np.isnan(v)
    ]
    log = tmp_path / "clock.csv"
    log.write_text("\n".join(lines) + "\n")
    arguments = ["predict", str(log), "--horizon-s", "5", "--gateway", gateway, "--api-key", API_KEY]
    table = CliRunner().invoke(app, arguments)
    assert table.exit_code == 0, table.output
    assert "kalman" in table.output and "95% high" in table.output
    answer = CliRunner().invoke(app, [*arguments, "--json"])
    assert answer.exit_code == 0
    assert '"horizon": 5' in answer.output
    refused = CliRunner().invoke(app, arguments[:-2])  # no key
    assert refused.exit_code == 1 and "401" in refused.output


def test_cli_status_shows_the_fleet(gateway: str) -> None:
    result = CliRunner().invoke(app, ["status", "--gateway", gateway])
    assert result.exit_code == 0, result.output
    assert f"gateway {gateway}: ready" in result.output
    assert "classical members (always answer): last-value, chrony-fit, kalman" in result.output
    assert "configuration in force: env" in result.output  # the test gateway has no configuration file


def test_a_read_timeout_is_unreachable_at_once_never_sent_again() -> None:
    """A gateway that is slow may still be working on the request: the client gives up at its
    timeout and does not send it a second time."""
    app, calls = flaky_app(failures=0, delay_s=2.0)
    with serve_in_thread(app) as url, Client(url, timeout_s=0.3, attempts=3, backoff_initial_s=0.01) as client:
        started = time.monotonic()
        with pytest.raises(GatewayUnreachable, match="ReadTimeout"):
            client.models()
        waited = time.monotonic() - started
    assert len(calls) == 1
    assert 0.3 <= waited < 1.5


def test_the_gateway_remembers_a_named_clock_reports_it_scores_observations_and_forgets_it(gateway: str) -> None:
    clock = generate_clock("server_load", 400, seed=11)
    offsets = [None if np.isnan(v) else float(v) for v in clock.observed_offset_us]

    def window(start: int) -> FusedPredictRequest:
        series = SeriesInput(
            id="host-c",
            clock_id="client-test.host-c",
            interval_s=1.0,
            start_s=1_700_000_000.0 + start,
            offsets_us=offsets[start : start + 200],
        )
        return FusedPredictRequest(series=[series], horizon=10, quantile_levels=[0.1, 0.5, 0.9], deadline_s=10.0)

    with Client(gateway, api_key=API_KEY) as client:
        first = client.predict(window(0))
        second = client.predict(window(5))  # its samples score the first forecast's first steps
        report = client.clock("client-test.host-c")
        scored = client.observe("client-test.host-c", [1_700_000_000.0 + t for t in range(205, 215)], offsets[205:215])
        client.forget_clock("client-test.host-c")
        with pytest.raises(GatewayError) as forgotten:
            client.clock("client-test.host-c")
    assert first.memory[0].clock_id == "client-test.host-c" and first.memory[0].state == "cold-start"
    assert second.memory[0].newly_scored > 0
    assert report.clock_id == "client-test.host-c" and report.requests == 2 and report.interval_s == 1.0
    assert scored.clock_id == "client-test.host-c" and scored.scored > 0
    assert forgotten.value.status == 404


def test_the_clock_calls_report_score_and_forget_a_remembered_clock() -> None:
    """GET, POST .../observations and DELETE /clocks/{id}, against a stand-in that answers the contract's
    shapes; a clock the gateway does not know is a 404 GatewayError, like every other error answer."""
    stand_in = ClockMemoryStandIn(clocks={"host-a.eth0": 7})
    with serve_in_thread(clock_memory_app(stand_in)) as url, Client(url, attempts=1) as client:
        report = client.clock("host-a.eth0")
        scored = client.observe("host-a.eth0", [1_700_000_100.0, 1_700_000_101.0], [4.5, None])
        client.forget_clock("host-a.eth0")
        with pytest.raises(GatewayError) as forgotten:
            client.clock("host-a.eth0")
        with pytest.raises(GatewayError) as twice:
            client.forget_clock("host-a.eth0")
    assert isinstance(report, ClockReport) and report.requests == 7 and report.horizons[0].rule == "weights"
    assert scored == ObservationsScored(clock_id="host-a.eth0", scored=1, pending=4)
    assert forgotten.value.status == twice.value.status == 404
    assert "host-a.eth0" in forgotten.value.problem.detail
    assert [(method, path) for method, path, _ in stand_in.requests] == [
        ("GET", "/clocks/host-a.eth0"),
        ("POST", "/clocks/host-a.eth0/observations"),
        ("DELETE", "/clocks/host-a.eth0"),
        ("GET", "/clocks/host-a.eth0"),
        ("DELETE", "/clocks/host-a.eth0"),
    ]
    assert stand_in.requests[1][2] == {"timestamps_s": [1_700_000_100.0, 1_700_000_101.0], "offsets_us": [4.5, None]}


def test_the_async_clock_calls_match_the_sync_ones() -> None:
    stand_in = ClockMemoryStandIn(clocks={"ptp:00:1b:21:ff:fe:4a:5c:10": 2})
    clock_id = "ptp:00:1b:21:ff:fe:4a:5c:10"

    async def calls(url: str) -> tuple[ClockReport, ObservationsScored, int]:
        async with AsyncClient(url, attempts=1) as client:
            report = await client.clock(clock_id)
            scored = await client.observe(clock_id, [10.0, 11.0, 12.0], [1.0, 2.0, 3.0])
            await client.forget_clock(clock_id)
            with pytest.raises(GatewayError) as forgotten:
                await client.observe(clock_id, [13.0], [4.0])
        return report, scored, forgotten.value.status

    with serve_in_thread(clock_memory_app(stand_in)) as url:
        report, scored, status = asyncio.run(calls(url))
    assert report.clock_id == clock_id and report.pending_forecasts == 3
    assert (scored.scored, scored.pending, status) == (3, 2, 404)


@pytest.mark.parametrize("clock_id", ["../models", "host/a", "", "-leading-dash", "x" * 129])
def test_a_clock_id_the_contract_refuses_is_never_sent(clock_id: str) -> None:
    stand_in = ClockMemoryStandIn()
    with serve_in_thread(clock_memory_app(stand_in)) as url, Client(url, attempts=1) as client:
        for call in (
            lambda: client.clock(clock_id),
            lambda: client.forget_clock(clock_id),
            lambda: client.observe(clock_id, [1.0], [2.0]),
        ):
            with pytest.raises(ValueError, match="String should"):
                call()
    assert stand_in.requests == []


def test_observations_are_checked_before_they_are_sent() -> None:
    stand_in = ClockMemoryStandIn(clocks={"host-a": 1})
    with (
        serve_in_thread(clock_memory_app(stand_in)) as url,
        Client(url, attempts=1) as client,
        pytest.raises(ValueError, match="strictly increasing"),
    ):
        client.observe("host-a", [2.0, 1.0], [0.0, 0.0])
    assert stand_in.requests == []
