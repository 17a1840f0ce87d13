"""The fleet configuration file: validation that names the key, the environment over the file, the
default backends by horizon, and hot reload of a live gateway process (file change and SIGHUP)
under load, with an invalid file refused and the old configuration kept."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from conftest import set_mode

from chronotick.synthetic import generate_clock
from chronotick_gateway.breaker import BreakerState
from chronotick_gateway.config import ConfigError, FleetConfig, load_config
from chronotick_gateway.fleet import Fleet
from chronotick_gateway.metrics import GatewayMetrics
from chronotick_gateway.settings import CONFIG_FILE_VARIABLE, GatewaySettings
from support.servers import free_port, serve_in_process, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "gateway" / "chronotick.example.yaml"


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "chronotick.yaml"
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(path))
    return path


def version_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_the_example_file_is_valid_and_its_version_is_its_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(EXAMPLE))
    config = load_config()
    assert config.version == version_of(EXAMPLE)
    assert set(config.settings.services) == {"chronos", "ttm", "toto", "timemoe"}
    assert config.settings.short_term is not None and config.settings.long_term is not None


def test_without_a_file_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_FILE_VARIABLE, raising=False)
    monkeypatch.setenv("CHRONOTICK_GATEWAY_WEIGHT_FLOOR", "0.1")
    config = load_config()
    assert config.version == "env"
    assert config.settings.weight_floor == 0.1 and config.settings.short_term is None


def test_an_invalid_file_is_refused_naming_each_key_and_the_reason(config_path: Path) -> None:
    config_path.write_text(
        "weight_floor: 0.7\nweigth_floor: 0.1\nservices: {chronos: not-a-url}\n"
        "short_term: {max_horizon_s: 5, backends: []}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_config()
    message = str(refused.value)
    assert str(config_path) in message
    assert "weight_floor: Input should be less than 0.5" in message
    assert "weigth_floor: Extra inputs are not permitted" in message
    assert "services.chronos: Input should be a valid URL" in message
    assert "short_term.backends: List should have at least 1 item" in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("services: [chronos\n", "not valid YAML"),
        ("- weight_floor: 0.1\n", "the top level must be a mapping"),
        (
            "short_term: {max_horizon_s: 30, backends: [kalman]}\nlong_term: {min_horizon_s: 30, backends: [kalman]}\n",
            "long_term.min_horizon_s (30.0) must be above short_term.max_horizon_s (30.0)",
        ),
    ],
)
def test_malformed_files_are_refused_with_the_reason(config_path: Path, content: str, reason: str) -> None:
    config_path.write_text(content)
    with pytest.raises(ConfigError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        load_config()


def test_a_missing_file_is_refused_not_taken_for_an_empty_one(config_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config()


def test_the_environment_overrides_the_file_key_by_key(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_path.write_text(
        "weight_floor: 0.1\ndefault_deadline_s: 2.0\nservices: {chronos: 'http://a:1'}\n"
        "short_term: {max_horizon_s: 5, backends: [chronos-bolt, kalman]}\n"
    )
    monkeypatch.setenv("CHRONOTICK_GATEWAY_WEIGHT_FLOOR", "0.2")
    monkeypatch.setenv("CHRONOTICK_GATEWAY_SHORT_TERM__BACKENDS", '["last-value"]')
    settings = load_config().settings
    assert settings.weight_floor == 0.2  # the environment
    assert settings.default_deadline_s == 2.0  # the file
    assert settings.short_term is not None
    assert settings.short_term.max_horizon_s == 5.0 and settings.short_term.backends == ["last-value"]
    assert settings.retry_attempts == 3  # the default
    monkeypatch.setenv("CHRONOTICK_GATEWAY_WEIGHT_FLOOR", "0.9")
    with pytest.raises(ConfigError, match="weight_floor: Input should be less than 0.5"):
        load_config()


def test_default_backends_follow_the_horizon_in_seconds() -> None:
    settings = GatewaySettings(
        short_term={"max_horizon_s": 5, "backends": ["kalman"]},
        long_term={"min_horizon_s": 30, "backends": ["chrony-fit"]},
    )
    assert settings.default_backends(1.0) == settings.default_backends(5.0) == ["kalman"]
    assert settings.default_backends(10.0) is None
    assert settings.default_backends(30.0) == settings.default_backends(60.0) == ["chrony-fit"]


def test_a_new_configuration_keeps_the_breakers_of_services_it_keeps() -> None:
    def config(version: str, failures: int, **services: str) -> FleetConfig:
        return FleetConfig(GatewaySettings(services=services, breaker_failures=failures), version)

    dead = {name: f"http://127.0.0.1:{free_port()}" for name in ("a", "b", "c")}

    async def scenario() -> None:
        async with httpx.AsyncClient() as http:
            fleet = Fleet(config("1", 3, a=dead["a"], b=dead["b"]), http, http, GatewayMetrics())
            kept, dropped = fleet.services["a"], fleet.services["b"]
            for _ in range(3):
                kept.breaker.record_failure()
            assert kept.breaker.state is BreakerState.OPEN
            await fleet.apply(config("2", 5, a=dead["a"], c=dead["c"]))
            assert fleet.config.version == "2" and list(fleet.services) == ["a", "c"]
            assert fleet.services["a"] is kept and kept.breaker.state is BreakerState.OPEN
            assert kept.breaker.failure_threshold == 5
            assert fleet.services["c"].last_error is not None  # checked at once, not at the next poll
            assert dropped not in fleet.services.values()
            await fleet.apply(config("3", 5, a=dead["c"]))  # a moved: a new service, a fresh breaker
            assert fleet.services["a"] is not kept and fleet.services["a"].breaker.state is BreakerState.CLOSED

    asyncio.run(scenario())


def test_a_gateway_refuses_to_start_on_an_invalid_file(config_path: Path) -> None:
    config_path.write_text("breaker_failures: 0\n")
    started = subprocess.run(
        [sys.executable, "-c", "import chronotick_gateway.main"], capture_output=True, text=True, timeout=60
    )
    assert started.returncode != 0
    assert "breaker_failures: Input should be greater than or equal to 1" in started.stderr


# --- a live gateway process --------------------------------------------------------------------


def body(horizon: int, backends: list[str] | None = None) -> dict[str, object]:
    clock = generate_clock("server_load", 120, seed=5)
    offsets = [None if np.isnan(v) else float(v) for v in clock.observed_offset_us]
    series = {"offsets_us": offsets, "interval_s": 1.0}
    return {
        "series": [series],
        "horizon": horizon,
        "deadline_s": 10.0,
        **({"backends": backends} if backends is not None else {}),
    }


def config_version(gateway: str) -> str:
    return str(httpx.get(f"{gateway}/models", timeout=10.0).json()["config_version"])


@pytest.fixture
def live_gateway(config_path: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A gateway process reading ``config_path``; yields its URL and its log."""
    config_path.write_text("config_poll_s: 0.2\nshort_term: {max_horizon_s: 5, backends: [kalman]}\n")
    log = tmp_path / "gateway.log"
    with serve_in_process(
        "chronotick_gateway.main:app", env={CONFIG_FILE_VARIABLE: str(config_path)}, log_path=log
    ) as url:
        yield url, log


