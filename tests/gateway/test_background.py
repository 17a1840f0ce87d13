"""Background work never dies silently: a failing task is logged, counted and started again."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import generate_latest

from chronotick_gateway import background
from chronotick_gateway.background import supervise
from chronotick_gateway.metrics import GatewayMetrics
from support.fleet_calls import metric_total


def test_a_task_that_keeps_failing_is_restarted_logged_and_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
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
