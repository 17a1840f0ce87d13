"""Where the gateway keeps each clock's memory: in process (the default) or in Redis.

A store holds opaque bytes per clock id (``memory.encode``/``decode`` give them meaning), so both
stores behave the same and a state that another version wrote is judged in one place. Every state
carries an idle expiry: a clock not heard from for ``idle_expiry_s`` is forgotten.

The in-process store also bounds the number of clocks (the least recently used goes first) and
can be saved to a file on shutdown and restored on start. Redis bounds its memory itself
(``maxmemory`` with an LRU policy, set where the server is configured) and persists with its
append-only file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from base64 import b64decode, b64encode
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

logger = logging.getLogger("chronotick.gateway.memory")

# The format of the in-process store's file; another one is discarded with a log line.
_FILE_FORMAT = "chronotick-clock-store/1"


class StoreUnavailable(Exception):
    """The store could not be reached: the gateway answers statelessly meanwhile."""


class ClockStore(Protocol):
    name: str

    async def connect(self) -> None:
        """Make ready for the first request, before the gateway says it is ready (never raises)."""
        ...

    async def load(self, clock_ids: Sequence[str]) -> dict[str, bytes]:
        """The stored state of each of ``clock_ids`` that has one (absent: a new or expired clock)."""
        ...

    async def save(self, states: Mapping[str, bytes]) -> None:
        """Store each state, resetting its clock's idle expiry."""
        ...

    async def delete(self, clock_id: str) -> bool:
        """Forget a clock; False when there was nothing to forget."""
        ...

    async def count(self) -> int:
        """Clocks held."""
        ...

    async def close(self) -> None: ...


class InProcessClockStore:
    """Clock states in this process: at most ``max_clocks``, each forgotten after ``idle_expiry_s``
    without a request; with a ``path``, written there by ``close`` and read back at construction."""

    name = "in-process"

    def __init__(self, *, max_clocks: int, idle_expiry_s: float, path: Path | None = None) -> None:
        self.max_clocks = max_clocks
        self.idle_expiry_s = idle_expiry_s
        self.path = path
        # clock id -> (state, wall time it expires at): wall time, so a restored file keeps its meaning.
        self._states: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        if path is not None:
            self._restore(path)

    async def load(self, clock_ids: Sequence[str]) -> dict[str, bytes]:
        now = time.time()
        found = {}
        for clock_id in clock_ids:
            entry = self._states.get(clock_id)
            if entry is None:
                continue
            if entry[1] <= now:
                del self._states[clock_id]
                continue
            found[clock_id] = entry[0]
        return found

    async def save(self, states: Mapping[str, bytes]) -> None:
        expires_at = time.time() + self.idle_expiry_s
        for clock_id, state in states.items():
            self._states[clock_id] = (state, expires_at)
            self._states.move_to_end(clock_id)
        while len(self._states) > self.max_clocks:
            self._states.popitem(last=False)

    async def connect(self) -> None:
        """Nothing to reach."""

    async def delete(self, clock_id: str) -> bool:
        return self._states.pop(clock_id, None) is not None

    async def count(self) -> int:
        self._expire(time.time())
        return len(self._states)

    async def close(self) -> None:
        if self.path is not None:
            self._write(self.path)

    def _expire(self, now: float) -> None:
        for clock_id in [c for c, (_, expires_at) in self._states.items() if expires_at <= now]:
            del self._states[clock_id]

    def _write(self, path: Path) -> None:
        self._expire(time.time())
        document = {
            "format": _FILE_FORMAT,
            "clocks": {c: [b64encode(s).decode("ascii"), e] for c, (s, e) in self._states.items()},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(document))
        os.replace(partial, path)  # a crash mid-write leaves the previous file whole
        logger.info("clock memory: %d clocks saved to %s", len(self._states), path)

    def _restore(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            document = json.loads(path.read_text())
            if document.get("format") != _FILE_FORMAT:
                raise ValueError(f"format {document.get('format')!r}, not {_FILE_FORMAT!r}")
            now = time.time()
            entries = sorted(
                ((c, b64decode(s), float(e)) for c, (s, e) in document["clocks"].items()), key=lambda entry: entry[2]
            )
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            logger.warning("clock memory: %s is unreadable (%s); starting with no clock remembered", path, error)
            return
        for clock_id, state, expires_at in entries[-self.max_clocks :]:
            if expires_at > now:
                self._states[clock_id] = (state, expires_at)
        logger.info("clock memory: %d clocks restored from %s", len(self._states), path)


def open_clock_store(*, url: str | None, max_clocks: int, idle_expiry_s: float, state_file: str | None) -> ClockStore:
    """Redis when a URL is given, else the in-process store (restored from ``state_file``)."""
    if url is not None:
        from chronotick_gateway.redis_store import RedisClockStore  # only gateways with a Redis need the client

        return RedisClockStore(url, idle_expiry_s=idle_expiry_s)
    return InProcessClockStore(
        max_clocks=max_clocks, idle_expiry_s=idle_expiry_s, path=Path(state_file) if state_file else None
    )
