"""Issue 19's figures for a capacity model: the fleet as a Swarm stack (deploy/swarm), on this host.

Deploys the stack with ``scripts/stack`` on a one-node swarm (as ``tests/integration/test_stack``
does) and measures, each with closed-loop clients (``support.load_drill.run_drill``) for some seconds:

1. Model replicas: requests fused from the Time-MoE service's member only (the costliest model per
   call, so that it, not the gateways, is what limits) with the gateway's classical members, at 1
   and then 2 replicas of the service: the fused throughput a model service's replicas give.
2. Gateway replicas: requests answered by the classical members alone (no model call), at 1 and
   then 2 gateway replicas behind the front door: what one gateway process serves.
3. Redis: the commands Redis ran per request of a clock the gateway remembers (its INFO
   commandstats before and after a run of agents, each streaming its own clock).

    python benchmarks/stack_scaling.py [--seconds 20] [--clients 16] [--write BENCHMARKS.md]

Every figure shares the host's cores with everything else the stack runs; the README's capacity
model scales them by the cores a deployment gives each replica.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from chronotick.baselines import CLASSICAL_FORECASTERS
from record import clock_series, provenance, write_record
from support.fleet_calls import AgentStreams
from support.load_drill import run_drill, summarize
from support.servers import wait_for
from support.stack import SwarmStack, deployed_stack

CLASSICAL = [forecaster.name for forecaster in CLASSICAL_FORECASTERS]


def bodies(backends: list[str]) -> list[bytes]:
    """Stateless requests (no clock), 512 samples, 60 steps ahead, at the default deadline."""
    return [
        json.dumps({"series": [clock_series(seed)], "horizon": 60, "backends": backends}).encode() for seed in range(64)
    ]


def measure(stack: SwarmStack, posted: Sequence[bytes], clients: int, seconds: float) -> dict[str, float]:
    result = run_drill(stack.url, posted, clients=clients, duration_s=seconds, headers=stack.headers)
    stats = summarize(result.answers)
    ok = [a for a in result.answers if a.status == 200]
    return {
        "rate": len(ok) / seconds,
        "whole": sum(not a.degraded for a in ok) / seconds,
        "degraded": stats["degraded_share"],
        "p50_ms": stats["p50_ms"],
        "failed": len(result.answers) - len(ok),
        "replicas_served": len({a.served_by for a in ok}),
    }


def scale(stack: SwarmStack, service: str, replicas: int) -> None:
    stack.script("scale", f"{service}={replicas}")
    wait_for(lambda: stack.healthy(service, replicas), 300.0, f"{replicas} healthy replicas of {service}", poll_s=1.0)
    time.sleep(3.0)  # the front door's DNS (2 s) and health checks (1 s) take a replica in or out


def redis_commands(stack: SwarmStack) -> dict[str, int]:
    (container,) = stack.containers("redis")
    text = subprocess.run(
        ["docker", "exec", container, "redis-cli", "info", "commandstats"], capture_output=True, text=True, check=True
    ).stdout
    return {name: int(calls) for name, calls in re.findall(r"^cmdstat_(\w+):calls=(\d+)", text, re.M)}


def row(name: str, figures: dict[str, float]) -> str:
    return (
        f"| {name} | {figures['rate']:.1f} | {figures['whole']:.1f} | {figures['degraded']:.0%} "
        f"| {figures['p50_ms']:.0f} | "
        f"{figures['failed']:.0f} | {figures['replicas_served']:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()
    rows = []
    with deployed_stack("chronotick-bench", secrets.token_urlsafe(16), {"gateway": 2, "timemoe": 1}) as stack:
        timemoe = bodies(["timemoe", *CLASSICAL])
        rows.append(
            row(
                "timemoe and the classical members, 1 Time-MoE replica (2 gateways)",
                measure(stack, timemoe, args.clients, args.seconds),
            )
        )
        scale(stack, "timemoe", 2)
        rows.append(
            row(
                "timemoe and the classical members, 2 Time-MoE replicas (2 gateways)",
                measure(stack, timemoe, args.clients, args.seconds),
            )
        )
        classical = bodies(CLASSICAL)
        scale(stack, "gateway", 1)
        rows.append(
            row("the classical members alone, 1 gateway", measure(stack, classical, args.clients, args.seconds))
        )
        scale(stack, "gateway", 2)
        rows.append(
            row("the classical members alone, 2 gateways", measure(stack, classical, args.clients, args.seconds))
        )
        before = redis_commands(stack)
        agents = AgentStreams(f"bench-{secrets.token_hex(3)}-", args.clients, seed=500)
        remembered = run_drill(stack.url, agents, clients=args.clients, duration_s=args.seconds, headers=stack.headers)
        after = redis_commands(stack)
        print(*rows, sep="\n", flush=True)
    asked = len([a for a in remembered.answers if a.status == 200])
    per_request = {
        name: (after.get(name, 0) - before.get(name, 0)) / asked
        for name in after
        if after.get(name, 0) > before.get(name, 0)
    }
    redis_line = ", ".join(f"{name.upper()} {calls:.2f}" for name, calls in sorted(per_request.items()))
    text = (
        f"### The Swarm stack: replicas and throughput (issue 19)\n\n"
        f"{provenance('stack_scaling.py', sys.argv[1:])} One node: its {os.cpu_count()} cores are shared by "
        f"every replica, the front door and Redis.\n\n"
        f"{args.clients} closed-loop clients, {args.seconds:g} s each, stateless requests (512 samples, 60 "
        "steps ahead, the default 1 s deadline) through the HAProxy front door; `backends` picks the members.\n\n"
        "| run | answers/s | of them from every member asked, /s | degraded | p50 ms | failed | "
        "gateway replicas that answered |\n|---|---:|---:|---:|---:|---:|---:|\n"
        + "\n".join(rows)
        + f"\n\nRedis commands per request of a remembered clock ({args.clients} agents streaming their clocks "
        f"for {args.seconds:g} s, {asked} answers): {redis_line}."
    )
    print(text)
    if args.write:
        write_record(args.write, "stack_scaling", text)


if __name__ == "__main__":
    main()
