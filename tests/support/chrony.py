"""A real chronyd for tests: an NTP server on a loopback port, its local clock as the reference.

It never touches the system clock (``-x``), keeps every file in the test's folder, and answers
``chronyc`` only through its own Unix socket there (``cmdport 0``: no UDP command port).
scripts/setup-system installs Debian's chrony.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ntplib

from support.servers import stop_process

START_TIMEOUT_S = 15.0


@dataclass
class Chronyd:
    port: int
    socket_path: Path
    process: subprocess.Popen[bytes]

    @property
    def chronyc(self) -> list[str]:
        """The chronyc command that talks to this chronyd."""
        return [_binary("chronyc"), "-h", str(self.socket_path)]

    def stop(self) -> None:
        stop_process(self.process)


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise FileNotFoundError(f"{name} is missing: run scripts/setup-system (installs Debian's chrony)")
    return found


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def run_chronyd(folder: Path) -> Iterator[Chronyd]:
    """chronyd serving NTP on 127.0.0.1 at a free port; stopped (by its process) on exit."""
    port = free_udp_port()
    socket_path = folder / "chronyd.sock"
    config = folder / "chrony.conf"
    config.write_text(
        "\n".join(
            [
                "local stratum 8",  # serve time from the local clock, no upstream source
                "allow 127.0.0.1",
                "bindaddress 127.0.0.1",
                f"port {port}",
                "cmdport 0",
                f"bindcmdaddress {socket_path}",
                f"pidfile {folder / 'chronyd.pid'}",
                f"driftfile {folder / 'chronyd.drift'}",
            ]
        )
        + "\n"
    )
    os.chmod(folder, 0o700)  # chronyd refuses a command socket in a folder others can write
    # -d: stay in the foreground (so the process is ours to stop); -x: never adjust the system clock.
    command = [_binary("chronyd"), "-d", "-x", "-f", str(config)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "root"]  # the files are root's: no privilege drop to _chrony
    log = open(folder / "chronyd.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = Chronyd(port, socket_path, process)
    try:
        _wait_until_serving(server)
        yield server
    finally:
        server.stop()
        log.close()


def _wait_until_serving(server: Chronyd) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"chronyd exited with {server.process.returncode} at start")
        try:
            ntplib.NTPClient().request("127.0.0.1", version=4, port=server.port, timeout=0.2)
            if server.socket_path.exists():
                return
        except (ntplib.NTPException, OSError) as error:
            last = error
        time.sleep(0.1)
    raise TimeoutError(f"chronyd not serving on port {server.port} after {START_TIMEOUT_S} s: {last!r}")
