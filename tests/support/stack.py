"""The fleet as a Docker Swarm stack, deployed for a test by ``scripts/stack`` as a user deploys it,
on a one-node swarm (turned on for the test if it was off, and off again after)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.servers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SwarmStack:
    name: str
    port: int
    api_key: str
    replicas: dict[str, int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CHRONOTICK_STACK_NAME": self.name,
            "CHRONOTICK_STACK_PORT": str(self.port),
            "CHRONOTICK_GATEWAY_API_KEY": self.api_key,
            **{f"CHRONOTICK_{service.upper()}_REPLICAS": str(n) for service, n in self.replicas.items()},
        }

    def script(self, *args: str, timeout_s: float = 1200.0) -> str:
        result = subprocess.run(
            [str(ROOT / "scripts/stack"), *args], env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"scripts/stack {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def containers(self, service: str) -> list[str]:
        """The running containers of the service's tasks on this node."""
        out = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.name}_{service}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.split()

    def healthy(self, service: str, replicas: int) -> bool:
        """Whether the service runs exactly ``replicas`` containers here, each healthy by its healthcheck."""
        containers = self.containers(service)
        states = [
            subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Health.Status}}", c], capture_output=True, text=True
            ).stdout.strip()
            for c in containers
        ]
        return len(containers) == replicas and all(state == "healthy" for state in states)

    def inside(self, container: str, path: str) -> str:
        """GET ``path`` from the service inside ``container`` (the backends are not reachable from
        the host: their network is internal)."""
        code = (
            "import sys, urllib.request; "
            f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:8000{path}', timeout=5).read().decode())"
        )
        return subprocess.run(
            ["docker", "exec", container, "python", "-c", code], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    def clock(self, clock_id: str, attempts: int = 3) -> dict[str, object]:
        """The clock's report, as an operator's client reads it: a 503 "Clock memory unavailable"
        says when to ask again (Retry-After), and is asked again. Under 32 agents a replica's busy
        event loop can take a healthy Redis for gone for a second (a read late past the socket
        timeout); its answers meanwhile are stateless and say so, which the drills count."""
        for attempt in range(attempts):
            response = httpx.get(f"{self.url}/clocks/{clock_id}", headers=self.headers, timeout=5.0)
            if response.status_code != 503 or "retry-after" not in response.headers or attempt == attempts - 1:
                break
            time.sleep(float(response.headers["retry-after"]))
        response.raise_for_status()
        return response.json()


def swarm_active() -> bool:
    state = subprocess.run(
        ["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return state == "active"


@contextmanager
def deployed_stack(name: str, api_key: str, replicas: dict[str, int]) -> Iterator[SwarmStack]:
    was_active = swarm_active()
    stack = SwarmStack(name, free_port(), api_key, replicas)
    try:
        stack.script("up")
        yield stack
    finally:
        try:
            stack.script("down", timeout_s=300.0)
            _remove_volumes(name)
        finally:
            if not was_active:
                subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, timeout=120)


def _remove_volumes(stack: str) -> None:
    """The stack's volumes (its clock memory among them), which `scripts/stack down` keeps, as a
    user wants; a test's must not reach the next run. A volume is freed a moment after its container."""

    def volumes() -> list[str]:
        return subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()

    wait_for(
        lambda: (
            subprocess.run(["docker", "volume", "rm", *volumes()], capture_output=True).returncode == 0
            if volumes()
            else True
        ),
        60.0,
        f"the volumes of {stack} removed",
        poll_s=1.0,
    )
