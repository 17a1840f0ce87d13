"""The fleet as a Docker Swarm stack (deploy/swarm/stack.yml), deployed by ``scripts/stack up`` on a
one-node swarm: two gateway replicas behind the HAProxy front door, sharing every clock's memory in
one Redis, and two replicas of the TTM service. Real containers, real models, real load."""

from __future__ import annotations

import secrets
import subprocess
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from test_clock_memory import windows
from test_load import CLIENTS, DURATION_S

from support.fleet_calls import AgentStreams, metric_total
from support.load_drill import DrillResult, Event, run_drill, summarize, timeline
from support.servers import wait_for
from support.stack import SwarmStack, deployed_stack

REPLICAS = {"gateway": 2, "ttm": 2}


@pytest.fixture(scope="module")
def stack() -> Iterator[SwarmStack]:
    with deployed_stack("chronotick-st", secrets.token_urlsafe(16), REPLICAS) as deployed:
        yield deployed


def served_ttm_requests(stack: SwarmStack, container: str) -> float:
    return metric_total(stack.inside(container, "/metrics"), "chronotick_requests", status="200")


def test_each_clock_keeps_to_one_replica_and_both_replicas_share_every_clocks_memory(stack: SwarmStack) -> None:
    """The front door hashes each request's clock id (the stack's default balance): the 4 requests of
    each of 16 clocks reach one replica, and the clocks spread over both. Either replica reports every
    clock as the other left it: the memory is one, in Redis."""
    assert len(stack.containers("gateway")) == 2 and len(stack.containers("ttm")) == 2
    replicas_of: dict[str, set[str]] = {}
    scored: dict[str, list[int]] = {}
    asks = {f"st-shared-{i}": windows(f"st-shared-{i}", seed=30 + i, count=4, horizon=10) for i in range(16)}
    for k in range(4):
        for clock_id, bodies in asks.items():
            response = httpx.post(
                f"{stack.url}/predict", json={**bodies[k], "deadline_s": 5.0}, headers=stack.headers, timeout=30.0
            )
            assert response.status_code == 200, response.text
            replicas_of.setdefault(clock_id, set()).add(response.headers["x-chronotick-gateway"])
            scored.setdefault(clock_id, []).append(response.json()["memory"][0]["scored"])
    assert all(len(replicas) == 1 for replicas in replicas_of.values()), replicas_of
    assert len(set().union(*replicas_of.values())) == 2, replicas_of
    assert all(s == sorted(s) and s[-1] > 0 for s in scored.values()), scored
    # A request that names no clock is spread round-robin: both replicas answer for every clock alike.
    reports: dict[str, list[dict[str, object]]] = {}
    for _ in range(4):
        for clock_id in asks:
            response = httpx.get(f"{stack.url}/clocks/{clock_id}", headers=stack.headers, timeout=10.0)
            assert response.status_code == 200, response.text
            reports.setdefault(response.headers["x-chronotick-gateway"], []).append(response.json())
    assert len(reports) == 2, list(reports)
    by_clock = {(r["clock_id"], r["requests"]) for answered in reports.values() for r in answered}
    assert by_clock == {(clock_id, 4) for clock_id in asks}, by_clock


def answers_of(result: DrillResult, client: int, since_s: float) -> list[tuple[object, ...]]:
    return [
        (round(a.sent_at, 1), round(a.elapsed_s, 2), a.memory, a.served_by)
        for a in result.answers
        if a.client == client and a.sent_at >= since_s
    ][:20]


def test_a_gateway_replica_killed_under_load_fails_no_request_and_the_memory_goes_on(stack: SwarmStack) -> None:
    """32 agents, each its own clock, at the default deadline; one gateway replica is killed after
    20 s. The front door sends the requests it was holding to the other one, and the dead one's
    clocks with them; swarm starts a new one, which takes its share again; no clock's memory is
    reset."""
    victim = stack.containers("gateway")[0]
    ttm_before = {c: served_ttm_requests(stack, c) for c in stack.containers("ttm")}
    bodies = AgentStreams("st-load-", CLIENTS, seed=200)
    scored_before_kill: dict[str, int] = {}
    asks = [f"st-load-{i}" for i in range(CLIENTS)]  # client i asks for its own clock

    def kill_a_gateway() -> None:
        for clock_id in asks:
            scored_before_kill[clock_id] = sum(h["scored"] for h in stack.clock(clock_id)["horizons"])
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)

    events = [
        Event(20.0, "kill a gateway", kill_a_gateway),
        Event(
            20.1,
            "two gateways again",
            lambda: wait_for(lambda: stack.healthy("gateway", 2), 120.0, "a new replica", 0.5),
        ),
    ]
    result = run_drill(
        stack.url,
        bodies,
        clients=CLIENTS,
        duration_s=DURATION_S,
        events=events,
        headers=stack.headers,
        after_events_s=15.0,
    )
    described = f"{summarize(result.answers)}; events at {result.events}"
    failed = [a for a in result.answers if a.status != 200]
    assert not failed, f"{len(failed)} requests failed, first: {failed[:3]}; {described}"
    # The memory went on through the kill: no clock's evidence went back, the moved clocks' included.
    scored_after = {clock_id: sum(h["scored"] for h in stack.clock(clock_id)["horizons"]) for clock_id in asks}
    stuck = [i for i, clock_id in enumerate(asks) if scored_after[clock_id] <= scored_before_kill[clock_id]]
    killed_at = result.began["kill a gateway"]
    assert not stuck, "; ".join(
        f"{asks[i]} scored {scored_before_kill[asks[i]]} before the kill and {scored_after[asks[i]]} after; "
        f"its answers since (sent, took, memory, replica): {answers_of(result, i, killed_at)}"
        for i in stuck
    )
    after = result.between(result.events["two gateways again"] + 5.0, result.duration_s)
    assert after and len({a.served_by for a in after}) == 2, summarize(after)  # the new replica serves
    # Answered from the memory. A replica whose Redis call the loaded host's event loop makes later than
    # the store's bound (0.5 s) answers for a second without it (stateless, saying why): seen in about one
    # run in six here, while the new replica starts on the same two cores. That costs answers their
    # memory, never the memory itself (checked above).
    forgetful = [a for a in after if not a.from_memory]
    assert len(forgetful) <= 0.05 * len(after), (
        f"{len(forgetful)} of {len(after)} answers without their clock's memory: {forgetful[:3]}; "
        f"by replica {Counter(a.served_by for a in forgetful)}; at {timeline(forgetful)}; {described}"
    )
    assert all("clock memory unavailable" in " ".join(a.reasons) for a in forgetful), forgetful[:3]
    # The gateways spread their calls over both TTM replicas.
    ttm_after = {c: served_ttm_requests(stack, c) for c in stack.containers("ttm")}
    assert all(ttm_after[c] > ttm_before.get(c, 0.0) for c in ttm_after), (ttm_before, ttm_after)
