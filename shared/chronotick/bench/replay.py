"""Replay mode: each log streamed to the gateway in time order as an agent would, its clock remembered.

Each series is one clock with its own id. Its origins follow one another every ``stride_s`` (the
``--replay-every-s`` of the command line), from the first whose context lies after the start-up
transient to the end of the log, and each is one request naming the clock, with the time of its
first context sample (``start_s``): the gateway scores the clock's earlier forecasts on the samples
that have arrived since and learns the clock's weights and bounds. A clock's requests go one at a
time, in order; different clocks run side by side.

Every origin is streamed as an agent would send it (also one whose context holds a clock step, or
whose truth is missing: an agent cannot know), except one with too few observations for the
gateway to forecast at all. The origins that are scored are those the rolling backtest would keep
(``origins.select_origins``) once the clock's warm-up (``score_after_s`` from its first request)
is over; each of them is also asked for without naming the clock, from the same gateway, so that
the stateless and the remembered forecast of one origin are scored side by side, against the best
classical member on the same origins.

An agent asks every second (``chronotick.agent``); scoring every one of its origins would ask the
gateway as often again without memory, the expensive way. ``score_every_s`` scores the origins of a
coarser grid (the same ones a replay at that cadence scores), and ``stream_for_s`` ends each
clock's stream early, so that a replay at the agent's own cadence takes minutes, not hours.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from chronotick.bench.forecasters import FUSED, FUSED_STATELESS, BatchAnswer
from chronotick.bench.metrics import Forecasts
from chronotick.bench.origins import candidate_origins, observed_counts
from chronotick.bench.run import (
    BenchConfig,
    SeriesResult,
    comparison,
    empty_forecasts,
    first_origin_after,
    latency_summary,
    plan_series,
    store_rows,
    summarize,
    truth_at,
)
from chronotick.bench.sources import EvalSeries, SourceFailure
from chronotick.clockid import MAX_CLOCK_ID_LENGTH, clock_id_from
from chronotick.contract import MIN_OBSERVED_SAMPLES

DEFAULT_EVERY_S = 10.0
DEFAULT_SCORE_AFTER_S = 1800.0
DEFAULT_CONCURRENCY = 4
# The two answers of each scored origin, in the order the report shows them.
MODES = {"stateless": FUSED_STATELESS, "memory": FUSED}


class ClockForecaster(Protocol):
    def forecast(
        self, contexts: list[np.ndarray], interval_s: float, horizon: int, columns: np.ndarray
    ) -> BatchAnswer: ...

    def forecast_clock(
        self,
        context: np.ndarray,
        interval_s: float,
        horizon: int,
        columns: np.ndarray,
        *,
        clock_id: str,
        start_s: float,
    ) -> BatchAnswer: ...

    def forget_clock(self, clock_id: str) -> None: ...


def replay_clock_ids(names: list[str], *, prefix: str | None, run_token: str) -> list[str]:
    """One clock id per series, from its log's file name: ``prefix`` + name, or without a prefix
    name + '.' + ``run_token`` (so that a run never meets the memory of an earlier one). Names that
    come out alike get -2, -3 ...; every id fits the contract's 128 characters (the prefix must be
    a valid start of one)."""
    head, tail = (prefix, "") if prefix is not None else ("", f".{run_token}")
    ids: list[str] = []
    for name in names:
        stem = clock_id_from(Path(name).name) or "clock"
        copy = 1
        while True:
            mark = "" if copy == 1 else f"-{copy}"
            candidate = head + stem[: MAX_CLOCK_ID_LENGTH - len(head) - len(mark) - len(tail)] + mark + tail
            if candidate not in ids:
                break
            copy += 1
        ids.append(candidate)
    return ids


@dataclass(frozen=True)
class ReplayPlan:
    """The origins streamed to one clock, in time order, and which of them are scored."""

    origins: np.ndarray  # (S,) int64 grid indices, stride_s apart (fewer where a context is too thin)
    scored: np.ndarray  # (S,) bool
    skipped: Counter[str] = field(default_factory=Counter)  # why candidates are not scored


def warm_up_reason(score_after_s: float) -> str:
    return f"in the clock's warm-up (its first {score_after_s:g} s)"


@dataclass(frozen=True)
class ReplayScoring:
    """Which streamed origins are scored, and how much of each log is streamed."""

    after_s: float = DEFAULT_SCORE_AFTER_S  # each clock's warm-up, from its first request: never scored
    every_s: float | None = None  # score only the origins of this coarser grid (None: every origin streamed)
    stream_for_s: float | None = None  # stream only this much of each log from its first origin (None: all)


def plan_replay(series: EvalSeries, config: BenchConfig, scoring: ReplayScoring) -> tuple[np.ndarray, int, ReplayPlan]:
    """Step column of each horizon, the forecast horizon in steps, and the replay's origins."""
    score_after_s = scoring.after_s
    scored_config = config if scoring.every_s is None else dataclasses.replace(config, stride_s=scoring.every_s)
    columns, horizon, fair = plan_series(series, scored_config)
    if horizon == 0:
        return columns, 0, ReplayPlan(np.empty(0, np.int64), np.empty(0, bool), fair.skipped)
    stream = candidate_origins(
        int(series.offsets_us.size),
        interval_s=series.interval_s,
        context=config.context,
        horizon=horizon,
        stride_s=config.stride_s,
        skip_start_s=config.skip_start_s,
    )
    stream = stream[stream >= first_origin_after(series, config.after_time_s)]
    stream = stream[observed_counts(series.offsets_us, stream, config.context) >= MIN_OBSERVED_SAMPLES]
    if scoring.stream_for_s is not None and stream.size:
        stream = stream[(stream - stream[0]) * series.interval_s < scoring.stream_for_s]
    fair_mask = np.isin(stream, fair.origins)
    warm = (stream - stream[0]) * series.interval_s < score_after_s if stream.size else np.empty(0, bool)
    skipped = Counter(fair.skipped)
    skipped[warm_up_reason(score_after_s)] = int((fair_mask & warm).sum())
    return columns, horizon, ReplayPlan(stream, fair_mask & ~warm, +skipped)


