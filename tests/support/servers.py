"""Real HTTP servers for tests: an app in a uvicorn thread, or a service in its own process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import uvicorn
from fastapi import FastAPI

READY_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], object], timeout_s: float = 15.0, what: str = "condition", poll_s: float = 0.05
) -> float:
    """Poll ``condition`` until it holds; the seconds it took. Fails the test when it does not in time."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} not met within {timeout_s:g} s")
        time.sleep(poll_s)
    return time.monotonic() - started


def wait_until_ready(
    base_url: str,
    timeout_s: float = READY_TIMEOUT_S,
    process: subprocess.Popen[bytes] | None = None,
    path: str = "/health/ready",
) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode} before it was ready")
        try:
            response = httpx.get(f"{base_url}{path}", timeout=2.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as error:
            last = repr(error)
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} not ready after {timeout_s} s: {last}")


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, *, ready: bool = True) -> Iterator[str]:
    """Run ``app`` on a real uvicorn server in this process; yields its base URL once it is
    ready (or only live, with ``ready=False``)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, timeout_s=30.0, path="/health/ready" if ready else "/health/live")
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)


@contextlib.contextmanager
def serve_in_process(
    asgi_app: str,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    python: str = sys.executable,
    port: int | None = None,
) -> Iterator[str]:
    """Start ``python -m chronotick.serve <asgi_app>`` (as the images do) with ``python`` (by default
    this environment's); yields its base URL once it is ready."""
    port = port or free_port()
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [python, "-m", "chronotick.serve", asgi_app, "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, process=process)
        yield base_url
    finally:
        stop_process(process)
        if log_path:
            log.close()


def server_process(url: str) -> psutil.Process:
    """The process serving ``url`` (started by ``serve_in_process``, which names its ``--port``)."""
    port = url.rsplit(":", 1)[1]
    return next(
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and "--port" in p.info["cmdline"] and port in p.info["cmdline"]
    )


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM, and SIGKILL if it has not ended after ``timeout_s``; always reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def venv_python(environment: str) -> str:
    """The interpreter of one of the project's environments (scripts/setup-env makes them)."""
    venvs = Path(os.environ.get("CHRONOTICK_VENVS", Path(__file__).resolve().parents[2] / ".venvs"))
    python = venvs / environment / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing: run scripts/setup-env {environment}")
    return str(python)
