"""The clock agent as a process against real peers: a chronyd serving NTP on loopback (and its
command socket for `chronyc -c tracking`), the real gateway in its own process. The agent is
started the way a host starts it (`chronotick agent`), and every process started is stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chronotick.agent.sources import ChronySource
from support.chrony import run_chronyd
from support.servers import free_port, serve_in_process, stop_process, wait_for, wait_until_ready

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class AgentProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def time(self) -> dict[str, float | str]:
        response = httpx.get(f"{self.url}/time", timeout=5.0)
        assert response.status_code == 200, response.text
        return response.json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def run_agent(env: dict[str, str], log_path: Path) -> Iterator[AgentProcess]:
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "chronotick.cli", "agent", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    agent = AgentProcess(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_ready(agent.url, timeout_s=30.0, process=process)  # ready: a first real measurement
        yield agent
    finally:
        stop_process(process)
        log.close()


def metrics(url: str) -> Samples:
    text = httpx.get(f"{url}/metrics", timeout=5.0).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def stopped_cleanly(agent: AgentProcess) -> bool:
    """Ended by our SIGTERM (uvicorn re-raises it after a graceful shutdown), with no traceback."""
    return agent.process.returncode in (0, -signal.SIGTERM) and "Traceback" not in agent.log()


def port_closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


AGENT_CADENCES = {
    "CHRONOTICK_AGENT_MEASURE_INTERVAL_S": "1",
    "CHRONOTICK_AGENT_SHORT_EVERY_S": "1",
    "CHRONOTICK_AGENT_SHORT_HORIZON_S": "5",
    "CHRONOTICK_AGENT_LONG_EVERY_S": "3",
    "CHRONOTICK_AGENT_LONG_HORIZON_S": "20",
    "CHRONOTICK_AGENT_SCORE_HORIZONS_S": "[1, 2, 5]",
    "CHRONOTICK_AGENT_WINDOW_SAMPLES": "64",
    "CHRONOTICK_AGENT_MAX_DRIFT_PPM": "50",
    "CHRONOTICK_AGENT_SOURCE_BACKOFF_MAX_S": "2",
    "CHRONOTICK_AGENT_FLEET_BACKOFF_MAX_S": "2",
}


def test_agent_forecasts_through_the_gateway_and_keeps_an_honest_bound_when_source_and_fleet_go(
    tmp_path: Path,
) -> None:
    with run_chronyd(tmp_path) as chronyd, contextlib.ExitStack() as fleet:
        # The real gateway with its classical members (no model service: they start in seconds).
        gateway = fleet.enter_context(
            serve_in_process(
                "chronotick_gateway.main:app",
                env={"CHRONOTICK_GATEWAY_SERVICES": "{}"},
                log_path=tmp_path / "gateway.log",
            )
        )
        env = {
            **AGENT_CADENCES,
            "CHRONOTICK_AGENT_SOURCE": "ntp",
            "CHRONOTICK_AGENT_NTP_SERVER": "127.0.0.1",
            "CHRONOTICK_AGENT_NTP_PORT": str(chronyd.port),
            "CHRONOTICK_AGENT_SOURCE_TIMEOUT_S": "0.3",
            "CHRONOTICK_AGENT_GATEWAY_URL": gateway,
            "CHRONOTICK_AGENT_ERROR_BOUND_LIMIT_US": "250",
        }
        with run_agent(env, tmp_path / "agent.log") as agent:
            # Measurements flow at 1 Hz; once 8 are in, forecasts at their cadences.
            wait_for(
                lambda: (
                    sum(
                        value(
                            metrics(agent.url),
                            "chronotick_agent_forecast_requests_total",
                            kind="short",
                            outcome=outcome,
                        )
                        for outcome in ("ok", "degraded")
                    )
                    >= 1
                )
            )
            gateway_before, before = metrics(gateway), metrics(agent.url)
            time.sleep(6.0)
            after, gateway_after = metrics(agent.url), metrics(gateway)

            def delta(name: str, **labels: str) -> float:
                return value(after, name, **labels) - value(before, name, **labels)

            def answered(kind: str) -> float:  # degraded: a member missed the deadline on this busy machine
                return sum(
                    delta("chronotick_agent_forecast_requests_total", kind=kind, outcome=outcome)
                    for outcome in ("ok", "degraded")
                )

            def fused(samples: Samples) -> float:
                return sum(
                    value(samples, "chronotick_gateway_fused_requests_total", degraded=degraded)
                    for degraded in ("true", "false")
                )

            assert 4 <= delta("chronotick_agent_measurements_total") <= 8
            short, long = answered("short"), answered("long")
            assert 4 <= short <= 8, short  # every second
            assert 1 <= long <= 3, long  # every 3 s
            # They reached the real gateway (one may have been in flight across the snapshots).
            assert fused(gateway_after) - fused(gateway_before) >= short + long - 1

            served = agent.time()
            assert str(served["basis"]).startswith("forecast:")
            assert 0 < float(served["error_bound_us"]) < 100_000  # loopback NTP, even on a busy machine
            # What the monitoring alert compares the served bound with: this host's own setting.
            assert value(after, "chronotick_agent_error_bound_limit_us") == 250.0
            assert float(served["corrected_time_s"]) == pytest.approx(
                float(served["local_time_s"]) - float(served["offset_us"]) / 1e6, abs=1e-9
            )

            # Realized errors of earlier forecasts, per horizon, with their interval coverage.
            status = httpx.get(f"{agent.url}/status").json()
            scored = {(s["kind"], s["horizon_s"]): s for s in status["scores"]}
            assert scored[("short", 1.0)]["count"] >= 3
            assert 0.0 <= scored[("short", 1.0)]["coverage95"] <= 1.0
            assert value(after, "chronotick_agent_forecast_mae_us", kind="short", horizon_s="1") >= 0.0
            assert (
                "chronotick_agent_interval_coverage",
                (("horizon_s", "1"), ("kind", "short"), ("level", "0.95")),
            ) in after

            # The source goes: clear log line, counted failures, served bound keeps widening.
            chronyd.stop()
            wait_for(
                lambda: (
                    sum(
                        v
                        for (name, _), v in metrics(agent.url).items()
                        if name == "chronotick_agent_source_failures_total"
                    )
                    >= 1
                )
            )
            first = agent.time()
            time.sleep(2.0)
            second = agent.time()
            assert float(second["last_measurement_age_s"]) > float(first["last_measurement_age_s"]) + 1.5
            assert float(second["error_bound_us"]) > float(first["error_bound_us"])
            assert f"measurement from ntp 127.0.0.1:{chronyd.port} failed" in agent.log()

            # The fleet goes too: forecasts fail and back off; time is still served, bound still widening.
            fleet.close()
            wait_for(
                lambda: (
                    value(
                        metrics(agent.url), "chronotick_agent_forecast_requests_total", kind="short", outcome="failed"
                    )
                    >= 1
                )
            )
            third = agent.time()
            assert float(third["error_bound_us"]) > float(second["error_bound_us"])
            assert f"forecast from gateway {gateway} failed" in agent.log()
            assert agent.process.poll() is None  # never crashed
        assert stopped_cleanly(agent)
        assert port_closed(agent.url) and port_closed(gateway)
    assert chronyd.process.returncode is not None


def test_agent_forecasts_from_model_members_are_not_degraded_by_covariates_a_member_does_not_know(
    tmp_path: Path, chronos_url: str, ttm_url: str
) -> None:
    # The agent sends cpu_load and memory_used_fraction (and temperature_c where there are sensors);
    # ttm-exog knows temperature_c and cpu_load only, and once refused every request that carried more.
    # Every model member of chronos and ttm, with the agent's own default deadline.
    services = json.dumps({"chronos": chronos_url, "ttm": ttm_url})
    with (
        run_chronyd(tmp_path) as chronyd,
        serve_in_process(
            "chronotick_gateway.main:app",
            env={"CHRONOTICK_GATEWAY_SERVICES": services},
            log_path=tmp_path / "gateway.log",
        ) as gateway,
    ):
        # Measurements every 0.5 s: the window fills quickly (ttm sits out contexts of fewer than 16 samples).
        env = {
            **AGENT_CADENCES,
            "CHRONOTICK_AGENT_MEASURE_INTERVAL_S": "0.5",
            "CHRONOTICK_AGENT_SOURCE": "ntp",
            "CHRONOTICK_AGENT_NTP_SERVER": "127.0.0.1",
            "CHRONOTICK_AGENT_NTP_PORT": str(chronyd.port),
            "CHRONOTICK_AGENT_SOURCE_TIMEOUT_S": "0.3",
            "CHRONOTICK_AGENT_GATEWAY_URL": gateway,
        }
        with run_agent(env, tmp_path / "agent.log") as agent:

            def answered(samples: Samples, kind: str) -> float:
                return sum(
                    value(samples, "chronotick_agent_forecast_requests_total", kind=kind, outcome=outcome)
                    for outcome in ("ok", "degraded", "failed")
                )

            wait_for(lambda: httpx.get(f"{agent.url}/status").json()["window_observed"] >= 16, timeout_s=30.0)
            # Let the forecasts asked from a shorter window come back first.
            settled = metrics(agent.url)
            wait_for(
                lambda: all(
                    answered(metrics(agent.url), kind) >= answered(settled, kind) + 2 for kind in ("short", "long")
                ),
                timeout_s=30.0,
            )
            before, gateway_before = metrics(agent.url), metrics(gateway)
            wait_for(
                lambda: (
                    answered(metrics(agent.url), "short") >= answered(before, "short") + 4
                    and answered(metrics(agent.url), "long") >= answered(before, "long") + 1
                ),
                timeout_s=30.0,
            )
            after, gateway_after = metrics(agent.url), metrics(gateway)

            def delta(name: str, **labels: str) -> float:
                return value(after, name, **labels) - value(before, name, **labels)

            for kind in ("short", "long"):
                outcomes = {
                    outcome: delta("chronotick_agent_forecast_requests_total", kind=kind, outcome=outcome)
                    for outcome in ("ok", "degraded", "failed")
                }
                assert outcomes["ok"] >= 1 and outcomes["degraded"] == outcomes["failed"] == 0, (kind, outcomes)
            assert value(gateway_after, "chronotick_gateway_fused_requests_total", degraded="true") == value(
                gateway_before, "chronotick_gateway_fused_requests_total", degraded="true"
            )
            for member in ("ttm", "ttm-exog", "chronos-bolt", "chronos-2", "timesfm-2.5"):  # each answered them all
                answered_by = value(gateway_after, "chronotick_gateway_backend_seconds_count", backend=member) - value(
                    gateway_before, "chronotick_gateway_backend_seconds_count", backend=member
                )
                assert answered_by >= 5, (member, answered_by)
            held = httpx.get(f"{agent.url}/status").json()["forecasts"]
            assert held and not held[-1]["degraded"]
        assert stopped_cleanly(agent)
    assert chronyd.process.returncode is not None


def test_chrony_source_reads_chronyc_tracking_and_feeds_the_agent(tmp_path: Path) -> None:
    with run_chronyd(tmp_path) as chronyd:
        measurement = asyncio.run(ChronySource(chronyd.chronyc, timeout_s=5.0).measure())
        assert measurement.stratum == 8  # `local stratum 8`
        assert measurement.offset_us == 0.0  # chronyd with -x and no source: no correction pending
        assert abs(measurement.time_s - time.time()) < 5.0
        env = {
            **AGENT_CADENCES,
            "CHRONOTICK_AGENT_SOURCE": "chrony",
            "CHRONOTICK_AGENT_CHRONYC": json.dumps(chronyd.chronyc),
            "CHRONOTICK_AGENT_GATEWAY_URL": f"http://127.0.0.1:{free_port()}",
        }  # no fleet: served all the same
        with run_agent(env, tmp_path / "agent.log") as agent:
            wait_for(lambda: value(metrics(agent.url), "chronotick_agent_measurements_total") >= 3)
            served = agent.time()
            assert served["basis"] == "last-measurement" and served["offset_us"] == 0.0
            samples = metrics(agent.url)
            assert not any(
                name == "chronotick_agent_source_failures_total" and v > 0 for (name, _), v in samples.items()
            )
        assert stopped_cleanly(agent)
    assert chronyd.process.returncode is not None
