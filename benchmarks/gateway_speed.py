"""Latency of the fused /predict, what the gateway adds, and its deadline under a hanging backend.

Starts the four family services (each in its own environment), a backend that can be made to
hang, and the gateway, each as its own process; one client sends one series at a time. Measures:

* the fused /predict with every backend up (p50, p99), and the CPU time the whole fleet spends
  on one (divided by the cores, a floor under its latency);
* the gateway's overhead: fused p50 minus the p50 of the slowest member called directly with
  the very request the gateway sends it (the series and its backtest cuts, encoded by the
  gateway's own code before the clock starts, so the direct figure holds no client-side JSON
  encoding of that large body). With every member up, they share the cores, so this also holds
  their contention;
* the gateway's own cost, paired: for each series, chronos-bolt called directly with the
  gateway's member request, the same request through ``passthrough_proxy`` (uvicorn, FastAPI and
  one pooled httpx.AsyncClient forwarding bytes: the floor of the stack the gateway is built
  from) and the fused request with only chronos-bolt selected, back to back. The three see the
  same state of the machine, whose speed drifts by tens of percent over minutes on a shared VM;
  the medians of the per-series differences are the overhead, the floor, and the gateway's work
  beyond the floor;
* with the extra backend hanging: p99 against the request's deadline.

Every body is encoded before its clock starts: no figure holds the client's JSON encoding.

    .venvs/gateway/bin/python benchmarks/gateway_speed.py --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from chronotick.contract import FusedPredictRequest
from chronotick.grid import regularize
from chronotick_gateway.backtest import plan_series
from chronotick_gateway.calls import member_bodies
from chronotick_gateway.settings import GatewaySettings
from record import HORIZON, clock_series, percentile_ms, provenance, write_record
from support.servers import serve_in_process, server_process, venv_python

BENCHMARKS_DIR = Path(__file__).resolve().parent
TESTS_DIR = BENCHMARKS_DIR.parent / "tests"
FAMILIES = {
    "chronos": ("chronos-bolt", "chronos-2", "timesfm-2.5"),
    "ttm": ("ttm", "ttm-exog"),
    "toto": ("toto",),
    "timemoe": ("timemoe",),
}


_JSON = {"content-type": "application/json"}


def encoded(bodies: list[dict[str, object]]) -> list[bytes]:
    return [json.dumps(body).encode() for body in bodies]


def timed_posts(url: str, bodies: list[bytes]) -> list[float]:
    """One POST after the other, each body JSON already."""
    latencies = []
    with httpx.Client(timeout=30.0) as client:
        for body in bodies:
            started = time.perf_counter()
            client.post(url, content=body, headers=_JSON).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def interleaved_posts(targets: dict[str, tuple[str, list[bytes]]]) -> dict[str, np.ndarray]:
    """Latencies (s) of the i-th body of every target, sent back to back before the (i+1)-th:
    paired measurements, each pair under the same state of the machine."""
    latencies: dict[str, list[float]] = {name: [] for name in targets}
    count = min(len(bodies) for _, bodies in targets.values())
    with httpx.Client(timeout=30.0) as client:
        for index in range(count):
            for name, (url, bodies) in targets.items():
                started = time.perf_counter()
                client.post(url, content=bodies[index], headers=_JSON).raise_for_status()
                latencies[name].append(time.perf_counter() - started)
    return {name: np.asarray(values) for name, values in latencies.items()}


def paired_ms(later: np.ndarray, earlier: np.ndarray) -> str:
    """Median of the per-pair differences, with their interquartile range."""
    differences = (later - earlier) * 1000.0
    low, median, high = np.percentile(differences, [25, 50, 75])
    return f"{median:.1f} (IQR {low:.1f} to {high:.1f})"


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def member_request(body: dict[str, object], model: str) -> bytes:
    """The request the gateway sends one member for ``body`` (the series and its backtest cuts),
    built by the gateway's own code."""
    query = FusedPredictRequest.model_validate(body)
    plans = [
        plan_series(regularize(s, f"series.{i}"), query.horizon, GatewaySettings().backtest_origins, s.id)
        for i, s in enumerate(query.series)
    ]
    (request,) = member_bodies(
        plans,
        query.horizon,
        model,
        past_covariates=set(),
        future_covariates=set(),
        skip_spread_backtests=GatewaySettings().skip_spread_backtests,
    )
    return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--deadline-s", type=float, default=1.0)
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]  # the cores are shared: say how busy they were
    queries = [{"series": [clock_series(seed)], "horizon": HORIZON} for seed in range(args.requests)]
    bodies = encoded(queries)
    warm = bodies[:10]
    with contextlib.ExitStack() as stack:
        urls = {
            family: stack.enter_context(serve_in_process(f"chronotick_{family}.main:app", python=venv_python(family)))
            for family in FAMILIES
        }
        flaky = stack.enter_context(serve_in_process("support.flaky_backend:app", env={"PYTHONPATH": str(TESTS_DIR)}))
        services = json.dumps({**urls, "flaky": flaky})
        gateway = stack.enter_context(
            serve_in_process("chronotick_gateway.main:app", env={"CHRONOTICK_GATEWAY_SERVICES": services})
        )
        timed_posts(f"{gateway}/predict", warm)
        # The whole fleet's CPU time per fused request bounds its latency from below: on N cores
        # no request can take less than that time divided by N.
        fleet = [server_process(url) for url in [*urls.values(), flaky, gateway]]
        fleet_cpu_before = sum(cpu_s(process) for process in fleet)
        fused = timed_posts(f"{gateway}/predict", bodies)
        fleet_cpu_ms = (sum(cpu_s(process) for process in fleet) - fleet_cpu_before) / len(bodies) * 1000.0
        direct = {}
        for family, models in FAMILIES.items():
            for model in models:
                requests = [member_request(q, model) for q in queries]
                timed_posts(f"{urls[family]}/predict", requests[:5])
                direct[model] = timed_posts(f"{urls[family]}/predict", requests)
        proxy_env = {"PYTHONPATH": str(BENCHMARKS_DIR), "CHRONOTICK_PROXY_BACKEND": urls["chronos"]}
        proxy = stack.enter_context(serve_in_process("passthrough_proxy:app", env=proxy_env))
        bolt_requests = [member_request(q, "chronos-bolt") for q in queries]
        targets = {
            "direct": (f"{urls['chronos']}/predict", bolt_requests),
            "proxy": (f"{proxy}/predict", bolt_requests),
            "gateway": (f"{gateway}/predict", encoded([{**q, "backends": ["chronos-bolt"]} for q in queries])),
        }
        interleaved_posts({name: (url, requests[:10]) for name, (url, requests) in targets.items()})
        # CPU time is not stretched by other work on the cores, unlike latency; it includes the
        # gateway's health polling (a few ms a second). Only the gateway's requests reach it.
        gateway_cpu_before = cpu_s(server_process(gateway))
        paired = interleaved_posts(targets)
        gateway_cpu_ms = (cpu_s(server_process(gateway)) - gateway_cpu_before) / len(bodies) * 1000.0
        httpx.post(f"{flaky}/control", json={"mode": "hang"}).raise_for_status()
        hanging_bodies = encoded([{**q, "deadline_s": args.deadline_s} for q in queries[: max(50, args.requests // 4)]])
        hanging = timed_posts(f"{gateway}/predict", hanging_bodies)

    slowest = max(direct, key=lambda m: np.median(direct[m]))
    overhead_ms = percentile_ms(fused, 50) - percentile_ms(direct[slowest], 50)
    lines = [
        "| measurement | p50 ms | p99 ms |",
        "|---|---|---|",
        f"| fused /predict, every backend up (7 models in 4 services, 2 test lines, 3 classical) | "
        f"{percentile_ms(fused, 50):.1f} | {percentile_ms(fused, 99):.1f} |",
        f"| the whole fleet's CPU time per fused request (every process above; its latency on {os.cpu_count()} cores "
        f"cannot go below {fleet_cpu_ms / os.cpu_count():.0f} ms) | {fleet_cpu_ms:.1f} | |",
        *[
            f"| {m} called directly with the gateway's member request | {percentile_ms(d, 50):.1f} | "
            f"{percentile_ms(d, 99):.1f} |"
            for m, d in direct.items()
        ],
        f"| gateway overhead over the slowest member ({slowest}), members sharing 2 cores | {overhead_ms:.1f} | |",
        "| *paired, back to back for each series:* | | |",
        f"| chronos-bolt called directly with the gateway's member request | "
        f"{percentile_ms(paired['direct'], 50):.1f} | {percentile_ms(paired['direct'], 99):.1f} |",
        f"| the same request through a pass-through FastAPI + httpx proxy (no gateway work) | "
        f"{percentile_ms(paired['proxy'], 50):.1f} | {percentile_ms(paired['proxy'], 99):.1f} |",
        f"| fused /predict with only chronos-bolt selected | {percentile_ms(paired['gateway'], 50):.1f} | "
        f"{percentile_ms(paired['gateway'], 99):.1f} |",
        f"| **gateway overhead**: fused (chronos-bolt only) minus chronos-bolt direct, median per series | "
        f"{paired_ms(paired['gateway'], paired['direct'])} | |",
        f"| the stack's floor: proxy minus direct, median per series | "
        f"{paired_ms(paired['proxy'], paired['direct'])} | |",
        f"| the gateway's work beyond that floor: fused (chronos-bolt only) minus proxy, median per series | "
        f"{paired_ms(paired['gateway'], paired['proxy'])} | |",
        f"| gateway process CPU time per request with only chronos-bolt selected | {gateway_cpu_ms:.1f} | |",
        f"| fused /predict with one backend hanging, deadline {args.deadline_s:g} s | "
        f"{percentile_ms(hanging, 50):.1f} | {percentile_ms(hanging, 99):.1f} |",
    ]
    load = f"1-minute load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    text = (
        f"{provenance('gateway_speed.py', sys.argv[1:])}; one client, one series per request; {load}.\n\n"
        + "\n".join(lines)
    )
    print(text)
    if args.write:
        figures = {
            "direct_p50_ms": percentile_ms(paired["direct"], 50),
            "proxy_p50_ms": percentile_ms(paired["proxy"], 50),
            "fused_bolt_only_p50_ms": percentile_ms(paired["gateway"], 50),
            "gateway_cpu_ms_per_request": gateway_cpu_ms,
            "one_backend_hanging_p99_ms": percentile_ms(hanging, 99),
        }
        write_record(args.write, "gateway_speed", f"### Gateway speed\n\n{text}", figures)


if __name__ == "__main__":
    main()
