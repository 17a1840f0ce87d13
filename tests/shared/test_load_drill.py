"""The drill's own accounting: the time a client waits for its own turn on the cores is not counted
against the fleet, and nothing else is forgiven."""

from __future__ import annotations

from support.load_drill import Answer, DrillResult


def answer(sent_at: float, elapsed_s: float, gateway_s: float) -> Answer:
    return Answer(client=0, sent_at=sent_at, elapsed_s=elapsed_s, status=200, gateway_s=gateway_s)


def test_a_client_stall_during_an_answers_flight_is_not_the_fleets_time() -> None:
    # The CI case: sent at 57.55 s, the gateway took 0.90 s, the client read it 1.64 s after
    # sending because its threads could not run for 705 ms from 58.51 s (the probe slept 10 ms
    # from 58.5 s): 0.68 s of that fell before the client read its answer.
    stalled = answer(57.55, 1.64, 0.90)
    result = DrillResult([stalled], client_stalls=[(58.5, 0.705)])
    assert abs(result.own_stall_s(stalled) - 0.68) < 1e-9
    assert result.late(1.5, 1.15) == []


def test_a_stall_outside_the_flight_forgives_nothing_and_the_gateways_own_time_still_binds() -> None:
    slow_outside = answer(10.0, 1.64, 0.90)
    slow_inside = answer(20.0, 1.10, 1.30)
    partly = answer(30.0, 2.0, 0.9)  # a 0.3 s stall of which 0.2 s fell in its flight: 1.8 s is still late
    result = DrillResult([slow_outside, slow_inside, partly], client_stalls=[(5.0, 3.0), (31.79, 0.3)])
    assert result.own_stall_s(slow_outside) == 0.0
    assert abs(result.own_stall_s(partly) - 0.2) < 1e-9
    assert result.late(1.5, 1.15) == [slow_outside, slow_inside, partly]
    assert result.late(1.5, 1.15, among=[slow_inside]) == [slow_inside]
