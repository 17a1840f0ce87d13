"""The fleet at realistic load, as a user drives it: 32 clients for a minute, the default 1 s deadline,
512-sample windows 60 steps ahead, while containers are killed, started, paused and restarted.
Each test also looks at the fleet after the load is gone: it must trust its backends again.
"""

from __future__ import annotations

import json

import httpx

from chronotick.contract import FleetModels
from support.containers import ComposeFleet
from support.fleet_calls import clock_body
from support.load_drill import DrillResult, Event, run_drill, summarize, timeline

CLIENTS = 32
DURATION_S = 60.0
DEADLINE_S = 1.0  # the gateway's default: the requests name none
# The gateway's own promise, from a request's arrival to its answer: the deadline, give or take a
# late wake-up of its busy event loop (up to 71 ms measured in the benchmark of the same drill).
GATEWAY_MARGIN_S = 0.15
# What the client sees on top: loopback HTTP, docker's port, and 32 client threads at a low priority
# on the same 2 cores as the fleet, scheduled late after their answer has arrived (stalls of their
# threads over 50 ms are measured and not counted: DrillResult.late).
MARGIN_S = 0.5
REJOIN_S = 10.0


def bodies() -> list[bytes]:
    """Real-sized windows: 512 samples, 60 steps ahead, no deadline (the gateway's default)."""
    result = []
    for seed in range(64):
        body = clock_body(seed, length=512, horizon=60)
        del body["deadline_s"]
        result.append(json.dumps(body).encode())
    return result


def fleet_view_matches_the_services(fleet: ComposeFleet) -> bool:
    """The gateway counts as ready exactly the services that say so themselves, and every one is
    ready with its breaker letting calls through (closed, or half-open: the next call closes it)."""
    models = FleetModels.model_validate(httpx.get(f"{fleet.url}/models", timeout=5.0).json())
    return all(s.ready == fleet.answers_ready(s.name) and s.ready and s.breaker != "open" for s in models.services)


def describe(result: DrillResult) -> str:
    worst = sorted(result.client_stalls, key=lambda s: -s[1])[:5]
    stalls = ", ".join(f"{at:.1f}: {late * 1000.0:.0f} ms" for at, late in sorted(worst))
    return f"{summarize(result.answers)}; events at {result.events}; the clients' own worst stalls: {stalls or 'none'}"


def test_a_backend_killed_and_started_and_one_paused_under_load_fail_no_request(fleet: ComposeFleet) -> None:
    events = [
        Event(12.0, "kill chronos", lambda: fleet.docker("kill", "chronos")),
        Event(24.0, "start chronos", lambda: fleet.docker("start", "chronos")),
        Event(30.0, "pause timemoe", lambda: fleet.docker("pause", "timemoe")),
        Event(38.0, "unpause timemoe", lambda: fleet.docker("unpause", "timemoe")),
        # Loading its models under this load takes chronos a while: the drill goes on until it is
        # ready, and 15 s more.
        Event(38.1, "chronos ready", lambda: fleet.wait_ready("chronos", 180.0)),
    ]
    try:
        result = run_drill(
            fleet.url,
            bodies(),
            clients=CLIENTS,
            duration_s=DURATION_S,
            events=events,
            headers=fleet.headers,
            after_events_s=REJOIN_S + 5.0,
        )
    finally:
        fleet.compose("start", "chronos")
        if _paused(fleet, "timemoe"):
            fleet.compose("unpause", "timemoe")
    ready_at = result.events["chronos ready"]
    failed = [a for a in result.answers if a.status != 200]
    assert not failed, f"{len(failed)} requests failed, first: {failed[:3]}; {describe(result)}"
    late = result.late(DEADLINE_S + MARGIN_S, DEADLINE_S + GATEWAY_MARGIN_S)
    assert not late, f"{len(late)} answers after the deadline: {late[:3]}; at {timeline(late)}; {describe(result)}"
    # Once chronos answers ready inside its container, the gateway fuses it again within 10 s.
    fused_at = result.first_answered_by("chronos", after_s=ready_at)
    assert fused_at is not None and fused_at - ready_at <= REJOIN_S, (ready_at, fused_at, describe(result))
    # While it was dead, no answer claimed it; the answers still came from the others.
    dead = result.between(result.events["kill chronos"] + 0.5, result.events["start chronos"])
    assert dead and not any("chronos" in a.answered for a in dead)
    assert all(a.degraded for a in dead)
    # After the load: the gateway trusts every backend again, as they say of themselves.
    fleet.wait_until(lambda: fleet_view_matches_the_services(fleet), REJOIN_S, "the gateway's view after the load")
    answer = fleet.predict({"series": json.loads(bodies()[0])["series"], "horizon": 60, "deadline_s": 5.0})
    assert answer.status_code == 200 and not answer.json()["degraded"], answer.json()["reasons"]


def test_the_gateway_paused_and_restarted_under_load_comes_back_whole(fleet: ComposeFleet) -> None:
    events = [
        Event(12.0, "pause gateway", lambda: fleet.docker("pause", "gateway")),
        Event(17.0, "unpause gateway", lambda: fleet.docker("unpause", "gateway")),
        Event(
            30.0, "restart gateway", lambda: fleet.docker("restart", "gateway", options=("--time", "5"), timeout_s=60.0)
        ),
        Event(
            30.1,
            "gateway ready",
            lambda: fleet.wait_until(
                lambda: httpx.get(f"{fleet.url}/health/ready", timeout=1.0).status_code == 200, 60.0, "gateway back"
            ),
        ),
    ]
    try:
        result = run_drill(
            fleet.url, bodies(), clients=CLIENTS, duration_s=DURATION_S, events=events, headers=fleet.headers
        )
    finally:
        if _paused(fleet, "gateway"):
            fleet.compose("unpause", "gateway")
    restarted, back = result.began["restart gateway"], result.events["gateway ready"]
    # The only failures: connections refused or reset while the gateway process was restarting
    # (requests in flight when it stopped, or sent before it listened again). Never an HTTP error.
    failed = [a for a in result.answers if a.status != 200]
    assert all(a.status == 0 for a in failed), [(a.status, a.sent_at, a.error) for a in failed if a.status][:5]
    assert all(restarted - 2.0 <= a.sent_at <= back for a in failed), [(a.sent_at, a.error) for a in failed][:5]
    # Requests in flight through the pause: sent before it held, still unanswered when it ended.
    frozen = [
        a
        for a in result.answers
        if a.sent_at < result.events["pause gateway"] and a.sent_at + a.elapsed_s > result.began["unpause gateway"]
    ]
    unpaused = result.events["unpause gateway"]
    assert frozen and all(a.status == 200 for a in frozen)  # held by the pause, answered after it
    # Afterwards every answer was on time.
    settled = [a for a in result.answers if unpaused + 2.0 <= a.sent_at < restarted - 2.0 or a.sent_at >= back + 2.0]
    assert settled and all(a.status == 200 for a in settled)
    late = result.late(DEADLINE_S + MARGIN_S, DEADLINE_S + GATEWAY_MARGIN_S, among=settled)
    assert not late, (
        f"{len(late)} late answers after the gateway recovered: {late[:3]}; at {timeline(late)}; {describe(result)}"
    )
    fleet.wait_until(lambda: fleet_view_matches_the_services(fleet), REJOIN_S, "the gateway's view after the load")


def _paused(fleet: ComposeFleet, service: str) -> bool:
    return fleet.inspect(service)["State"]["Paused"] is True