def test_reload_under_load_fails_no_request_and_an_invalid_file_keeps_the_old_one(
    live_gateway: tuple[str, Path],
    config_path: Path,
    flaky_url: str,
) -> None:
    """Clients send without naming backends, so each request takes the members of the configuration
    in force when it starts: kalman, then a remote model of a slow backend too, then kalman again
    after a reload that removes that backend while calls to it are in flight."""
    gateway, log = live_gateway
    first = version_of(config_path)
    assert config_version(gateway) == first
    stop = threading.Event()

    def client() -> tuple[list[str], list[tuple[float, set[str]]]]:
        """Send requests until told to stop: what went wrong (nothing, hopefully), and when each
        answer came back with which members."""
        problems, answers = [], []
        with httpx.Client(timeout=30.0) as http:
            while not stop.is_set() or not answers:
                answer = http.post(f"{gateway}/predict", json=body(5))
                if answer.status_code != 200:
                    problems.append(f"{answer.status_code}: {answer.text[:200]}")
                    continue
                members = answer.json()["backends"]
                answers.append((time.monotonic(), {b["name"] for b in members}))
                if any(b["status"] != "ok" for b in members):
                    problems.append(str(answer.json()["reasons"]))
        return problems, answers

    set_mode(flaky_url, "slow")
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            clients = [pool.submit(client) for _ in range(4)]
            time.sleep(1.0)
            # Written in place, as an editor does: the watcher must not apply a half-written file.
            config_path.write_text(
                f"config_poll_s: 0.2\nweight_floor: 0.05\nservices: {{flaky: '{flaky_url}'}}\n"
                "short_term: {max_horizon_s: 5, backends: [line, kalman]}\n"
            )
            second = version_of(config_path)
            wait_for(lambda: config_version(gateway) == second)
            services = httpx.get(f"{gateway}/models").json()["services"]
            assert [s["name"] for s in services] == ["flaky"]
            wait_for(lambda: httpx.get(f"{gateway}/models").json()["services"][0]["ready"])
            time.sleep(1.0)  # every client now waits on the slow remote member
            config_path.write_text("config_poll_s: 0.2\nshort_term: {max_horizon_s: 5, backends: [kalman]}\n")
            third = version_of(config_path)
            wait_for(lambda: config_version(gateway) == third, poll_s=0.01)
            removed_at = time.monotonic()
            assert httpx.get(f"{gateway}/models").json()["services"] == []
            time.sleep(0.5)
            config_path.write_text("config_poll_s: 0.2\nweight_floor: 0.7\n")
            wait_for(lambda: "configuration refused" in log.read_text())
            time.sleep(1.0)  # several more checks of the same invalid file
            assert config_version(gateway) == third
            stop.set()
            outcomes = [future.result() for future in clients]
    finally:
        set_mode(flaky_url, "ok")
    problems = [p for outcome, _ in outcomes for p in outcome]
    assert problems == []
    answers = [a for _, client_answers in outcomes for a in client_answers]
    # Calls to the removed backend that were in flight when it went finished normally ...
    assert any(at > removed_at and "line" in members for at, members in answers)
    # ... and every configuration in force answered with its own members.
    assert {frozenset(members) for _, members in answers} == {frozenset({"kalman"}), frozenset({"line", "kalman"})}
    logged = log.read_text()
    assert logged.count("configuration refused") == 1  # once, not at every check
    assert f"version {third} stays in force" in logged and "weight_floor: Input should be less than 0.5" in logged
    answer = httpx.post(f"{gateway}/predict", json=body(3), timeout=30.0).json()
    assert {b["name"]: b["status"] for b in answer["backends"]} == {"kalman": "ok"}


