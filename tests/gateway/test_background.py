"""Background work never dies silently: a failing task is logged, counted and started again, and a
health poll that hangs makes the gateway say its view is stale instead of hanging with it."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from prometheus_client import generate_latest

from chronotick.contract import BatchingInfo, ServiceInfo
from chronotick_gateway import background
from chronotick_gateway.background import supervise
from chronotick_gateway.config import FleetConfig
from chronotick_gateway.fleet import Fleet
from chronotick_gateway.metrics import GatewayMetrics
from chronotick_gateway.settings import GatewaySettings
from support.fleet_calls import metric_total
from support.line_family import LineFamily

INFO = (
    ServiceInfo(
        family="line",
        default_model="line",
        models=[m.info for m in LineFamily().models.values()],
        versions={},
        batching=BatchingInfo(enabled=True, window_ms=3.0, max_batch_series=256),
    )
    .model_dump_json()
    .encode()
)


def test_a_task_that_keeps_failing_is_restarted_logged_and_counted(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(background, "RESTART_BACKOFF_S", 0.001)
    metrics = GatewayMetrics()
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 4:
            raise RuntimeError(f"failure {len(runs)}")
        await asyncio.sleep(3600)  # then it works

    async def scenario() -> None:
        task = asyncio.create_task(supervise("poller", flaky, metrics))
        while len(runs) < 4:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.ERROR, logger="chronotick.gateway.background"):
        asyncio.run(scenario())
    assert len(runs) == 4
    text = generate_latest(metrics.registry).decode()
    assert metric_total(text, "chronotick_gateway_background_failures", task="poller") == 3
    failures = [r for r in caplog.records if "background task poller failed" in r.getMessage()]
    assert len(failures) == 3 and "failure 1" in str(failures[0].exc_info[1])


def test_a_hanging_health_poll_round_is_counted_the_view_goes_stale_and_polling_goes_on() -> None:
    metrics = GatewayMetrics()
    hang = asyncio.Event()

    async def health(request: httpx.Request) -> httpx.Response:
        while hang.is_set():  # a check that never returns (httpx's own timeout bypassed)
            await asyncio.sleep(0.01)
        return (
            httpx.Response(200, json={"status": "ready"})
            if request.url.path == "/health/ready"
            else httpx.Response(200, content=INFO)
        )

    async def scenario() -> None:
        settings = GatewaySettings(services={"a": "http://a.test"}, health_interval_s=0.05, health_timeout_s=0.05)
        async with httpx.AsyncClient(transport=httpx.MockTransport(health)) as http:
            fleet = Fleet(FleetConfig(settings, "1"), http, http, metrics)
            poller = asyncio.create_task(fleet.poll_forever())
            await asyncio.sleep(0.3)
            assert not fleet.view_is_stale() and fleet.services["a"].ready  # rounds complete
            hang.set()  # from now on every check hangs
            stale_after_s = 3 * settings.health_interval_s + fleet.round_timeout_s()
            await asyncio.sleep(0.5)
            assert not fleet.view_is_stale()  # a round or two late is no reason to distrust the view
            await asyncio.sleep(stale_after_s)
            assert fleet.view_is_stale()
            hang.clear()  # the service answers again: the next round completes
            await asyncio.sleep(0.5)
            assert not fleet.view_is_stale() and fleet.services["a"].ready
            poller.cancel()

    asyncio.run(scenario())
    text = generate_latest(metrics.registry).decode()
    assert metric_total(text, "chronotick_gateway_background_failures", task="health-poll-round") >= 1
