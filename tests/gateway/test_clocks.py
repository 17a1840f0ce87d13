"""The clock memory at work in one gateway process: a clock's next request reads what its last one saved."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import numpy as np

from chronotick_gateway.clocks import ClockMemory
from chronotick_gateway.clockstore import InProcessClockStore
from chronotick_gateway.memory import Samples
from chronotick_gateway.metrics import GatewayMetrics


class SlowSaves(InProcessClockStore):
    """The in-process store, each save taking ``delay_s`` (a busy Redis, a far one)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(max_clocks=10, idle_expiry_s=600.0)
        self.delay_s = delay_s

    async def save(self, states: Mapping[str, bytes]) -> None:
        await asyncio.sleep(self.delay_s)
        await super().save(states)


def samples(start_s: float) -> Samples:
    return Samples.on_grid(start_s, 1.0, np.linspace(0.0, 5.0, 60))


def test_a_clock_asked_again_at_once_is_recalled_with_its_last_answer_while_it_is_being_saved() -> None:
    async def drill() -> tuple[list[int], list[float], list[float], int]:
        memory = ClockMemory(SlowSaves(delay_s=0.2), GatewayMetrics(), warm_after=3)
        seen, waited, other = [], [], []
        for request in range(3):
            started = asyncio.get_running_loop().time()
            (clock,) = await memory.recall([("host-a", samples(5.0 * request))], horizon=60)
            assert not isinstance(clock, str)
            waited.append(round(asyncio.get_running_loop().time() - started, 1))
            seen.append(clock.state.requests)
            clock.state.requests += 1  # what answering the request remembers
            memory.keep([clock])  # saved in the background; the next request comes before it lands
            # Another clock is not held up by host-a's save.
            started = asyncio.get_running_loop().time()
            (unrelated,) = await memory.recall([("host-b", samples(0.0))], horizon=60)
            assert not isinstance(unrelated, str)
            other.append(round(asyncio.get_running_loop().time() - started, 1))
        await memory.close()
        report = await memory.report("host-a")
        assert report is not None
        return seen, waited, other, report.requests

    seen, waited, other, kept = asyncio.run(drill())
    assert seen == [0, 1, 2]  # read from the store, each request would see the state from before its predecessor
    assert waited == [0.0, 0.0, 0.0]  # and waiting for the save to land would cost it the save's time
    assert kept == 3
    assert other == [0.0, 0.0, 0.0]


class SlowLoads(InProcessClockStore):
    """The in-process store, each load taking ``delay_s`` (a Redis that has just gone away)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(max_clocks=10, idle_expiry_s=600.0)
        self.delay_s = delay_s
        self.loads_finished = 0

    async def load(self, clock_ids: list[str]) -> dict[str, bytes]:  # type: ignore[override]
        await asyncio.sleep(self.delay_s)
        self.loads_finished += 1
        return await super().load(clock_ids)


def test_a_request_waits_for_its_clocks_no_longer_than_its_own_time_left() -> None:
    """The store's call goes on after the request stops waiting (the store's own verdict stands)."""
    async def drill() -> tuple[object, float, int, int]:
        store = SlowLoads(delay_s=0.3)
        memory = ClockMemory(store, GatewayMetrics(), warm_after=3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await memory.recall([("host-a", samples(0.0))], horizon=60, within_s=0.05)
        waited_s = loop.time() - started
        finished_then = store.loads_finished
        await asyncio.sleep(0.4)
        return answer, waited_s, finished_then, store.loads_finished

    answer, waited_s, finished_then, finished_later = asyncio.run(drill())
    assert isinstance(answer, str) and "no answer within the request's 50 ms left" in answer, answer
    assert waited_s < 0.2
    assert (finished_then, finished_later) == (0, 1)