def test_sighup_reloads_at_once_and_the_horizon_picks_the_default_backends(
    live_gateway: tuple[str, Path],
    config_path: Path,
) -> None:
    gateway, _ = live_gateway

    def members(horizon: int) -> set[str]:
        answer = httpx.post(f"{gateway}/predict", json=body(horizon), timeout=30.0)
        assert answer.status_code == 200, answer.text
        return {b["name"] for b in answer.json()["backends"]}

    assert members(5) == {"kalman"}
    assert members(10) == {"kalman", "last-value", "chrony-fit"}  # no range: every ready member
    # Polled only once a minute from now on: only the signal can bring the next change in time.
    config_path.write_text("config_poll_s: 60\n")
    wait_for(lambda: config_version(gateway) == version_of(config_path))
    config_path.write_text(
        "config_poll_s: 60\nshort_term: {max_horizon_s: 2, backends: [last-value]}\n"
        "long_term: {min_horizon_s: 30, backends: [chrony-fit, chronos-bolt]}\n"
    )
    port = gateway.rsplit(":", 1)[1]
    process = next(p for p in psutil.Process().children() if port in p.cmdline())
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: config_version(gateway) == version_of(config_path), timeout_s=5.0)
    assert members(2) == {"last-value"}
    assert members(5) == {"kalman", "last-value", "chrony-fit"}
    # A model no service offers is reported, not a client error, and the others still answer.
    answer = httpx.post(f"{gateway}/predict", json=body(40), timeout=30.0).json()
    statuses = {b["name"]: b["status"] for b in answer["backends"]}
    assert statuses == {"chrony-fit": "ok", "chronos-bolt": "not_ready"} and answer["degraded"] is True


def test_sighup_without_a_configuration_file_is_logged_and_the_gateway_keeps_serving(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    with serve_in_process(
        "chronotick_gateway.main:app", env={"CHRONOTICK_GATEWAY_SERVICES": "{}"}, log_path=log
    ) as gateway:
        port = gateway.rsplit(":", 1)[1]
        process = next(p for p in psutil.Process().children() if port in p.cmdline())
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: no configuration file to reload" in log.read_text())
        assert process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        assert httpx.get(f"{gateway}/health/live").status_code == 200
