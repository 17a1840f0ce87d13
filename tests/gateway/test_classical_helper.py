"""The classical members in a real helper process: the same answers as on the event loop, by the
same deadline; a helper that is behind leaves a request to the loop; a helper that dies or is stuck
is replaced, and the requests it held are answered all the same."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import numpy as np
import psutil
import pytest

from chronotick.baselines import CLASSICAL_FORECASTERS
from chronotick.grid import GridSeries
from chronotick_gateway.backtest import SeriesPlan, plan_series
from chronotick_gateway.classical_helper import GRACE_S, ClassicalHelper
from chronotick_gateway.members import ALWAYS_ANSWERS, classical_members, classical_series, run_classical
from chronotick_gateway.metrics import GatewayMetrics

NAMES = [f.name for f in CLASSICAL_FORECASTERS]
HORIZON = 30


def plans(count: int = 2, length: int = 300) -> list[SeriesPlan]:
    rng = np.random.default_rng(11)
    return [
        plan_series(
            GridSeries(
                offsets_us=np.cumsum(rng.normal(0.0, 1.0, length)) + rng.normal(0.0, 0.5, length),
                interval_s=1.0,
                past_covariates={},
                future_covariates={},
            ),
            HORIZON,
            6,
            f"s{i}",
        )
        for i in range(count)
    ]


@asynccontextmanager
async def helper_started(processes: int = 1, metrics: GatewayMetrics | None = None) -> AsyncIterator[ClassicalHelper]:
    helper = ClassicalHelper(processes, metrics or GatewayMetrics())
    helper.start()
    try:
        yield helper
    finally:
        helper.close()


def run(scenario: Callable[[], Awaitable[object]]) -> object:
    return asyncio.run(scenario())


def test_the_helper_answers_exactly_what_the_event_loop_would() -> None:
    series = plans()

    async def scenario() -> tuple[object, object]:
        async with helper_started() as helper:
            deadline = asyncio.get_running_loop().time() + 30.0
            from_helper = await helper.run(NAMES, classical_series(series), HORIZON, deadline)
            on_loop = await classical_members(NAMES, series, HORIZON, deadline)
            return from_helper, on_loop

    from_helper, on_loop = run(scenario)
    assert from_helper is not None
    for mine, theirs in zip(from_helper.results(series), on_loop, strict=True):
        assert mine.ok and theirs.ok and mine.name == theirs.name
        for a, b in zip(mine.forecasts, theirs.forecasts, strict=True):
            np.testing.assert_array_equal(a.mean_us, b.mean_us)
            np.testing.assert_array_equal(a.std_us, b.std_us)
            np.testing.assert_array_equal(a.backtest_errors_us, b.backtest_errors_us)


def test_past_the_deadline_the_helper_too_finishes_only_the_cheapest_member() -> None:
    series = plans(3)
    # What a helper runs, with a deadline that passed while the request waited for it.
    helped = run_classical(NAMES, classical_series(series), HORIZON, time.monotonic())
    results = {r.name: r for r in helped.results(series)}
    assert results[ALWAYS_ANSWERS].ok and len(results[ALWAYS_ANSWERS].forecasts) == 3
    assert all(results[name].status == "timeout" for name in NAMES if name != ALWAYS_ANSWERS)


def test_a_helper_that_could_not_finish_in_time_leaves_the_request_to_the_event_loop() -> None:
    series = plans(1)

    async def scenario() -> tuple[object, list[object]]:
        async with helper_started() as helper:
            helper.pace_s = 0.5  # as if each request had lately taken it half a second
            deadline = asyncio.get_running_loop().time() + 0.2
            declined = await helper.run(NAMES, classical_series(series), HORIZON, deadline)
            return declined, await classical_members(NAMES, series, HORIZON, deadline, helper)

    declined, answered = run(scenario)
    assert declined is None
    assert all(r.ok for r in answered)  # by the loop


# The next request comes at once, or after the pool has noticed the death (its submission then fails).
@pytest.mark.parametrize("idle_s", [0.0, 1.0])
def test_a_helper_that_dies_is_replaced_and_the_requests_it_held_are_answered_by_the_loop(idle_s: float) -> None:
    series = plans(1)
    metrics = GatewayMetrics()

    async def scenario() -> tuple[list[object], object]:
        async with helper_started(metrics=metrics) as helper:
            assert await helper.run(NAMES, classical_series(series), HORIZON, math.inf) is not None
            for process in multiprocessing.active_children():  # as the kernel's OOM killer would
                process.kill()
            await asyncio.sleep(idle_s)
            answered = await classical_members(NAMES, series, HORIZON, math.inf, helper)
            return answered, await helper.run(NAMES, classical_series(series), HORIZON, math.inf)

    answered, after = run(scenario)
    assert all(r.ok for r in answered)
    assert after is not None  # a new helper
    assert (
        metrics.registry.get_sample_value("chronotick_gateway_background_failures_total", {"task": "classical-helper"})
        == 1.0
    )


def test_a_stuck_helper_holds_a_request_only_until_its_deadline_and_is_then_replaced() -> None:
    series = plans(1)
    metrics = GatewayMetrics()

    async def scenario() -> tuple[float, list[object], object]:
        stuck = []
        async with helper_started(metrics=metrics) as helper:
            try:
                assert await helper.run(NAMES, classical_series(series), HORIZON, math.inf) is not None
                for process in multiprocessing.active_children():  # frozen, as `docker pause` or SIGSTOP do
                    if process.pid is not None and process.name.startswith("ForkServerProcess"):
                        os.kill(process.pid, signal.SIGSTOP)
                        stuck.append(process)
                assert stuck, "the helper process was not found among the children"
                loop = asyncio.get_running_loop()
                sent = loop.time()
                answered = await classical_members(NAMES, series, HORIZON, sent + 0.3, helper)
                waited = loop.time() - sent
                return waited, answered, await helper.run(NAMES, classical_series(series), HORIZON, math.inf)
            finally:
                for process in stuck:
                    if process.is_alive():
                        os.kill(process.pid, signal.SIGCONT)

    waited, answered, after = run(scenario)
    assert waited < 0.3 + GRACE_S + 0.2, f"the request waited {waited:.3f} s for a stuck helper"
    results = {r.name: r for r in answered}
    assert results[ALWAYS_ANSWERS].ok, "the loop did not answer for the stuck helper"
    assert after is not None  # a new helper
    assert (
        metrics.registry.get_sample_value("chronotick_gateway_background_failures_total", {"task": "classical-helper"})
        == 1.0
    )


_HELPER_IN_A_GATEWAY = """
import sys
from chronotick_gateway.classical_helper import ClassicalHelper
from chronotick_gateway.metrics import GatewayMetrics

