"""Real measurements of the local clock's offset: an NTP server (ntplib) or the local chronyd.

Both return the project's sign: ``offset_us`` = local clock minus reference, positive when the
local clock is ahead. NTP's own offset (theta) is reference minus local, so it is negated;
chrony's "System time" is positive when the system clock is slow of NTP time, so it is negated too.

``uncertainty_us`` is the measurement's own error bound, the quantity NTP calls the root distance:
half the round trip to the reference plus the dispersion accumulated on the way.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import ntplib

US_PER_S = 1e6
# Stratum 0 is "unspecified or invalid" (kiss-o'-death replies carry it); 16 is "unsynchronized".
_NTP_UNSYNCHRONIZED_STRATUM = 16
_NTP_LEAP_ALARM = 3


@dataclass(frozen=True)
class Measurement:
    """One real reading: ``time_s`` is the local (Unix) clock when it was taken."""

    time_s: float
    offset_us: float
    uncertainty_us: float
    stratum: int


class SourceFailure(Exception):
    """No measurement this time (timeout, refused, command failed); ``reason`` is a short label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class RejectedReply(SourceFailure):
    """A reply arrived but fails the sanity checks; it must never become a measurement."""


def check_ntp_reply(stats: ntplib.NTPStats, max_delay_s: float) -> None:
    """Raise RejectedReply for a reply no client should believe (RFC 5905's packet sanity tests)."""
    if stats.stratum == 0 or stats.stratum >= _NTP_UNSYNCHRONIZED_STRATUM:
        raise RejectedReply("stratum", f"stratum {stats.stratum} (0 is invalid or kiss-o'-death, 16 unsynchronized)")
    if stats.leap == _NTP_LEAP_ALARM:
        raise RejectedReply("leap_alarm", "leap indicator 3: the server's clock is not synchronized")
    if stats.tx_timestamp == 0:
        raise RejectedReply("zero_transmit", "transmit timestamp is zero")
    if not (math.isfinite(stats.delay) and 0.0 <= stats.delay <= max_delay_s):
        raise RejectedReply("delay", f"round-trip delay {stats.delay:.6f} s outside [0, {max_delay_s:g}] s")


class NtpSource:
    """Ask one NTP server (client mode, one packet) each time ``measure`` is called."""

    def __init__(self, server: str, port: int, *, version: int, timeout_s: float, max_delay_s: float) -> None:
        self.server, self.port = server, port
        self.name = f"ntp {server}:{port}"
        self._version, self._timeout_s, self._max_delay_s = version, timeout_s, max_delay_s
        self._client = ntplib.NTPClient()

    def _request(self) -> Measurement:
        try:
            stats = self._client.request(self.server, version=self._version, port=self.port, timeout=self._timeout_s)
        except ntplib.NTPException as error:  # ntplib raises it for no reply in time and for a short packet
            if "Invalid" in str(error):
                raise RejectedReply("malformed", str(error)) from error
            raise SourceFailure("timeout", str(error)) from error
        except OSError as error:  # name resolution, unreachable network, refused (ICMP)
            raise SourceFailure("unreachable", repr(error)) from error
        check_ntp_reply(stats, self._max_delay_s)
        return Measurement(
            time_s=stats.dest_time,
            offset_us=-stats.offset * US_PER_S,
            uncertainty_us=((stats.delay + stats.root_delay) / 2.0 + stats.root_dispersion) * US_PER_S,
            stratum=int(stats.stratum),
        )

    async def measure(self) -> Measurement:
        # ntplib blocks on its socket: a worker thread keeps the agent's event loop serving.
        return await asyncio.to_thread(self._request)


# `chronyc -c tracking` fields (chronyc(1), tracking): the ones used here.
_STRATUM, _SYSTEM_TIME, _ROOT_DELAY, _ROOT_DISPERSION, _LEAP = 2, 4, 10, 11, 13
_TRACKING_FIELDS = 14


def parse_tracking(line: str, measured_at_s: float) -> Measurement:
    """One `chronyc -c tracking` line as a measurement; RejectedReply if chronyd is unsynchronised."""
    fields = line.strip().split(",")
    if len(fields) != _TRACKING_FIELDS:
        raise SourceFailure("malformed", f"expected {_TRACKING_FIELDS} comma-separated fields, got {line[:200]!r}")
    try:
        stratum = int(fields[_STRATUM])
        system_time_s = float(fields[_SYSTEM_TIME])
        root_delay_s = float(fields[_ROOT_DELAY])
        root_dispersion_s = float(fields[_ROOT_DISPERSION])
    except ValueError as error:
        raise SourceFailure("malformed", f"{error}: {line[:200]!r}") from error
    if stratum == 0 or stratum >= _NTP_UNSYNCHRONIZED_STRATUM or fields[_LEAP] == "Not synchronised":
        raise RejectedReply("stratum", f"chronyd is not synchronised (stratum {stratum}, leap {fields[_LEAP]!r})")
    return Measurement(
        time_s=measured_at_s,
        offset_us=-system_time_s * US_PER_S,
        uncertainty_us=(root_delay_s / 2.0 + root_dispersion_s) * US_PER_S,
        stratum=stratum,
    )


class ChronySource:
    """Read the local chronyd's current estimate with ``chronyc -c tracking``."""

    def __init__(self, command: list[str], *, timeout_s: float) -> None:
        self._command = [*command, "-c", "tracking"]
        self._timeout_s = timeout_s
        self.name = "chrony (" + " ".join(command) + ")"

    async def measure(self) -> Measurement:
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as error:
            raise SourceFailure("unreachable", f"cannot run {self._command[0]}: {error}") from error
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), self._timeout_s)
        except TimeoutError as error:
            process.kill()
            await process.wait()
            raise SourceFailure("timeout", f"chronyc gave no answer in {self._timeout_s:g} s") from error
        measured_at_s = time.time()
        if process.returncode != 0:
            message = (stderr or stdout).decode(errors="replace").strip()[:200]
            raise SourceFailure("unreachable", f"chronyc exited with {process.returncode}: {message}")
        return parse_tracking(stdout.decode(errors="replace"), measured_at_s)
