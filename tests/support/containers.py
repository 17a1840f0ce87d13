"""The fleet in real containers, driven through docker-compose, for integration tests and benchmarks.

Each ``ComposeFleet`` runs under its own compose project name and its own published port, so it
never touches a fleet a developer has running, and ``down`` removes every container, network and
volume it created. Commands go through ``scripts/compose`` (the Compose plugin or the standalone
docker-compose 1.29, whichever the machine has).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chronotick.families import families
from support.servers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "scripts" / "compose"
MODEL_SERVICES = tuple(families())  # compose names each family's service after it
FREEZE_RETRIES = 3


@dataclass
class ComposeFleet:
    project: str
    api_key: str | None = None  # the gateway's CHRONOTICK_GATEWAY_API_KEY
    port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)  # the monitoring profile's, when it runs

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def predict(self, body: dict[str, object], timeout_s: float = 30.0) -> httpx.Response:
        return httpx.post(f"{self.url}/predict", json=body, headers=self.headers, timeout=timeout_s)

    def compose(self, *args: str, timeout_s: float = 120.0, env: dict[str, str] | None = None) -> str:
        """``scripts/compose ARGS`` for this fleet; ``env`` adds variables (e.g. CHRONOTICK_GATEWAY_WORKERS)."""
        env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "CHRONOTICK_GATEWAY_PORT": str(self.port),
            "CHRONOTICK_PROMETHEUS_PORT": str(self.prometheus_port),
            **(env or {}),
        }
        env.pop("CHRONOTICK_GATEWAY_API_KEY", None)
        if self.api_key:
            env["CHRONOTICK_GATEWAY_API_KEY"] = self.api_key
        done = subprocess.run(
            [str(COMPOSE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
        )
        if done.returncode != 0:
            raise RuntimeError(f"compose {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def container(self, service: str) -> str:
        """The service's container id, from the labels compose puts on it (through the docker CLI:
        see ``docker``)."""
        found = subprocess.run(
            [
                "docker",
                "ps",
                "--all",
                "--quiet",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                "--filter",
                f"label=com.docker.compose.service={service}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30.0,
        ).stdout.split()
        if len(found) != 1:
            raise RuntimeError(f"{len(found)} containers for service {service}, one expected")
        return found[0]

    def docker(
        self, verb: str, service: str, *args: str, options: tuple[str, ...] = (), timeout_s: float = 120.0
    ) -> str:
        """``docker VERB OPTIONS CONTAINER ARGS`` on the service's container: what a drill does to the
        fleet under load. The docker CLI costs a few milliseconds of CPU where each run of
        docker-compose 1.29 (Python) costs about 0.7 s, which on 2 cores under load is taken from
        the very services the drill measures (in one CI run, an answer that arrived as `compose stop`
        ran was 6 ms past the gateway's bound)."""
        command = ["docker", verb, *options, self.container(service), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        for _ in range(FREEZE_RETRIES):
            # runc freezes a cgroup v1 by chance, and a busy container can slip through its tries
            # ("unable to freeze": opencontainers/runc#2791, moby/moby#48205): an operator pauses again.
            if verb != "pause" or "unable to freeze" not in done.stderr:
                break
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            raise RuntimeError(f"docker {verb} {service} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def inspect(self, service: str) -> dict[str, object]:
        out = subprocess.run(
            ["docker", "inspect", self.container(service)], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out)[0]

    def answers_ready(self, service: str) -> bool:
        """The service's own /health/ready, probed inside its container (the host cannot reach a
        backend), the moment it holds: docker's health status lags by up to its check interval."""
        return self._healthcheck(service, timeout_s=30.0)

    def wait_ready(self, service: str, timeout_s: float) -> float:
        """Wait until the service answers ready inside its container; the seconds it took. One
        ``docker exec`` asks every 0.1 s (``healthcheck --wait``): an exec per look costs 0.17 s of
        CPU, which polled every 0.1 s through a restart under load took a third of the 2 cores from
        the fleet being measured. An exec that fails (the container is not running yet) is tried
        again."""
        started = time.monotonic()
        while (left_s := timeout_s - (time.monotonic() - started)) > 0:
            if self._healthcheck(service, "--wait", f"{left_s:.1f}", timeout_s=left_s + 30.0):
                return time.monotonic() - started
            time.sleep(0.5)
        raise AssertionError(f"{service} not ready within {timeout_s:g} s")

    def _healthcheck(self, service: str, *options: str, timeout_s: float) -> bool:
        """``python -m chronotick.healthcheck OPTIONS`` inside the service's container: True on exit 0."""
        command = ["docker", "exec", self.container(service), "python", "-m", "chronotick.healthcheck", *options]
        return subprocess.run(command, capture_output=True, timeout=timeout_s).returncode == 0

    def ready_services(self) -> set[str]:
        """Services the gateway itself would call now (ready, breaker not open), from its /models."""
        models = httpx.get(f"{self.url}/models", timeout=5.0).json()
        return {service["name"] for service in models["services"] if service["ready"] and service["breaker"] != "open"}

    def wait_until(self, condition, timeout_s: float, what: str, poll_s: float = 0.25) -> float:
        """Poll ``condition`` until it holds; the seconds it took. A container that is restarting or an
        answer not there yet counts as "not yet", not as a failure."""

        def holds() -> bool:
            try:
                return bool(condition())
            except (httpx.HTTPError, RuntimeError, KeyError):
                return False

        return wait_for(holds, timeout_s, what, poll_s)

    def up(self, timeout_s: float = 900.0) -> float:
        """Start the fleet (building missing images) and wait until the gateway fuses every backend."""
        started = time.monotonic()
        self.compose("up", "-d", timeout_s=timeout_s)
        self.wait_until(lambda: self.ready_services() == set(MODEL_SERVICES), timeout_s, "every backend ready")
        return time.monotonic() - started

    def down(self) -> None:
        # With every profile on: a service a test started from one (Prometheus) goes too.
        self.compose(
            "down",
            "--volumes",
            "--remove-orphans",
            "--timeout",
            "5",
            timeout_s=300.0,
            env={"COMPOSE_PROFILES": "monitoring"},
        )


@contextmanager
def running_fleet(project: str, api_key: str | None = None) -> Iterator[ComposeFleet]:
    fleet = ComposeFleet(project, api_key)
    try:
        fleet.up()
        yield fleet
    finally:
        fleet.down()
