"""The gateway's clock memory at work: recall a request's clocks, score them, keep what they learn.

``memory`` holds the rules (pure); ``clockstore`` holds the bytes; this module joins them to a
request. A request's clocks are loaded once, before the members are asked (scoring their pending
forecasts on the request's samples decides whether the warm path applies); they are saved once,
after the answer is fused, in the background: the client never waits for the store. A store that
cannot be reached costs a request at most the store's own bound (``redis_store``), then the series are
answered statelessly and the answer says why.

A clock's next request waits for its previous request's save in this process, if that save is still
under way, before it loads the clock: an agent that asks again at once (or a replayed log) is not
answered from the state before its last answer. Across replicas only the front door can give that
order: it sends every request of one clock to one replica (``deploy/swarm/haproxy.cfg``, balance
``clock``); spread round-robin, 18 % of the updates of agents asking back to back were lost in the
stack's measurement (BENCHMARKS.md, "frontdoor_balance").

Two requests for one clock at the same moment (two agents misconfigured with one clock id, or
one agent's retry racing its original) each score and save; the later save wins and the other's
new pending forecast is lost. Nothing is scored twice, and an agent asks one request at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chronotick.contract import ClockReport, HorizonMemory, MemoryState, SeriesMemory
from chronotick_gateway import online_ar
from chronotick_gateway.backtest import SeriesPlan
from chronotick_gateway.clockstore import ClockStore, StoreUnavailable
from chronotick_gateway.fusion import MemberForecast
from chronotick_gateway.members import MemberResult
from chronotick_gateway.memory import (
    ANCHOR_HORIZONS_S,
    ANCHOR_TOLERANCE,
    REPORTED_INTERVALS,
    ClockState,
    Outcome,
    Samples,
    UnreadableState,
    anchor_weights,
    anchors_within,
    decode,
    encode,
    evidence,
    rule_in_use,
    score,
)
from chronotick_gateway.metrics import GatewayMetrics

logger = logging.getLogger("chronotick.gateway.memory")


@dataclass
class RecalledClock:
    """One series' clock, recalled and scored on the series' samples."""

    clock_id: str
    state: ClockState
    samples: Samples
    newly_scored: int
    scored: int  # evidence at this forecast's anchors
    warm_after: int

    @property
    def warm(self) -> bool:
        return self.scored >= self.warm_after

    @property
    def handover(self) -> float:
        """The share of the remembered weights: grows with the evidence, all of it once warm."""
        return min(1.0, self.scored / self.warm_after)


def warm_clocks(clocks: dict[int, RecalledClock], series: int) -> list[RecalledClock]:
    """The request's clocks in series order when each of its ``series`` names a warm clock: the warm
    path, on which members without weight rest and the models' forecasts are reused. Else none."""
    if len(clocks) != series or not all(clock.warm for clock in clocks.values()):
        return []
    return [clocks[index] for index in range(series)]


