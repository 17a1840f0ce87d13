"""A real redis-server for tests: on a free loopback port, every file in the test's folder.

It can be stopped and started again on the same port with the same folder (its append-only file
brings the keys back), or paused and resumed (a server that accepts connections and never
answers), so that tests can take it away under load. scripts/setup-system installs Debian's
redis-server; the package's own service on 6379 is not used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from support.servers import free_port, stop_process

START_TIMEOUT_S = 15.0


class RedisServer:
    """One redis-server process at a time on ``port``, its data and log in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A plain client for the test's own look at the server (TTL, keys)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2.0)

    def start(self) -> None:
        """Start it (again) and return once it answers PING."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        command = [
            _binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ]
        # Appended to across restarts: one log of the server's whole life in the test.
        with open(self.folder / "redis.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_answering()

    def stop(self) -> None:
        """SIGTERM: redis-server flushes its append-only file and exits."""
        if self.process is not None:
            self.resume()  # a paused process would never handle the SIGTERM
            stop_process(self.process)

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted (by the kernel) but never answered."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def _wait_until_answering(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        last: Exception | None = None
        with self.client() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server exited with {self.process.returncode} at start:\n{log}")
                try:
                    if client.ping():
                        return
                except redis.RedisError as error:
                    last = error
                time.sleep(0.02)
        raise TimeoutError(f"redis-server not answering on port {self.port} after {START_TIMEOUT_S} s: {last!r}")


def _binary() -> str:
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin:/usr/bin")
    if found is None:
        raise FileNotFoundError("redis-server is missing: run scripts/setup-system (installs Debian's redis-server)")
    return found


@contextlib.contextmanager
def run_redis_server(folder: Path) -> Iterator[RedisServer]:
    """A started redis-server; stopped (by its process) on exit."""
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
