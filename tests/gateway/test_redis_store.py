"""The clock memory in a real redis-server: bytes in and out, the idle expiry as a TTL, and a Redis
that is stopped, stuck or restarted costing callers at most a bounded wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial

import pytest

from chronotick_gateway.clockstore import StoreUnavailable
from chronotick_gateway.redis_store import (
    BACKOFF_S,
    CALL_DEADLINE_S,
    KEY_PREFIX,
    POOL_CONNECTIONS,
    PROBE_DEADLINE_S,
    RedisClockStore,
)
from support.redis_server import RedisServer

# Slack for a loaded test machine on top of the store's own bounds.
SLACK_S = 0.1
# A call answered from the backoff touches no network: well under this (a try on a stuck server
# takes the call's deadline, 0.5 s).
AT_ONCE_S = 0.05


async def elapsed(call: Callable[[], Awaitable[object]]) -> tuple[float, BaseException | None]:
    """How long ``call`` took, and what it raised."""
    started = time.monotonic()
    try:
        await call()
    except Exception as error:  # returned for the test to judge
        return time.monotonic() - started, error
    return time.monotonic() - started, None


def test_states_round_trip_and_only_known_clocks_are_returned(redis_server: RedisServer) -> None:
    states = {"rack-1/host-a": b"\x01state-a", "rack-1/host-b": b"\x02state-b", "c": b""}

    async def scenario() -> None:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            await store.save(states)
            assert await store.load(["rack-1/host-a", "never-seen", "rack-1/host-b", "c"]) == states
            assert await store.load(["never-seen"]) == {}
            assert await store.load([]) == {}
        finally:
            await store.close()

    asyncio.run(scenario())
    with redis_server.client() as client:
        assert client.get(f"{KEY_PREFIX}rack-1/host-a") == b"\x01state-a"


def test_bytes_that_are_not_utf8_round_trip_unchanged(redis_server: RedisServer) -> None:
    states = {"every-byte": bytes(range(256)), "invalid-utf8": b"\xff\xfe\xc3\x28\x00\x80"}

    async def scenario() -> dict[str, bytes]:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            await store.save(states)
            return await store.load(list(states))
        finally:
            await store.close()

    assert asyncio.run(scenario()) == states


def test_each_save_sets_the_idle_expiry_as_the_ttl_again(redis_server: RedisServer) -> None:
    key = f"{KEY_PREFIX}clock"

    async def save(state: bytes) -> None:
        store = RedisClockStore(redis_server.url, idle_expiry_s=100)
        try:
            await store.save({"clock": state})
        finally:
            await store.close()

    with redis_server.client() as client:
        asyncio.run(save(b"first"))
        assert 98 <= client.ttl(key) <= 100
        client.expire(key, 5)  # as if 95 s had passed without a request
        asyncio.run(save(b"second"))
        assert 98 <= client.ttl(key) <= 100
        assert client.get(key) == b"second"


def test_the_ttl_is_whole_seconds_rounded_up(redis_server: RedisServer) -> None:
    async def save() -> None:
        store = RedisClockStore(redis_server.url, idle_expiry_s=0.2)
        try:
            await store.save({"clock": b"state"})
        finally:
            await store.close()

    asyncio.run(save())
    with redis_server.client() as client:
        assert client.ttl(f"{KEY_PREFIX}clock") == 1


def test_a_clock_not_saved_again_is_forgotten_after_the_idle_expiry(redis_server: RedisServer) -> None:
    async def scenario() -> float:
        store = RedisClockStore(redis_server.url, idle_expiry_s=1)
        try:
            await store.save({"idle": b"state"})
            assert await store.load(["idle"]) == {"idle": b"state"}
            started = time.monotonic()
            while await store.load(["idle"]):
                assert time.monotonic() - started < 2.5, "the idle clock is still remembered"
                await asyncio.sleep(0.05)
            return time.monotonic() - started
        finally:
            await store.close()

    assert asyncio.run(scenario()) <= 2.5


def test_delete_forgets_a_clock_and_says_whether_there_was_one(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            await store.save({"a": b"1", "b": b"2"})
            assert await store.delete("a") is True
            assert await store.delete("a") is False
            assert await store.load(["a", "b"]) == {"b": b"2"}
        finally:
            await store.close()

    asyncio.run(scenario())


def test_count_is_the_clocks_held_and_nothing_else(redis_server: RedisServer) -> None:
    with redis_server.client() as client:
        client.set("someone-else:key", b"not a clock")

    async def scenario() -> None:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            assert await store.count() == 0
            await store.save({f"clock-{i}": b"state" for i in range(1500)})
            assert await store.count() == 1500
            await store.delete("clock-7")
            assert await store.count() == 1499
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_stopped_server_is_unavailable_quickly_then_at_once_during_the_backoff(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            await store.save({"clock": b"state"})  # the pool holds a connection to the server
            redis_server.stop()
            took, error = await elapsed(lambda: store.load(["clock"]))
            assert isinstance(error, StoreUnavailable) and "unavailable" in str(error), error
            assert took < CALL_DEADLINE_S
            for call in (
                lambda: store.load(["clock"]),
                lambda: store.save({"clock": b"new"}),
                lambda: store.delete("clock"),
                store.count,
            ):
                took, error = await elapsed(call)
                assert isinstance(error, StoreUnavailable) and "next try in" in str(error), error
                assert took < AT_ONCE_S
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_server_that_never_answers_costs_a_call_at_most_the_deadline(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        fresh = RedisClockStore(redis_server.url, idle_expiry_s=60)  # connects only once the server is stuck
        try:
            await store.save({"clock": b"state"})
            redis_server.pause()
            for stuck in (store, fresh):
                took, error = await elapsed(partial(stuck.load, ["clock"]))
                assert isinstance(error, StoreUnavailable), error
                assert took < CALL_DEADLINE_S + SLACK_S
                took, error = await elapsed(partial(stuck.save, {"clock": b"new"}))
                assert isinstance(error, StoreUnavailable) and took < AT_ONCE_S
        finally:
            redis_server.resume()
            await store.close()
            await fresh.close()

    asyncio.run(scenario())


def test_a_stuck_server_costs_one_call_its_deadline_once_however_long_it_stays_stuck(redis_server: RedisServer) -> None:
    # Requests never try a server believed down: one background probe does, once a backoff.
    async def scenario() -> list[float]:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            await store.save({"clock": b"state"})
            redis_server.pause()
            with pytest.raises(StoreUnavailable):
                await store.load(["clock"])
            waits = []
            stuck_until = time.monotonic() + 3 * BACKOFF_S
            while time.monotonic() < stuck_until:
                took, error = await elapsed(partial(store.load, ["clock"]))
                assert isinstance(error, StoreUnavailable), error
                waits.append(took)
                await asyncio.sleep(0.05)
            redis_server.resume()
            await asyncio.sleep(BACKOFF_S + PROBE_DEADLINE_S)
            assert await store.load(["clock"]) == {"clock": b"state"}
            return waits
        finally:
            redis_server.resume()
            await store.close()

    waits = asyncio.run(scenario())
    assert len(waits) > 20 and max(waits) < AT_ONCE_S, max(waits)


def seconds_to_come_back(
    redis_server: RedisServer, take_away: Callable[[], None], bring_back: Callable[[], None]
) -> float:
    """A store finds its server taken away (its load fails), then how long after the server is
    brought back the store answers with the clock it had saved."""

    async def scenario() -> float:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            await store.save({"clock": b"kept"})
            take_away()
            with pytest.raises(StoreUnavailable):
                await store.load(["clock"])
            bring_back()
            back_at = time.monotonic()
            while True:
                try:
                    assert await store.load(["clock"]) == {"clock": b"kept"}
                    return time.monotonic() - back_at
                except StoreUnavailable:
                    assert time.monotonic() - back_at < 2.0, "the store did not come back"
                    await asyncio.sleep(0.01)
        finally:
            redis_server.resume()
            await store.close()

    return asyncio.run(scenario())


def test_the_store_works_again_by_itself_once_the_server_is_back(redis_server: RedisServer) -> None:
    # Started again on the same port, with the same folder: the append-only file has the clock.
    assert seconds_to_come_back(redis_server, redis_server.stop, redis_server.start) <= BACKOFF_S + SLACK_S


def test_pooled_connections_survive_a_restart_between_calls(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            # Several connections in the pool, each closed by the restart without the store noticing.
            await asyncio.gather(*(store.save({f"clock-{i}": b"state"}) for i in range(8)))
            redis_server.stop()
            redis_server.start()
            loaded = await asyncio.gather(*(store.load([f"clock-{i}"]) for i in range(8)))
            assert loaded == [{f"clock-{i}": b"state"} for i in range(8)]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_calls_under_load_through_a_restart_are_bounded_and_recover(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        outcomes: list[tuple[float, float, bool]] = []  # (ended at, took, succeeded)
        running = True

        async def client(clock_id: str) -> None:
            while running:
                started = time.monotonic()
                try:
                    await store.save({clock_id: b"state"})
                    assert await store.load([clock_id]) == {clock_id: b"state"}
                    succeeded = True
                except StoreUnavailable:
                    succeeded = False
                ended = time.monotonic()
                outcomes.append((ended, ended - started, succeeded))
                await asyncio.sleep(0.005)

        try:
            clients = [asyncio.create_task(client(f"clock-{i}")) for i in range(16)]
            await asyncio.sleep(0.3)
            await asyncio.to_thread(redis_server.stop)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(redis_server.start)
            back_at = time.monotonic()
            await asyncio.sleep(BACKOFF_S + 0.5)
            running = False
            await asyncio.gather(*clients)
        finally:
            await store.close()

        assert any(not succeeded for _, _, succeeded in outcomes), "the restart went unnoticed"
        assert max(took for _, took, _ in outcomes) < 2 * CALL_DEADLINE_S + SLACK_S  # a save and a load
        recovered = [succeeded for ended, _, succeeded in outcomes if ended > back_at + BACKOFF_S + SLACK_S]
        assert recovered and all(recovered)

    asyncio.run(scenario())


def connections(redis_server: RedisServer) -> int:
    """The server's clients, less the one asking."""
    with redis_server.client() as client:
        return int(client.info("clients")["connected_clients"]) - 1