def grid_time_s(series: EvalSeries, index: int) -> float:
    """The time of grid sample ``index``: as the log wrote it, or seconds from a synthetic clock's start."""
    if series.time_s is not None:
        return float(series.time_s[index])
    return index * series.interval_s


@dataclass
class ReplayedSeries:
    """One clock's replay: its scored origins as a ``SeriesResult`` (the fused forecast with memory as
    ``fused``, without as ``fused-stateless``, the members as the stateless answers gave them)."""

    result: SeriesResult
    clock_id: str
    streamed: int
    memory_states: Counter[str]
    stateless_latencies_s: list[float]


def _keep(
    methods: dict[str, Forecasts],
    shape: tuple[int, int],
    row: int,
    answer: BatchAnswer,
    rename: dict[str, str] | None = None,
    only: set[str] | None = None,
) -> None:
    for name, values in answer.methods.items():
        if only is None or name in only:
            target = methods.setdefault((rename or {}).get(name, name), empty_forecasts(shape))
            store_rows(target, slice(row, row + 1), values)


def replay_series(
    series: EvalSeries,
    clock_id: str,
    forecaster: ClockForecaster,
    config: BenchConfig,
    scoring: ReplayScoring,
    progress: Callable[[int], None] = lambda _: None,
) -> ReplayedSeries:
    """Stream one clock's origins in order, one request at a time; answer each scored one twice."""
    columns, horizon, plan = plan_replay(series, config, scoring)
    scored = plan.origins[plan.scored]
    truth = truth_at(series, scored, columns)
    methods: dict[str, Forecasts] = {}
    classical: set[str] = set()
    latencies: list[float] = []
    stateless_latencies: list[float] = []
    problems: Counter[str] = Counter()
    states: Counter[str] = Counter()
    row = 0
    for origin, is_scored in zip(plan.origins.tolist(), plan.scored.tolist(), strict=True):
        context = series.offsets_us[origin - config.context : origin]
        remembered = forecaster.forecast_clock(
            context,
            series.interval_s,
            horizon,
            columns,
            clock_id=clock_id,
            start_s=grid_time_s(series, origin - config.context),
        )
        problems.update(remembered.problems)
        if remembered.latency_s is not None:
            latencies.append(remembered.latency_s)
        if remembered.methods and not remembered.memory:
            problems["the answer says nothing of the clock's memory (a gateway without it?)"] += 1
        if is_scored:
            states.update(entry.get("state", "?") for entry in remembered.memory)
            stateless = forecaster.forecast([context], series.interval_s, horizon, columns)
            # the fused answer, and the members only a named clock has (the gateway's online-ar)
            only_named = set(remembered.methods) - set(stateless.methods)
            _keep(methods, truth.shape, row, remembered, only={FUSED} | only_named)
            problems.update(f"stateless: {problem}" for problem in stateless.problems)
            if stateless.latency_s is not None:
                stateless_latencies.append(stateless.latency_s)
            classical |= stateless.classical
            _keep(methods, truth.shape, row, stateless, rename={FUSED: FUSED_STATELESS})
            row += 1
        progress(1)
    result = SeriesResult(series, scored, plan.skipped, truth, methods, classical, latencies, problems)
    return ReplayedSeries(result, clock_id, int(plan.origins.size), states, stateless_latencies)


