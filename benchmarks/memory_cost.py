"""What a warm clock's memory costs the gateway per request, in process, stage by stage.

Every warm request reads its clock's state, teaches it the new samples, scores the answers whose
truth has arrived (both weighting rules and the conformal tracker, at each anchor), recalls the
weights and bounds for the answer, remembers the answer and writes the state back, all on the
gateway's one event loop (``clocks.ClockMemory.recall``, ``predict``, ``fusion.answer.fuse_remembered``). This
replays one synthetic clock asked every 5 s by an agent, with the fleet's eleven members, and
times each of those stages (process time, the median of ``--repeats`` passes over the requests).

    .venvs/gateway/bin/python benchmarks/memory_cost.py --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from chronotick.contract import DEFAULT_QUANTILE_LEVELS
from chronotick.synthetic import generate_clock
from chronotick_gateway.clocks import learn_motion
from chronotick_gateway.memory import (
    ClockState,
    Samples,
    decode,
    encode,
    remember,
    remembered_bounds,
    score,
    step_weights,
    weightless_members,
)
from record import CONTEXT, HORIZON, provenance, publish

MEMBERS = (
    "chronos-bolt",
    "chronos-2",
    "timesfm-2.5",
    "ttm",
    "ttm-exog",
    "toto",
    "timemoe",
    "last-value",
    "chrony-fit",
    "kalman",
    "online-ar",
)
EVERY_S = 5
WARM_UP = 60  # requests before timing: every anchor has scored answers, the pending list is full
STAGES = ("decode", "learn motion", "score", "recall", "remember", "encode")


def member_forecasts(history: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each member: the last value plus a random walk of its own (what they forecast does not change
    the work, only the numbers)."""
    last = float(history[np.isfinite(history)][-1])
    return {name: last + np.cumsum(rng.normal(0.0, 0.3, HORIZON)) for name in MEMBERS}


def replay(offsets: np.ndarray, requests: int, seed: int) -> dict[str, list[float]]:
    """Seconds per stage of each timed request."""
    rng = np.random.default_rng(seed)
    stored = encode(ClockState(interval_s=1.0))
    spent: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def timed(stage: str, step: Callable[[], object], keep: bool) -> object:
        started = time.process_time()
        result = step()
        if keep:
            spent[stage].append(time.process_time() - started)
        return result

    for k in range(WARM_UP + requests):
        end = CONTEXT + EVERY_S * k
        samples = Samples.on_grid(float(end - CONTEXT), 1.0, offsets[end - CONTEXT : end])
        keep = k >= WARM_UP
        state: ClockState = timed("decode", lambda: decode(stored), keep)  # type: ignore[assignment]
        timed("learn motion", lambda: learn_motion(state, samples), keep)
        timed("score", lambda: score(state, samples), keep)
        members = member_forecasts(samples.offsets_us, rng)
        means = np.stack(list(members.values()))
        timed(
            "recall",
            lambda: (
                weightless_members(state, list(members), HORIZON),
                step_weights(state, list(members), HORIZON),
                remembered_bounds(state, DEFAULT_QUANTILE_LEVELS, HORIZON),
            ),
            keep,
        )
        fused = means.mean(axis=0)
        timed("remember", lambda: remember(state, samples.last_s, members, fused, np.ones(HORIZON), True), keep)
        stored = timed("encode", lambda: encode(state), keep)  # type: ignore[assignment]
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()

    length = CONTEXT + EVERY_S * (WARM_UP + args.requests)
    offsets = generate_clock("mixed", length, seed=7).observed_offset_us
    passes = [replay(offsets, args.requests, seed) for seed in range(args.repeats)]
    per_stage_ms = {stage: statistics.median(1000.0 * statistics.mean(p[stage]) for p in passes) for stage in STAGES}
    total_ms = statistics.median(1000.0 * sum(statistics.mean(p[stage]) for stage in STAGES) for p in passes)
    lines = [
        f"One synthetic clock asked every {EVERY_S} s, {len(MEMBERS)} members, context {CONTEXT}, horizon {HORIZON}, "
        f"{args.requests} warm requests timed after {WARM_UP}; process time, the median of {args.repeats} passes.",
        "",
        "| stage | ms per request |",
        "|---|---:|",
        *(f"| {stage} | {per_stage_ms[stage]:.3f} |" for stage in STAGES),
        f"| **all** | **{total_ms:.3f}** |",
    ]
    table = "\n".join(lines)
    publish(
        f"### The clock memory's CPU per warm request\n\n{provenance('memory_cost.py', sys.argv[1:])}\n\n{table}",
        args.write,
        "memory_cost",
    )


if __name__ == "__main__":
    main()
