"""Live processes for the gateway tests: the real chronos and ttm services, a backend that misbehaves
and a Redis for the clock memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.redis_server import RedisServer, run_redis_server
from support.servers import serve_in_process, venv_python

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def chronos_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("chronos") / "service.log"
    with serve_in_process("chronotick_chronos.main:app", python=venv_python("chronos"), log_path=log) as url:
        yield url


@pytest.fixture(scope="session")
def ttm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("ttm") / "service.log"
    with serve_in_process("chronotick_ttm.main:app", python=venv_python("ttm"), log_path=log) as url:
        yield url


@pytest.fixture(scope="session")
def flaky_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("flaky") / "service.log"
    with serve_in_process("support.flaky_backend:app", env={"PYTHONPATH": str(TESTS_DIR)}, log_path=log) as url:
        yield url


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (tests stop, pause and restart it)."""
    with run_redis_server(tmp_path) as server:
        yield server


def set_mode(flaky_url: str, mode: str, *, seconds_per_series: float | None = None) -> None:
    change = (
        {"mode": mode} if seconds_per_series is None else {"mode": mode, "seconds_per_series": str(seconds_per_series)}
    )
    httpx.post(f"{flaky_url}/control", json=change).raise_for_status()
