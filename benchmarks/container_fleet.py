"""The fleet in containers: build time, image sizes, start-up, idle memory and the fused /predict.

Runs the fleet under a compose project of its own on a free port (never the one a developer has
up) and removes it at the end. Needs Docker set up (scripts/docker-provision). Measures:

* build time of every image (``--cold``: without the layer cache, the wheelhouse in place);
* each image's size;
* time from ``up`` to every backend fused by the gateway;
* idle RSS of each container (``docker stats``) once the fleet is quiet;
* the fused /predict through the published port: one client (p50, p99), then 32 clients (wrk).

    .venvs/integration/bin/python benchmarks/container_fleet.py --cold --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from service_speed import concurrent_rps, sequential_latencies_ms

from record import HORIZON, clock_series, provenance, write_record
from support.containers import MODEL_SERVICES, ComposeFleet

SERVICES = (*MODEL_SERVICES, "gateway")


def build_s(fleet: ComposeFleet, cold: bool) -> float:
    started = time.monotonic()
    fleet.compose("build", "-q", *(["--no-cache"] if cold else []), timeout_s=3600.0)
    return time.monotonic() - started


def image_size_mb(service: str) -> float:
    size = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", f"chronotick/{service}:local"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(size) / 1e6


def container_rss_mb(container: str) -> float:
    usage = (
        subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.split("/")[0]
        .strip()
    )
    number, unit = float(usage[:-3]), usage[-3:]
    return number * {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="build without the layer cache")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()

    fleet = ComposeFleet("chronotick-bench")
    loads = [os.getloadavg()[0]]  # the cores may be shared: say how busy they were
    build = build_s(fleet, args.cold)
    loads.append(os.getloadavg()[0])
    sizes = {service: image_size_mb(service) for service in SERVICES}
    try:
        up_s = fleet.up()
        time.sleep(10.0)  # let warm-up garbage settle before reading idle memory
        rss = {service: container_rss_mb(fleet.container(service)) for service in SERVICES}
        body = {"series": [clock_series(0)], "horizon": HORIZON, "deadline_s": 10.0}
        bodies = [{**body, "series": [clock_series(seed)]} for seed in range(args.requests)]
        sequential_latencies_ms(fleet.url, bodies[:5])
        latencies = sequential_latencies_ms(fleet.url, bodies)
        throughput = concurrent_rps(fleet.url, body, clients=32, seconds=20)
        loads.append(os.getloadavg()[0])
    finally:
        fleet.down()

    lines = [
        "| image | size (MB) | idle RSS (MB) |",
        "|---|---:|---:|",
        *(f"| {service} | {sizes[service]:.0f} | {rss[service]:.0f} |" for service in SERVICES),
        "",
        "| figure | value |",
        "|---|---:|",
        f"| build of all five images ({'cold: no layer cache' if args.cold else 'layer cache in use'}) "
        f"| {build:.0f} s |",
        f"| `up` to every backend fused by the gateway | {up_s:.0f} s |",
        f"| fused /predict through the published port, one client, p50 / p99 "
        f"| {np.percentile(latencies, 50):.0f} / {np.percentile(latencies, 99):.0f} ms |",
        f"| fused /predict, 32 clients (wrk, 20 s) | {throughput:.1f} req/s |",
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        text = (
            "### The fleet in containers\n\n"
            f"{provenance('container_fleet.py', sys.argv[1:])}\n\n"
            f"Every backend with all seven models up, one request = one series of context 512, horizon {HORIZON}, "
            "deadline 10 s; the whole fleet shares the machine's cores. 1-minute load average at the start, "
            f"after the build and at the end: {', '.join(f'{load:.1f}' for load in loads)}.\n\n" + table
        )
        write_record(args.write, "container_fleet", text)


if __name__ == "__main__":
    main()