class DecodedStates:
    """The states this gateway last wrote, still decoded, for up to ``most`` clocks (the least
    recently written forgotten first). A clock's next request usually finds the store holding
    exactly those bytes, and then takes the state as it is instead of decoding it again (0.6 ms of
    a warm request's 3 ms in the memory, ``benchmarks/memory_cost.py``). Anything else in the
    store (another replica's write, an older state) is decoded as before.

    A state is taken out while a request works on it, so two requests of one clock at the same
    moment never share one: the second decodes its own copy, as it always did. A state equals its
    decoded bytes (the same scores, weights and bounds, and the same bytes again, request after
    request: ``tests/gateway/test_clocks.py``)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._held: OrderedDict[str, tuple[bytes, ClockState]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def take(self, clock_id: str, stored: bytes) -> ClockState | None:
        """The clock's state if it is the one ``stored`` holds, handed over (no longer held); None:
        decode ``stored``."""
        held = self._held.pop(clock_id, None)
        if held is None or held[0] != stored:
            return None
        return held[1]

    def hold(self, clock_id: str, stored: bytes, state: ClockState) -> None:
        """Keep ``state``, just written as ``stored``; it must not change any more."""
        if self.most == 0:
            return
        self._held[clock_id] = (stored, state)
        self._held.move_to_end(clock_id)
        while len(self._held) > self.most:
            self._held.popitem(last=False)

    def forget(self, clock_id: str) -> None:
        self._held.pop(clock_id, None)


class ClockMemory:
    """The clocks' states in ``store``, read and written for requests."""

    def __init__(self, store: ClockStore, metrics: GatewayMetrics, *, warm_after: int, decoded_held: int = 0) -> None:
        self.store = store
        self.metrics = metrics
        self.warm_after = warm_after
        self.decoded = DecodedStates(decoded_held)
        self._saves: set[asyncio.Task[None]] = set()  # every save under way (the loop keeps only weak references)
        # clock id -> the save under way that holds its newest state (bounded by the store's own
        # deadline), and that state
        self._saving: dict[str, tuple[asyncio.Task[None], bytes]] = {}

    async def recall(
        self, series: Sequence[tuple[str, Samples]], horizon: int, within_s: float | None = None
    ) -> list[RecalledClock] | str:
        """Each (clock id, samples)'s clock with its pending forecasts scored on the samples, in
        order; or why the store could not say within ``within_s`` (the series are then answered
        statelessly).

        ``within_s`` is the request's own time left: a store that has just gone away takes its
        whole bound (``redis_store.CALL_DEADLINE_S``) to fail, and a request that came in late on
        a busy event loop had less than that left (one at 32 clients answered 1.24 s after its
        arrival with a 1 s deadline). The store's call goes on when the request stops waiting, so
        its own verdict (down, or merely slow) is the same either way."""
        clock_ids = sorted({c for c, _ in series})
        loading = asyncio.ensure_future(self._load(clock_ids))
        timeout_s = None if within_s is None else max(0.0, within_s)
        done, _ = await asyncio.wait({loading}, timeout=timeout_s)
        if not done:
            loading.add_done_callback(_outcome_seen)
            self.metrics.memory_unavailable.inc()
            return (
                f"clock memory unavailable ({self.store.name}): no answer within the request's "
                f"{(timeout_s or 0.0) * 1000:.0f} ms left"
            )
        try:
            stored = loading.result()
        except StoreUnavailable as error:
            self.metrics.memory_unavailable.inc()
            return f"clock memory unavailable ({self.store.name}): {error}"
        states: dict[str, ClockState] = {}
        recalled = []
        for clock_id, samples in series:
            state = states.get(clock_id) or self._state_of(clock_id, stored.get(clock_id), samples.interval_s)
            states[clock_id] = state
            learn_motion(state, samples)
            outcomes = score(state, samples)
            self._count(state, outcomes)
            recalled.append(
                RecalledClock(clock_id, state, samples, len(outcomes), evidence(state, horizon), self.warm_after)
            )
        return recalled

    async def _load(self, clock_ids: Sequence[str]) -> dict[str, bytes]:
        """The clocks' newest states: those this process is saving from its own hands, the rest
        from the store. An agent asks again as soon as it has its answer, and under load its save
        is still on its way then: waiting for it to land, then reading it back, takes the request
        several turns of a busy event loop (at 32 clients, 5 answers of a drill lost their memory
        after waiting 374-505 ms for it, with Redis at 10-16 us a command)."""
        held = {clock_id: self._saving[clock_id][1] for clock_id in clock_ids if clock_id in self._saving}
        others = [clock_id for clock_id in clock_ids if clock_id not in held]
        return {**(await self.store.load(others) if others else {}), **held}

    def keep(self, clocks: Sequence[RecalledClock]) -> None:
        """Save the clocks' states in the background (the answer does not wait for the store)."""
        states = {clock.clock_id: encode(clock.state) for clock in clocks}
        if not states:
            return
        for clock in clocks:
            self.decoded.hold(clock.clock_id, states[clock.clock_id], clock.state)
        task = asyncio.create_task(self._save(states))
        self._saves.add(task)
        self._saving.update({clock_id: (task, state) for clock_id, state in states.items()})
        task.add_done_callback(self._forget_save)

    def _forget_save(self, task: asyncio.Task[None]) -> None:
        self._saves.discard(task)
        for clock_id in [c for c, (saving, _) in self._saving.items() if saving is task]:
            del self._saving[clock_id]

    async def _saved(self, clock_ids: Sequence[str]) -> None:
        """Return once the saves under way for these clocks have ended (saved, or given up)."""
        pending = {self._saving[c][0] for c in clock_ids if c in self._saving}
        if pending:
            await asyncio.wait(pending)

    async def _save(self, states: dict[str, bytes]) -> None:
        try:
            await self.store.save(states)
        except StoreUnavailable as error:
            self.metrics.memory_unavailable.inc()
            logger.warning("clock memory: %d clock states not saved: %s", len(states), error)

    async def observe(self, clock_id: str, times_s: np.ndarray, offsets_us: np.ndarray) -> RecalledClock | None:
        """Score a known clock's pending forecasts on these observations (no forecast); None: a clock
        not remembered (or unreadable), whose cadence is unknown."""
        found = await self._stored(clock_id)
        if found is None:
            return None
        state = found[0]
        samples = Samples(times_s, offsets_us, state.interval_s)
        outcomes = score(state, samples)
        self._count(state, outcomes)
        stored = encode(state)
        await self.store.save({clock_id: stored})
        self.decoded.hold(clock_id, stored, state)
        return RecalledClock(clock_id, state, samples, len(outcomes), 0, self.warm_after)

    async def report(self, clock_id: str) -> ClockReport | None:
        found = await self._stored(clock_id)
        return None if found is None else clock_report(clock_id, *found)

    async def _stored(self, clock_id: str) -> tuple[ClockState, int] | None:
        """A remembered clock's state and its stored size; None for one unknown or unreadable."""
        await self._saved([clock_id])
        stored = (await self.store.load([clock_id])).get(clock_id)
        if stored is None:
            return None
        try:
            return decode(stored), len(stored)
        except UnreadableState:
            return None

    async def forget(self, clock_id: str) -> bool:
        self.decoded.forget(clock_id)
        return await self.store.delete(clock_id)

    async def close(self) -> None:
        if self._saves:
            await asyncio.gather(*self._saves, return_exceptions=True)
        await self.store.close()

    def _state_of(self, clock_id: str, stored: bytes | None, interval_s: float) -> ClockState:
        """The stored state, or a new one: for a new clock, an unreadable state (logged) or a clock
        whose cadence changed (its horizons in seconds no longer line up with its steps)."""
        if stored is not None:
            try:
                taken = self.decoded.take(clock_id, stored)
                state = taken if taken is not None else decode(stored)
            except UnreadableState as error:
                logger.warning("clock memory: the state of %s is discarded: %s", clock_id, error)
            else:
                if abs(state.interval_s - interval_s) <= 1e-9 * interval_s:
                    return state
                logger.info(
                    "clock memory: %s changed cadence from %g s to %g s; starting it afresh",
                    clock_id,
                    state.interval_s,
                    interval_s,
                )
        return ClockState(interval_s=interval_s)

    def _count(self, state: ClockState, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        self.metrics.forecasts_scored.inc(len(outcomes))
        for outcome in outcomes:
            horizon = f"{outcome.horizon_s:g}"
            self.metrics.fused_abs_error.labels(horizon_s=horizon).observe(outcome.abs_error_us)
            for level, hit in (outcome.covered or {}).items():
                self.metrics.interval_outcomes.labels(
                    level=level, horizon_s=horizon, outcome="covered" if hit else "missed"
                ).inc()
        remembered = sum(anchor.remembered_scored for anchor in state.anchors)
        if any(outcome.covered for outcome in outcomes) and remembered:
            for level in REPORTED_INTERVALS:
                hits = sum(anchor.covered[level] for anchor in state.anchors)
                self.metrics.clock_coverage.labels(level=level).observe(hits / remembered)


def _outcome_seen(task: asyncio.Future[dict[str, bytes]]) -> None:
    """A load nobody waits for any more: its failure was counted by the store, not an error here."""
    if not task.cancelled():
        task.exception()


def learn_motion(state: ClockState, samples: Samples) -> None:
    """Teach the clock's autoregression the samples it has not learned from: those after the newest
    sample of an earlier request (observations posted alone are not on the clock's grid; the next
    request's context brings them)."""
    learned_until_s = state.learned_until_s
    first_new = (
        0
        if learned_until_s is None
        else int(np.searchsorted(samples.times_s, learned_until_s + 0.5 * samples.interval_s))
    )
    online_ar.learn(state.regressions, ANCHOR_HORIZONS_S, samples.offsets_us, samples.interval_s, first_new)
    state.learned_until_s = max(samples.last_s, learned_until_s if learned_until_s is not None else -np.inf)


def online_ar_member(plans: Sequence[SeriesPlan], clocks: dict[int, RecalledClock], horizon: int) -> MemberResult:
    """The clocks' own autoregressions as a member of a request whose series all name a warm clock;
    otherwise skipped, with the reason. Its forecasts are judged by the memory, not by backtests:
    it has none, so it answers the warm path only, and earns its weight there like any member."""
    started = time.perf_counter()
    forecasts = []
    for index in range(len(plans)):
        clock = clocks.get(index)
        if clock is None:
            answer: tuple[np.ndarray, np.ndarray] | str = "names no clock"
        elif not clock.warm:  # (a reason without counts: the same one for every cold request)
            answer = f"its clock is not warm yet ({clock.warm_after} scored forecasts at every horizon)"
        elif horizon * clock.state.interval_s > ANCHOR_HORIZONS_S[-1] + ANCHOR_TOLERANCE * clock.state.interval_s:
            # past its longest horizon it would hold its last change, with the weight it earned there
            answer = f"learns up to {ANCHOR_HORIZONS_S[-1]:g} s ahead; this forecast reaches more"
        else:
            answer = online_ar.forecast(
                clock.state.regressions,
                ANCHOR_HORIZONS_S,
                anchors_within(clock.state.interval_s, horizon),
                clock.samples.offsets_us,
                clock.state.interval_s,
                horizon,
            )
        if isinstance(answer, str):
            return MemberResult(online_ar.NAME, None, "skipped", f"series {index}: {answer}")
        forecasts.append(MemberForecast.without_backtests(*answer))
    return MemberResult(online_ar.NAME, None, "ok", None, time.perf_counter() - started, 0, forecasts)


def series_memory(clock_id: str | None, clock: RecalledClock | None) -> SeriesMemory:
    """What a series' clock memory did: ``clock`` is None for a series that named no clock
    (``clock_id`` None), or whose clock could not be recalled."""
    if clock is None:
        return SeriesMemory(clock_id=clock_id, state="stateless" if clock_id is None else "unavailable")
    state: MemoryState = "remembered" if clock.warm else "cold-start"
    return SeriesMemory(
        clock_id=clock.clock_id,
        state=state,
        scored=clock.scored,
        newly_scored=clock.newly_scored,
        handover=clock.handover,
    )


def clock_report(clock_id: str, state: ClockState, state_bytes: int) -> ClockReport:
    horizons = []
    for anchor in state.anchors:
        names = sorted(anchor.members)
        weights = anchor_weights(anchor, names)
        mae = {
            name: anchor.members[name].abs_error_sum / anchor.members[name].scored
            for name in names
            if anchor.members[name].scored
        }
        if anchor.scored:
            mae["fused"] = anchor.fused_abs_error_sum / anchor.scored
        coverage = (
            {level: hits / anchor.remembered_scored for level, hits in anchor.covered.items()}
            if anchor.remembered_scored
            else {}
        )
        horizons.append(
            HorizonMemory(
                horizon_s=anchor.horizon_s,
                scored=anchor.scored,
                rule=rule_in_use(anchor),
                weights={name: float(w) for name, w in zip(names, weights, strict=True)},
                mae_us=mae,
                coverage=coverage,
                error_scale_us=anchor.error_scale_us or 0.0,
            )
        )
    return ClockReport(
        clock_id=clock_id,
        interval_s=state.interval_s,
        last_sample_s=state.last_sample_s,
        requests=state.requests,
        pending_forecasts=len(state.pending),
        state_bytes=state_bytes,
        horizons=horizons,
    )