def test_connect_opens_the_pools_connections_and_calls_never_open_more(redis_server: RedisServer) -> None:
    async def scenario() -> tuple[int, int]:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            await store.connect()
            opened = connections(redis_server)
            # Four times the pool's calls at once: they wait for a free connection, within their deadline.
            saved = await asyncio.gather(*(store.save({f"clock-{i}": b"state"}) for i in range(4 * POOL_CONNECTIONS)))
            assert len(saved) == 4 * POOL_CONNECTIONS
            return opened, connections(redis_server)
        finally:
            await store.close()

    assert asyncio.run(scenario()) == (POOL_CONNECTIONS, POOL_CONNECTIONS)


def test_a_call_that_timed_out_on_a_server_still_there_costs_no_backoff(redis_server: RedisServer) -> None:
    # What a late event loop looks like to the store: a call that outlived its deadline (the server
    # paused, then resumed). The probe asks at once, with its own longer deadline, and finds the
    # server; a second's backoff would have answered every request of that second statelessly.
    assert seconds_to_come_back(redis_server, redis_server.pause, redis_server.resume) < BACKOFF_S / 2


def test_connect_to_a_server_that_is_down_only_logs_and_leaves_the_store_to_find_out(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.stop()

    async def scenario() -> tuple[float, BaseException | None, BaseException | None]:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            took, raised = await elapsed(store.connect)
            _, error = await elapsed(lambda: store.load(["clock"]))
            return took, raised, error
        finally:
            await store.close()

    took, raised, error = asyncio.run(scenario())
    assert raised is None and took < PROBE_DEADLINE_S + SLACK_S
    assert "not reached at start-up" in caplog.text
    assert isinstance(error, StoreUnavailable)  # the first request still finds out, bounded, as before


def test_connections_that_cannot_be_opened_leave_the_others_open(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A server that takes fewer clients than the pool holds: the opening of the pool is not given
    # up at the first refusal, and the store works on the connections it has.
    with redis_server.client() as client:
        client.config_set("maxclients", POOL_CONNECTIONS // 2)

    async def scenario() -> dict[str, bytes]:
        store = RedisClockStore(redis_server.url, idle_expiry_s=60)
        try:
            await store.connect()
            await store.save({"clock": b"state"})
            return await store.load(["clock"])
        finally:
            await store.close()

    try:
        assert asyncio.run(scenario()) == {"clock": b"state"}
        assert "not reached at start-up" not in caplog.text
        assert connections(redis_server) == 0  # (all closed again; the server counted them)
    finally:
        with redis_server.client() as client:
            client.config_set("maxclients", 10000)
