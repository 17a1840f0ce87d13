"""Admission control: a service gets only the calls it can answer before the deadline, and no
slot is ever lost, whatever is cancelled or times out."""

from __future__ import annotations

import asyncio

import pytest

from chronotick_gateway.admission import Finishing, Overloaded, ServiceLoad
from chronotick_gateway.predict import DEADLINE_RECHECK_S, members_by


def run(scenario) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(scenario())


def test_calls_beyond_the_bound_wait_and_take_freed_slots_in_arrival_order() -> None:
    async def scenario() -> None:
        load = ServiceLoad(max_in_flight=2)
        order: list[int] = []
        release = asyncio.Event()

        async def call(index: int) -> None:
            async with load.slot(remaining_s=10.0):
                order.append(index)
                assert load.in_flight <= 2
                await release.wait()

        tasks = [asyncio.create_task(call(i)) for i in range(5)]
        await asyncio.sleep(0.01)
        assert order == [0, 1] and load.in_flight == 2 and load.waiting == 3
        release.set()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]
        assert load.in_flight == 0 and load.waiting == 0

    run(scenario)


def test_a_call_the_busy_service_cannot_answer_in_time_is_refused_at_once() -> None:
    async def scenario() -> None:
        load = ServiceLoad(max_in_flight=4)
        load.observe(0.8)  # its calls take 0.8 s now
        hold = asyncio.Event()

        async def busy() -> None:
            async with load.slot(remaining_s=10.0):
                await hold.wait()

        task = asyncio.create_task(busy())
        await asyncio.sleep(0)
        started = asyncio.get_running_loop().time()
        with pytest.raises(Overloaded, match="1 calls in flight.*800 ms"):
            async with load.slot(remaining_s=0.5):
                pass
        assert asyncio.get_running_loop().time() - started < 0.05  # refused, not waited out
        async with load.slot(remaining_s=1.0):  # with time enough it is sent
            assert load.in_flight == 2
        hold.set()
        await task
        assert load.in_flight == 0

    run(scenario)


def test_an_idle_service_is_always_tried_however_slow_it_was() -> None:
    async def scenario() -> None:
        load = ServiceLoad(max_in_flight=4)
        load.observe(30.0)  # it was very slow (or timing out) a while ago
        async with load.slot(remaining_s=0.1):
            assert load.in_flight == 1
        load.observe(0.01)
        assert load.latency_s is not None and load.latency_s < 30.0  # a fast answer brings the estimate down

    run(scenario)


def test_a_service_is_busy_when_its_calls_are_expected_to_take_more_than_half_the_time_left() -> None:
    assert not ServiceLoad(max_in_flight=8, latency_s=5.0).busy(remaining_s=0.9)  # nothing in flight: idle
    load = ServiceLoad(max_in_flight=2, in_flight=1, latency_s=0.3)
    assert not load.busy(remaining_s=0.9)
    assert load.busy(remaining_s=0.5)
    load.observe(0.9)  # slower calls: the estimate rises to 0.42 s
    assert load.busy(remaining_s=0.8) and not load.busy(remaining_s=0.9)
    load.in_flight = 2  # every slot taken: a call would wait for one first
    assert load.busy(remaining_s=1.5)


def test_waiting_past_the_time_left_is_refused_and_gives_its_place_back() -> None:
    async def scenario() -> None:
        load = ServiceLoad(max_in_flight=1)
        hold = asyncio.Event()

        async def busy() -> None:
            async with load.slot(remaining_s=10.0):
                await hold.wait()

        task = asyncio.create_task(busy())
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            async with load.slot(remaining_s=0.05):  # no latency known yet: waits, then gives up
                pass
        assert load.waiting == 0 and load.in_flight == 1
        hold.set()
        await task
        assert load.in_flight == 0

    run(scenario)


def test_cancelled_waiters_and_holders_leave_no_slot_behind() -> None:
    async def scenario() -> None:
        load = ServiceLoad(max_in_flight=3)

        async def call() -> None:
            async with load.slot(remaining_s=10.0):
                await asyncio.sleep(0.01)

        # Waves of calls cancelled at every point of their life: waiting, holding, just handed a slot.
        for delay in (0.0, 0.001, 0.005, 0.009, 0.011, 0.02):
            tasks = [asyncio.create_task(call()) for _ in range(20)]
            await asyncio.sleep(delay)
            for task in tasks[::2]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert load.in_flight == 0 and load.waiting == 0, delay
        async with load.slot(remaining_s=0.01):  # every slot is still there
            assert load.in_flight == 1

    run(scenario)


def test_each_request_keeps_back_the_time_to_finish_every_request_in_flight() -> None:
    finishing = Finishing()
    finishing.in_flight = 32
    for _ in range(50):
        finishing.observe(0.004)  # fusing and writing one answer took 4 ms
    assert finishing.reserve_s() == pytest.approx(32 * 0.004, rel=0.01)
    finishing.in_flight = 1
    assert finishing.reserve_s() == pytest.approx(0.004, rel=0.01)


def test_requests_coming_in_behind_a_waiting_one_bring_its_members_deadline_forward() -> None:
    """The first request of a burst counted only itself in flight; while its members are out, the
    other 31 come in, and it ends its wait early enough for all of them to be finished in time."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        finishing = Finishing(answer_s=0.01)
        finishing.in_flight = 1
        arrived = loop.time()
        answer_by = arrived + 1.0

        def members_deadline() -> float:
            return answer_by - finishing.reserve_s()

        slow = asyncio.create_task(asyncio.sleep(5.0))
        fast = asyncio.create_task(asyncio.sleep(0.05))
        waiting = asyncio.create_task(members_by({slow, fast}, members_deadline(), members_deadline))
        await asyncio.sleep(0.1)
        finishing.in_flight = 32  # the burst is in: finishing it takes 0.32 s
        still_out = await waiting
        ended = loop.time() - arrived
        assert still_out == {slow} and fast.done()
        assert 1.0 - 0.32 - 0.01 <= ended <= 1.0 - 0.32 + DEADLINE_RECHECK_S + 0.2, ended  # not at 1.0
        slow.cancel()

    run(scenario)


def test_a_deadline_the_load_would_push_back_stays_where_it_was() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        begun = loop.time()
        slow = asyncio.create_task(asyncio.sleep(5.0))
        assert await members_by({slow}, begun + 0.2, lambda: begun + 10.0) == {slow}
        assert 0.2 <= loop.time() - begun < 0.2 + DEADLINE_RECHECK_S + 0.5  # not at 10 s
        slow.cancel()

    run(scenario)


def test_a_service_that_keeps_timing_out_is_sent_one_call_at_a_time_until_it_is_fast_again() -> None:
    async def scenario() -> None:
        load = ServiceLoad(max_in_flight=8)
        for _ in range(10):
            load.observe_timeout(0.9)  # every call ran out of its 0.9 s
        assert load.latency_s is not None and load.latency_s > 0.95
        async with load.slot(remaining_s=0.95):  # idle: tried all the same
            with pytest.raises(Overloaded):  # but not a second one beside it
                async with load.slot(remaining_s=0.95):
                    pass
        for _ in range(3):
            load.observe(0.1)  # it answers fast again
        async with load.slot(remaining_s=0.95):
            assert load.refuses(0.95) is None  # and calls flow beside each other again

    run(scenario)
