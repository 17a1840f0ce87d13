"""An NTP server for tests that answers what each case needs, sane or not, over a real UDP socket."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import ntplib

Reply = Callable[[ntplib.NTPPacket], ntplib.NTPPacket]


def server_reply(
    *, ahead_s: float = 0.0, stratum: int = 2, leap: int = 0, hold_s: float = 0.0, zero_transmit: bool = False
) -> Reply:
    """A server whose clock is ``ahead_s`` ahead of ours, that holds the request ``hold_s`` between
    receiving and sending (a negative hold makes the round trip absurd)."""

    def reply(request: ntplib.NTPPacket) -> ntplib.NTPPacket:
        received = ntplib.system_to_ntp_time(time.time() + ahead_s)
        packet = ntplib.NTPPacket(version=4, mode=4)
        packet.leap, packet.stratum = leap, stratum
        packet.root_delay, packet.root_dispersion = 0.002, 0.001
        packet.orig_timestamp = request.tx_timestamp
        packet.recv_timestamp = received
        packet.tx_timestamp = 0 if zero_transmit else received + hold_s
        return packet

    return reply


@contextlib.contextmanager
def ntp_server() -> Iterator[tuple[int, list[Reply]]]:
    """A UDP NTP server on loopback answering each request with the reply function last pushed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    replies: list[Reply] = [server_reply()]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, address = sock.recvfrom(256)
            except TimeoutError:
                continue
            request = ntplib.NTPPacket()
            request.from_data(data)
            sock.sendto(replies[-1](request).to_data(), address)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], replies
    finally:
        stop.set()
        thread.join(timeout=2.0)
        sock.close()