helper = ClassicalHelper(2, GatewayMetrics())
helper.start()
print(" ".join(str(pid) for pid in helper._pool._processes), flush=True)
sys.stdin.read()  # until the test kills this process
"""


def test_the_helpers_end_when_the_gateway_is_killed_outright() -> None:
    """SIGKILL (the OOM killer, say) gives a gateway no chance to close its helpers: they must not
    outlive it, nor the forkserver that started them."""
    gateway = subprocess.Popen(
        [sys.executable, "-c", _HELPER_IN_A_GATEWAY], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert gateway.stdout is not None
        helpers = [psutil.Process(int(pid)) for pid in gateway.stdout.readline().split()]
        assert len(helpers) == 2
        forkserver = psutil.Process(helpers[0].ppid())
        assert forkserver.pid != gateway.pid
        left = [*helpers, forkserver]
    finally:
        gateway.kill()
        gateway.wait()

    def gone(process: psutil.Process) -> bool:
        try:
            return process.status() == psutil.STATUS_ZOMBIE  # ended, not yet reaped by its new parent
        except psutil.NoSuchProcess:
            return True

    waited = time.monotonic()
    while not all(gone(process) for process in left) and time.monotonic() - waited < 10.0:
        time.sleep(0.05)
    assert [process.pid for process in left if not gone(process)] == []
