"""What the gateway's classical fallback costs per request: its three members on one series.

The classical members run on the gateway's event loop for every request, whatever the load
(``members.classical_members``): each forecasts the real origin and every backtest cut of a
512-sample context. This times that work, in process, per single-series request, and how much
of a 1 s deadline 32 such requests arriving together would take on one core.

    .venvs/gateway/bin/python benchmarks/classical_cost.py --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import time
from pathlib import Path

from chronotick.baselines import CLASSICAL_FORECASTERS
from chronotick.contract import SeriesInput
from chronotick_gateway.members import classical_members
from chronotick_gateway.predict import series_plan
from chronotick_gateway.settings import GatewaySettings
from record import CONTEXT, HORIZON, clock_series, provenance, write_record

CLIENTS = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()

    origins = GatewaySettings().backtest_origins
    plans = [
        series_plan(SeriesInput.model_validate(clock_series(seed)), 0, HORIZON, origins, True)
        for seed in range(args.requests)
    ]
    forecasters = [f.name for f in CLASSICAL_FORECASTERS]
    load_before = os.getloadavg()[0]
    per_member: dict[str, list[float]] = {name: [] for name in forecasters}
    per_request_ms = []

    async def requests() -> None:  # one event loop, as in the gateway
        for plan in plans:
            started = time.perf_counter()
            results = await classical_members(forecasters, [plan], HORIZON, deadline=math.inf)
            per_request_ms.append((time.perf_counter() - started) * 1000.0)
            assert all(r.ok for r in results), [(r.name, r.reason) for r in results]
            for result in results:
                per_member[result.name].append((result.latency_s or 0.0) * 1000.0)

    asyncio.run(requests())
    median_ms = statistics.median(per_request_ms)
    lines = [
        f"Context {CONTEXT} samples, horizon {HORIZON}, {origins} backtest origins, {args.requests} single-series "
        f"requests, one after the other (load average {load_before:.1f} at the start).",
        "",
        "| work | median ms | p90 ms |",
        "|---|---|---|",
        *(
            f"| {name} (real origin and every cut) | {statistics.median(ms):.2f} | "
            f"{statistics.quantiles(ms, n=10)[-1]:.2f} |"
            for name, ms in per_member.items()
        ),
        f"| all three, per request | {median_ms:.2f} | {statistics.quantiles(per_request_ms, n=10)[-1]:.2f} |",
        "",
        f"{CLIENTS} requests arriving together: {CLIENTS * median_ms:.0f} ms of one core, "
        f"{CLIENTS * median_ms / 10:.0f} % of the default 1 s deadline.",
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_record(
            args.write,
            "classical-cost",
            "## The classical fallback's cost per request (issue 15)\n\n"
            + provenance("classical_cost.py", ["--write", str(args.write)])
            + "\n\n"
            + table,
        )


if __name__ == "__main__":
    main()
