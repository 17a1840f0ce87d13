"""The agent's measurement sources: NTP replies over a real UDP socket (support.ntp_server answers
what each case needs, sane or not) and `chronyc -c tracking` lines."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from chronotick.agent.sources import NtpSource, RejectedReply, SourceFailure, parse_tracking
from support.ntp_server import Reply, ntp_server, server_reply


@pytest.fixture
def ntp() -> Iterator[tuple[int, list[Reply]]]:
    with ntp_server() as server:
        yield server


def source(port: int) -> NtpSource:
    return NtpSource("127.0.0.1", port, version=4, timeout_s=0.5, max_delay_s=1.0)


def test_a_server_ahead_of_us_means_our_clock_is_behind(ntp: tuple[int, list[Reply]]) -> None:
    port, replies = ntp
    replies.append(server_reply(ahead_s=0.25))
    measurement = asyncio.run(source(port).measure())
    # local - reference = -250 ms, and the truth lies within the measurement's own uncertainty:
    # root distance, half the round trip and root delay plus root dispersion (2 ms here at least).
    assert measurement.uncertainty_us >= 1_999.0
    assert abs(measurement.offset_us - -250_000.0) <= measurement.uncertainty_us
    assert measurement.stratum == 2
    assert abs(measurement.time_s - time.time()) < 1.0


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (server_reply(stratum=0), "stratum"),
        (server_reply(stratum=16), "stratum"),
        (server_reply(leap=3), "leap_alarm"),
        (server_reply(zero_transmit=True), "zero_transmit"),
        (server_reply(hold_s=-5.0), "delay"),  # sent 5 s before it was received: a 5 s round trip
    ],
)
def test_insane_replies_are_rejected_with_their_reason(ntp: tuple[int, list[Reply]], reply: Reply, reason: str) -> None:
    port, replies = ntp
    replies.append(reply)
    with pytest.raises(RejectedReply) as caught:
        asyncio.run(source(port).measure())
    assert caught.value.reason == reason


def test_no_server_is_a_source_failure_not_a_crash() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never answering
        with pytest.raises(SourceFailure) as caught:
            asyncio.run(NtpSource("127.0.0.1", port, version=4, timeout_s=0.2, max_delay_s=1.0).measure())
    assert caught.value.reason == "timeout"


TRACKING = (
    "7F7F0101,,{stratum},1795423411.994233439,{system:.9f},0.000000000,0.000000000,0.000,0.000,0.000,"
    "0.001000000,0.000500000,0.0,{leap}"
)


def test_chrony_system_time_slow_means_our_clock_is_behind() -> None:
    # chronyc: a positive System time is "slow of NTP time".
    measurement = parse_tracking(TRACKING.format(stratum=3, system=0.000010, leap="Normal"), 1000.0)
    assert measurement.offset_us == pytest.approx(-10.0)
    assert measurement.uncertainty_us == pytest.approx(1000.0)  # root delay / 2 + root dispersion
    assert measurement.time_s == 1000.0 and measurement.stratum == 3


def test_an_unsynchronised_chronyd_is_rejected_and_garbage_is_malformed() -> None:
    with pytest.raises(RejectedReply):
        parse_tracking(TRACKING.format(stratum=0, system=0.0, leap="Not synchronised"), 0.0)
    with pytest.raises(SourceFailure) as caught:
        parse_tracking("506 Cannot talk to daemon", 0.0)
    assert caught.value.reason == "malformed"
