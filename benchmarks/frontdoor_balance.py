"""Issue 19's choice of how the front door spreads requests over the gateway replicas, measured.

Deploys the stack (``scripts/stack``, as ``stack_scaling`` does) with two gateway replicas and runs
the same drill under each ``CHRONOTICK_FRONTDOOR_BALANCE`` (``deploy/swarm/haproxy.cfg``):
``roundrobin``, and ``clock``, a consistent hash of each request's clock id. Every client is the
agent of its own clock (``support.fleet_calls.AgentStreams``) and asks for the classical members
only, so that the gateways, not the models, are what limits: whatever the front door does shows.

    python benchmarks/frontdoor_balance.py [--seconds 30] [--clients 32] [--write BENCHMARKS.md]

Per way: answers/s, latency as the clients saw it, the busiest replica's share of the answers, how
many clocks were answered by more than one replica (their memory read by both, from Redis), the
share of answers whose clock was remembered (not a cold start), and the share of answers the clocks'
memory counted (``requests`` of GET /clocks/{id}): a request whose state another replica overwrote,
saving its own from an older read, is not counted.
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from chronotick.baselines import CLASSICAL_FORECASTERS
from record import provenance, write_record
from support.fleet_calls import AgentStreams
from support.load_drill import run_drill, summarize
from support.servers import wait_for
from support.stack import SwarmStack, deployed_stack

CLASSICAL = [forecaster.name for forecaster in CLASSICAL_FORECASTERS]
BALANCES = ("roundrobin", "clock")


def set_balance(stack: SwarmStack, balance: str) -> None:
    """Restart the front door with ``balance`` (a host-mode port: the old task stops first)."""
    subprocess.run(
        [
            "docker",
            "service",
            "update",
            "--quiet",
            "--detach=false",
            "--env-add",
            f"CHRONOTICK_FRONTDOOR_BALANCE={balance}",
            f"{stack.name}_frontdoor",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wait_for(lambda: stack.healthy("frontdoor", 1), 120.0, "the front door healthy", poll_s=1.0)
    time.sleep(3.0)  # its DNS (2 s) and health checks (1 s) find both gateways


def measure(stack: SwarmStack, balance: str, clients: int, seconds: float, seed: int) -> str:
    prefix = f"balance-{balance}-{secrets.token_hex(3)}-"
    agents = AgentStreams(prefix, clients, seed=seed, backends=CLASSICAL)
    result = run_drill(stack.url, agents, clients=clients, duration_s=seconds, headers=stack.headers)
    ok = [a for a in result.answers if a.status == 200]
    time.sleep(2.0)  # the last answers' states are saved in the background
    # A clock's memory counts the requests whose state it kept: an update lost to a race is missing.
    kept = sum(int(stack.clock(f"{prefix}{client}")["requests"]) for client in range(clients))
    stats = summarize(result.answers)
    shares = Counter(a.served_by for a in ok)
    replicas_of_clock: dict[int, set[str | None]] = defaultdict(set)
    for answer in ok:
        replicas_of_clock[answer.client].add(answer.served_by)
    split = sum(len(replicas) > 1 for replicas in replicas_of_clock.values())
    busiest = max(shares.values()) / len(ok) if ok else float("nan")
    remembered = sum(a.memory == ("remembered",) for a in ok) / len(ok) if ok else float("nan")
    return (
        f"| {balance} | {len(ok) / seconds:.1f} | {stats['p50_ms']:.1f} | {stats['p99_ms']:.1f} | "
        f"{len(result.answers) - len(ok)} | {busiest:.0%} | {split} of {len(replicas_of_clock)} | "
        f"{remembered:.1%} | {kept / len(ok):.1%} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()
    rows = []
    with deployed_stack("chronotick-balance", secrets.token_urlsafe(16), {"gateway": 2}) as stack:
        for seed, balance in enumerate(BALANCES * 2):  # each way twice, interleaved: the host's load drifts
            set_balance(stack, balance)
            rows.append(measure(stack, balance, args.clients, args.seconds, seed=700 + 100 * seed))
            print(rows[-1], flush=True)
    text = (
        f"### The Swarm stack's front door: round-robin or each clock to one gateway (issue 19)\n\n"
        f"{provenance('frontdoor_balance.py', sys.argv[1:])} One node, two gateway replicas.\n\n"
        f"{args.clients} closed-loop agents, each streaming its own clock (a request every 5 s of its clock's "
        f"time, 512 samples, 60 steps ahead, the default 1 s deadline) for {args.seconds:g} s, answered by the "
        "classical members (so that the gateways are what limits), through the HAProxy front door; each way "
        "twice, interleaved.\n\n"
        "| front door | answers/s | p50 ms | p99 ms | failed | busiest replica's share | clocks answered by both "
        "replicas | answers from a remembered clock | answers the clocks' memory counted |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows)
    )
    print(text)
    if args.write:
        write_record(args.write, "frontdoor_balance", text)


if __name__ == "__main__":
    main()
