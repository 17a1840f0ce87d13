"""The in-process clock store: bounded by clock count, forgetting idle clocks, and kept across a
restart in its file (a file it cannot read costs the memory, never the start)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from chronotick_gateway.clockstore import InProcessClockStore, open_clock_store
from chronotick_gateway.redis_store import RedisClockStore


def test_states_round_trip_and_only_known_clocks_are_returned() -> None:
    async def scenario() -> None:
        store = InProcessClockStore(max_clocks=10, idle_expiry_s=60)
        await store.save({"a": b"\x00\xff", "b": b"state-b"})
        assert await store.load(["a", "unknown", "b"]) == {"a": b"\x00\xff", "b": b"state-b"}
        assert await store.count() == 2

    asyncio.run(scenario())


def test_the_clock_saved_least_recently_goes_first_beyond_max_clocks() -> None:
    async def scenario() -> None:
        store = InProcessClockStore(max_clocks=2, idle_expiry_s=60)
        await store.save({"a": b"1"})
        await store.save({"b": b"2"})
        await store.save({"a": b"1 again"})  # a is now the most recently heard from
        await store.save({"c": b"3"})
        assert await store.load(["a", "b", "c"]) == {"a": b"1 again", "c": b"3"}
        assert await store.count() == 2

    asyncio.run(scenario())


def test_a_clock_not_saved_again_is_forgotten_after_the_idle_expiry() -> None:
    async def scenario() -> None:
        store = InProcessClockStore(max_clocks=10, idle_expiry_s=0.1)
        await store.save({"idle": b"state"})
        assert await store.load(["idle"]) == {"idle": b"state"}
        await asyncio.sleep(0.15)
        assert await store.load(["idle"]) == {}
        assert await store.count() == 0

    asyncio.run(scenario())


def test_delete_forgets_a_clock_and_says_whether_there_was_one() -> None:
    async def scenario() -> None:
        store = InProcessClockStore(max_clocks=10, idle_expiry_s=60)
        await store.save({"a": b"1"})
        assert await store.delete("a") is True
        assert await store.delete("a") is False
        assert await store.load(["a"]) == {}

    asyncio.run(scenario())


def test_close_saves_the_clocks_and_a_new_store_restores_the_unexpired_ones(tmp_path: Path) -> None:
    path = tmp_path / "memory" / "clocks.json"  # its folder does not exist yet

    async def scenario() -> dict[str, bytes]:
        store = InProcessClockStore(max_clocks=10, idle_expiry_s=1.0, path=path)
        await store.save({"old": b"saved first"})
        await asyncio.sleep(0.6)
        await store.save({"new": b"\x00saved last\xff"})
        await store.close()
        await asyncio.sleep(0.6)  # "old" is now past its expiry, "new" is not
        restored = InProcessClockStore(max_clocks=10, idle_expiry_s=1.0, path=path)
        return await restored.load(["old", "new"])

    assert asyncio.run(scenario()) == {"new": b"\x00saved last\xff"}
    assert [p.name for p in path.parent.iterdir()] == ["clocks.json"]  # no partial file left behind


def test_a_restored_file_keeps_only_the_clocks_heard_from_last_within_max_clocks(tmp_path: Path) -> None:
    path = tmp_path / "clocks.json"

    async def scenario() -> dict[str, bytes]:
        store = InProcessClockStore(max_clocks=10, idle_expiry_s=60, path=path)
        for clock_id in ("first", "second", "third"):
            await store.save({clock_id: clock_id.encode()})
            await asyncio.sleep(0.01)  # distinct expiry times
        await store.close()
        smaller = InProcessClockStore(max_clocks=2, idle_expiry_s=60, path=path)
        return await smaller.load(["first", "second", "third"])

    assert asyncio.run(scenario()) == {"second": b"second", "third": b"third"}


@pytest.mark.parametrize(
    "content",
    [
        "{ not json",
        json.dumps({"format": "chronotick-clock-store/0", "clocks": {"a": ["AA==", 4e9]}}),
        json.dumps({"format": "chronotick-clock-store/1", "clocks": {"a": "not a pair"}}),
        json.dumps(["a list", "not a document"]),
    ],
    ids=["not-json", "other-format", "malformed-clocks", "not-an-object"],
)
def test_an_unreadable_file_is_discarded_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    path = tmp_path / "clocks.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="chronotick.gateway.memory"):
        store = InProcessClockStore(max_clocks=10, idle_expiry_s=60, path=path)
    assert asyncio.run(store.count()) == 0
    assert any("unreadable" in record.getMessage() and str(path) in record.getMessage() for record in caplog.records), (
        caplog.text
    )


def test_a_missing_file_starts_an_empty_store_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="chronotick.gateway.memory"):
        store = InProcessClockStore(max_clocks=10, idle_expiry_s=60, path=tmp_path / "absent.json")
    assert asyncio.run(store.count()) == 0
    assert caplog.records == []


def test_open_clock_store_picks_redis_for_a_url_and_the_process_otherwise(tmp_path: Path) -> None:
    async def scenario() -> None:
        # Constructing a Redis store connects nothing: no server is needed to choose it.
        redis_store = open_clock_store(url="redis://127.0.0.1:1/0", max_clocks=10, idle_expiry_s=60, state_file=None)
        assert isinstance(redis_store, RedisClockStore) and redis_store.name == "redis"
        await redis_store.close()
        local = open_clock_store(url=None, max_clocks=10, idle_expiry_s=60, state_file=str(tmp_path / "c.json"))
        assert isinstance(local, InProcessClockStore) and local.path == tmp_path / "c.json"

    asyncio.run(scenario())
