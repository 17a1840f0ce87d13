"""The fleet in containers under load with a backend killed and started again: issue 15's drill.

32 clients post 512-sample windows, 60 steps ahead, with the gateway's default deadline (1 s), for
75 s (and at least 15 s after chronos is ready again); chronos is killed at 20 s and started again
at 40 s. Prints, per phase, the requests, their
statuses, the share of degraded answers, fused requests per second and p50/p99 latency; the time
from chronos answering ready again to the first answer that fused it; and the gateway's view of
the fleet once the load is gone. The first phase is the fleet's capacity with every backend up.

    .venvs/integration/bin/python benchmarks/load_drill.py --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import httpx

from record import HORIZON, clock_series, provenance, write_record
from support.containers import MODEL_SERVICES, ComposeFleet
from support.load_drill import Event, run_drill, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=75.0)
    parser.add_argument("--kill-at-s", type=float, default=20.0)
    parser.add_argument("--start-at-s", type=float, default=40.0)
    parser.add_argument("--victim", default="chronos")
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()

    fleet = ComposeFleet("chronotick-drill")
    victim = args.victim
    bodies = [json.dumps({"series": [clock_series(seed)], "horizon": HORIZON}).encode() for seed in range(64)]
    loads = [os.getloadavg()[0]]
    try:
        fleet.up()
        time.sleep(5.0)
        events = [
            Event(args.kill_at_s, "kill", lambda: fleet.compose("kill", victim)),
            Event(args.start_at_s, "start", lambda: fleet.compose("start", victim)),
            Event(args.start_at_s + 0.1, "ready", lambda: fleet.wait_ready(victim, 180.0)),
        ]
        result = run_drill(
            fleet.url, bodies, clients=args.clients, duration_s=args.duration_s, events=events, after_events_s=15.0
        )
        loads.append(os.getloadavg()[0])
        views = []
        for wait_s in (0.0, 5.0, 10.0):  # the gateway's view once the load is gone
            time.sleep(wait_s - (views[-1][0] if views else 0.0))
            services = httpx.get(f"{fleet.url}/models", timeout=5.0).json()["services"]
            views.append((wait_s, sum(s["ready"] and s["breaker"] != "open" for s in services), len(services)))
    finally:
        fleet.down()

    phases = [
        ("every backend up", 0.0, result.events["kill"]),
        (f"{victim} down", result.events["kill"], result.events["start"]),
        (f"{victim} starting", result.events["start"], result.events["ready"]),
        (f"{victim} back", result.events["ready"], result.duration_s),
    ]
    lines = [
        f"{args.clients} clients, each posting its next request when the last is answered; 512-sample windows, "
        f"horizon {HORIZON}, the default 1 s deadline; `{victim}` killed at {result.events['kill']:.0f} s and started "
        f"at {result.events['start']:.0f} s. Load average {loads[0]:.1f} before, {loads[-1]:.1f} after.",
        "",
        "| phase | requests | statuses | fused req/s | not degraded | p50 ms | p99 ms | max ms "
        "| gateway's own max ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, start_s, end_s in phases:
        stats = summarize(result.between(start_s, end_s))
        if not stats["requests"]:
            lines.append(f"| {name} | 0 | | | | | | | |")
            continue
        rate = stats["requests"] / (end_s - start_s)
        statuses = ", ".join(f"{code or 'no answer'}: {count}" for code, count in stats["statuses"].items())
        lines.append(
            f"| {name} | {stats['requests']} | {statuses} | {rate:.1f} | "
            f"{1 - stats['degraded_share']:.1%} | {stats['p50_ms']:.0f} | {stats['p99_ms']:.0f} | "
            f"{stats['max_ms']:.0f} | {stats['gateway_max_ms']:.0f} |"
        )
    everyone_up = result.between(0.0, result.events["kill"])
    fused_by = ", ".join(
        f"{service} {sum(service in a.answered for a in everyone_up) / len(everyone_up):.0%}"
        for service in (*MODEL_SERVICES, "classical")
    )
    fused_at = result.first_answered_by(victim, after_s=result.events["ready"])
    rejoin = "never" if fused_at is None else f"{fused_at - result.events['ready']:.1f} s"
    lines += [
        "",
        f"With every backend up, the share of answers that fused a member of each service: {fused_by}. "
        f"Answers later than 1.25 s: {len(result.late(1.25))} of {len(result.answers)}. "
        f"From `{victim}` answering ready in its container ({result.events['ready']:.1f} s) to the first answer "
        f"that fused it: {rejoin}.",
        "After the load, services the gateway counted ready, breaker not open: "
        + ", ".join(f"{ready}/{total} at +{wait:.0f} s" for wait, ready, total in views)
        + ".",
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_record(
            args.write,
            "load-drill",
            "## The fleet in containers under load, a backend killed "
            "(issue 15)\n\n" + provenance("load_drill.py", ["--write", str(args.write)]) + "\n\n" + table,
        )


if __name__ == "__main__":
    main()