def side_by_side(metrics: dict[str, Any], classical: set[str], horizons_s: list[float]) -> dict[str, Any]:
    """Per horizon: the best classical method (by MAE, on the same origins), and for each mode the fused
    MAE, its ratio to that best classical MAE, the 80 % and 95 % coverage and the origins scored."""
    out = {}
    for h, best in comparison(metrics, classical, horizons_s).items():
        entry: dict[str, Any] = {
            "best_classical": best["best_classical"],
            "best_classical_mae_us": best["best_classical_mae_us"],
        }
        for mode, name in MODES.items():
            m = metrics.get(name, {}).get(h, {})
            mae = m.get("mae_us", math.nan)
            reference = best["best_classical_mae_us"]
            ratio = mae / reference if reference and math.isfinite(reference) else math.nan
            entry[mode] = {
                "mae_us": mae,
                "ratio": ratio,
                "coverage80": m.get("coverage80", math.nan),
                "coverage95": m.get("coverage95", math.nan),
                "n": m.get("n", 0),
            }
        out[h] = entry
    return out


def _mean_ratios(files: list[dict[str, Any]], horizons_s: list[float]) -> dict[str, Any]:
    """Per horizon and mode, the mean over clocks of each clock's ratio (every clock weighs the same)."""
    out = {}
    for h in (f"{h:g}" for h in horizons_s):
        out[h] = {}
        for mode in MODES:
            ratios = [f["comparison"][h][mode]["ratio"] for f in files]
            finite = [r for r in ratios if math.isfinite(r)]
            out[h][mode] = float(np.mean(finite)) if finite else math.nan
    return out


def replay_summary(
    results: dict[str, Any], replayed: list[ReplayedSeries], config: BenchConfig, scoring: ReplayScoring
) -> dict[str, Any]:
    """The replay's own part of the results document (``results["replay"]``)."""
    horizons = config.horizons_s
    files = [
        {
            "source": r.result.series.name,
            "clock_id": r.clock_id,
            "streamed_origins": r.streamed,
            "scored_origins": int(r.result.origins.size),
            "memory_states": dict(r.memory_states),
            "comparison": side_by_side(f["metrics"], set(f["classical"]), horizons),
        }
        for r, f in zip(replayed, results["files"], strict=True)
    ]
    overall = results["overall"]
    return {
        "every_s": config.stride_s,
        "score_after_s": scoring.after_s,
        "score_every_s": scoring.every_s if scoring.every_s is not None else config.stride_s,
        "stream_for_s": scoring.stream_for_s,
        "streamed_origins": sum(r.streamed for r in replayed),
        "overall": {
            "comparison": side_by_side(overall["metrics"], set(overall["classical"]), horizons),
            "mean_of_clock_ratios": _mean_ratios(files, horizons),
            "memory_states": dict(sum((r.memory_states for r in replayed), Counter())),
        },
        "files": files,
        "latency_ms": {
            "memory": latency_summary([s for r in replayed for s in r.result.latencies_s]),
            "stateless": latency_summary([s for r in replayed for s in r.stateless_latencies_s]),
        },
    }


def run_replay(
    series: list[EvalSeries],
    failures: list[SourceFailure],
    forecaster: ClockForecaster,
    config: BenchConfig,
    *,
    clock_ids: list[str],
    scoring: ReplayScoring = ReplayScoring(),
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Callable[[int], None] = lambda _: None,
) -> tuple[dict[str, Any], list[SeriesResult]]:
    """Forget every clock (so each starts cold), replay them, ``concurrency`` clocks at a time, and
    summarise: the usual results document plus its ``replay`` part."""
    for clock_id in clock_ids:
        forecaster.forget_clock(clock_id)
    lock = threading.Lock()

    def counted(done: int) -> None:
        with lock:
            progress(done)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        replayed = list(
            pool.map(
                lambda pair: replay_series(pair[0], pair[1], forecaster, config, scoring, counted),
                zip(series, clock_ids, strict=True),
            )
        )
    results = summarize([r.result for r in replayed], failures, config)
    results["replay"] = replay_summary(results, replayed, config, scoring)
    return results, [r.result for r in replayed]


def streamed_origins(series: list[EvalSeries], config: BenchConfig, scoring: ReplayScoring) -> int:
    """How many requests with memory a replay of ``series`` sends (for a progress bar)."""
    return sum(plan_replay(s, config, scoring)[2].origins.size for s in series)
