"""The clock memory at work in one gateway process: a clock's next request reads what its last one saved."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import numpy as np

from chronotick.synthetic import generate_clock
from chronotick_gateway.clocks import ClockMemory, RecalledClock
from chronotick_gateway.clockstore import InProcessClockStore
from chronotick_gateway.memory import Samples, remember
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


def store() -> InProcessClockStore:
    return InProcessClockStore(max_clocks=10, idle_expiry_s=600.0)


async def answered(memory: ClockMemory, clock_id: str, series: Samples, rng: np.random.Generator) -> RecalledClock:
    """One request of ``clock_id``: recalled, its answer remembered, its state written back."""
    (clock,) = await memory.recall([(clock_id, series)], horizon=60)
    assert not isinstance(clock, str)
    last = np.nan_to_num(series.offsets_us)[-1]
    members = {name: last + np.cumsum(rng.normal(0.0, 0.5, 60)) for name in ("kalman", "ttm", "online-ar")}
    fused = np.mean(list(members.values()), axis=0)
    remember(clock.state, series.last_s, members, fused, np.ones(60), remembered=clock.warm)
    memory.keep([clock])
    await memory._saved([clock_id])
    return clock


def test_a_state_this_gateway_wrote_is_taken_as_it_is_and_learns_exactly_as_its_decoded_bytes_would() -> None:
    """Two gateways fed the same requests, one decoding every state it reads, the other taking the
    state it wrote: request after request they store the same bytes (the state is not changed by
    being kept), over a clock with missing samples and a spike."""
    offsets = generate_clock("mixed", 512 + 5 * 150, interval_s=1.0, seed=7).observed_offset_us.copy()
    offsets[700:712] = np.nan
    offsets[800] += 5_000.0

    async def replay(held: int) -> tuple[list[bytes], int]:
        memory = ClockMemory(store(), GatewayMetrics(), warm_after=3, decoded_held=held)
        rng = np.random.default_rng(1)
        written, taken = [], 0
        previous = None
        for k in range(150):
            series = Samples.on_grid(5.0 * k, 1.0, offsets[5 * k : 5 * k + 512])
            clock = await answered(memory, "host-a", series, rng)
            taken += clock.state is previous
            previous = clock.state
            written.append((await memory.store.load(["host-a"]))["host-a"])
        return written, taken

    decoding, none_taken = asyncio.run(replay(held=0))
    taking, all_taken = asyncio.run(replay(held=4))
    assert (none_taken, all_taken) == (0, 149)
    assert taking == decoding


def test_a_state_someone_else_wrote_since_is_decoded_from_the_store() -> None:
    """Another replica on the same store answered the clock last: this one's kept state is older
    than the store's, and the store's is the one read."""

    async def drill() -> tuple[int, bool, bool]:
        shared = store()
        here = ClockMemory(shared, GatewayMetrics(), warm_after=3, decoded_held=4)
        there = ClockMemory(shared, GatewayMetrics(), warm_after=3, decoded_held=4)
        rng = np.random.default_rng(2)
        first = await answered(here, "host-a", samples(0.0), rng)
        await answered(there, "host-a", samples(5.0), rng)
        (again,) = await here.recall([("host-a", samples(10.0))], horizon=60)
        assert not isinstance(again, str)
        return again.state.requests, again.state is first.state, len(here.decoded) == 0

    requests, same_object, handed_over = asyncio.run(drill())
    assert requests == 2  # both answers counted: read from the store, not from here's older state
    assert not same_object
    assert handed_over


def test_two_requests_of_one_clock_at_once_never_share_a_state() -> None:
    async def drill() -> tuple[bool, int]:
        memory = ClockMemory(store(), GatewayMetrics(), warm_after=3, decoded_held=4)
        await answered(memory, "host-a", samples(0.0), np.random.default_rng(3))
        (one,), (other,) = await asyncio.gather(
            memory.recall([("host-a", samples(5.0))], horizon=60), memory.recall([("host-a", samples(5.0))], horizon=60)
        )
        assert not isinstance(one, str) and not isinstance(other, str)
        return one.state is other.state, one.state.requests + other.state.requests

    shared, requests = asyncio.run(drill())
    assert not shared
    assert requests == 2  # each its own copy of the state after the first answer


def test_the_decoded_states_held_are_bounded_and_a_forgotten_clock_is_dropped() -> None:
    async def drill() -> tuple[int, int, int]:
        memory = ClockMemory(store(), GatewayMetrics(), warm_after=3, decoded_held=2)
        rng = np.random.default_rng(4)
        for clock_id in ("host-a", "host-b", "host-c"):
            await answered(memory, clock_id, samples(0.0), rng)
        bounded = len(memory.decoded)
        await memory.forget("host-c")
        after_forget = len(memory.decoded)
        none = ClockMemory(store(), GatewayMetrics(), warm_after=3, decoded_held=0)
        await answered(none, "host-a", samples(0.0), rng)
        return bounded, after_forget, len(none.decoded)

    assert asyncio.run(drill()) == (2, 1, 0)
