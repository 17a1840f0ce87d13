"""Latency, throughput and memory of one family service, as a client sees them over HTTP.

Starts the service as its own process (this interpreter, so run it in the family's environment),
then measures: p50/p99 latency of one client sending one series at a time; requests per second
with 32 concurrent connections (wrk), with micro-batching on and off; and the idle resident
memory after the warm-up. Prints a Markdown table; ``--write BENCHMARKS.md`` also records it there with the
command, commit and machine.

    .venvs/chronos/bin/python benchmarks/service_speed.py --app chronotick_chronos.main:app \
        --model chronos-bolt --model chronos-2 --model timesfm-2.5 --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil

from record import HORIZON, clock_series, provenance, write_record
from support.servers import serve_in_process

CLIENTS = 32


@dataclass(frozen=True)
class Row:
    model: str
    p50_ms: float
    p99_ms: float
    single_rps: float
    batched_rps: float
    unbatched_rps: float
    idle_rss_mb: float

    @property
    def gain(self) -> float:
        return self.batched_rps / self.unbatched_rps


def bodies(model: str, count: int) -> list[dict[str, object]]:
    return [{"series": [clock_series(seed)], "horizon": HORIZON, "model": model} for seed in range(count)]


def sequential_latencies_ms(base_url: str, requests: list[dict[str, object]]) -> np.ndarray:
    latencies = []
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for body in requests:
            started = time.perf_counter()
            client.post("/predict", json=body).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000.0)
    return np.array(latencies)


def concurrent_rps(base_url: str, body: dict[str, object], clients: int, seconds: int = 10) -> float:
    """Requests/s with ``clients`` connections kept busy by wrk (Debian's wrk: scripts/setup-system).

    A load generator written in Python would need more CPU than the service on these 2 cores and
    would measure itself; wrk's cost per request is negligible.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [[{json.dumps(body)}]]\n"
        )
        script.flush()
        output = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "-s", script.name, f"{base_url}/predict"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    if "Non-2xx" in output:
        raise RuntimeError(f"some requests failed under load:\n{output}")
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))  # type: ignore[union-attr]


def service_rss_mb(base_url: str) -> float:
    port = int(base_url.rsplit(":", 1)[1])
    for connection in psutil.net_connections("tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == "LISTEN" and connection.pid:
            return psutil.Process(connection.pid).memory_info().rss / 2**20
    raise RuntimeError(f"no process listens on port {port}")


def measure(app: str, models: list[str], requests: int) -> list[Row]:
    rows = []
    with serve_in_process(app) as base_url:
        idle_rss = service_rss_mb(base_url)
        for model in models:
            work = bodies(model, requests)
            sequential_latencies_ms(base_url, work[:10])  # warm caches
            latencies = sequential_latencies_ms(base_url, work)
            batched = concurrent_rps(base_url, work[0], CLIENTS)
            rows.append(
                Row(
                    model,
                    float(np.percentile(latencies, 50)),
                    float(np.percentile(latencies, 99)),
                    1000.0 / float(np.mean(latencies)),
                    batched,
                    0.0,
                    idle_rss,
                )
            )
    with serve_in_process(app, env={"CHRONOTICK_BATCHING": "false"}) as base_url:
        for index, model in enumerate(models):
            unbatched = concurrent_rps(base_url, bodies(model, 1)[0], CLIENTS)
            rows[index] = Row(**{**rows[index].__dict__, "unbatched_rps": unbatched})
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| model | p50 ms (1 client) | p99 ms (1 client) | req/s (1 client) | req/s 32 clients, batching | "
        "req/s 32 clients, no batching | batching gain | idle RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.model} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.single_rps:.0f} | {r.batched_rps:.0f} | "
        f"{r.unbatched_rps:.0f} | {r.gain:.1f}x | {r.idle_rss_mb:.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", required=True, help="ASGI app of the service, e.g. chronotick_chronos.main:app")
    parser.add_argument("--model", action="append", required=True, help="model to measure (repeatable)")
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()
    rows = measure(args.app, args.model, args.requests)
    text = f"{provenance('service_speed.py', sys.argv[1:])}; one series per request.\n\n{table(rows)}"
    print(text)
    if args.write:
        family = args.app.split(".", 1)[0]
        write_record(args.write, f"service_speed:{family}", f"### {family} service speed\n\n{text}")


if __name__ == "__main__":
    main()
