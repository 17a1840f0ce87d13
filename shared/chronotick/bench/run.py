"""The backtest loop: origins of every series, forecast in batches, scored per file and overall."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from chronotick.bench.forecasters import FUSED, BatchAnswer
from chronotick.bench.metrics import Forecasts, method_metrics
from chronotick.bench.origins import OriginPlan, horizon_steps, select_origins
from chronotick.bench.sources import EvalSeries, SourceFailure

# Fused paths kept per file for the trace plot: at most this many origins of its first batch.
TRACE_ORIGINS = 8


class Forecaster(Protocol):
    def forecast(
        self, contexts: list[np.ndarray], interval_s: float, horizon: int, columns: np.ndarray
    ) -> BatchAnswer: ...


# With this stride the three 1 Hz scion logs (2,107 origins) took 12.6 min against the whole fleet
# (7 micro models in 4 services, batches of 16 origins) on 2 cores; see BENCHMARKS.md.
DEFAULT_STRIDE_S = 30.0
# Origins per gateway call: each is 7 contexts per model member, so 16 stays well inside a 30 s deadline.
DEFAULT_BATCH = 16


@dataclass(frozen=True)
class BenchConfig:
    horizons_s: list[float] = field(default_factory=lambda: [1.0, 10.0, 30.0, 60.0])
    context: int = 512
    stride_s: float = DEFAULT_STRIDE_S
    skip_start_s: float = 1200.0
    batch: int = DEFAULT_BATCH
    # A fine-tuning cut (``chronotick.finetune``): only origins whose last context sample is strictly later.
    after_time_s: float | None = None


def first_origin_after(series: EvalSeries, after_time_s: float | None) -> int:
    """The first origin whose last context sample (index origin - 1) lies strictly after ``after_time_s``.

    Synthetic clocks (no times) were never tuned on and are not cut.
    """
    if after_time_s is None or series.time_s is None:
        return 0
    return int(np.searchsorted(series.time_s, after_time_s, side="right")) + 1


@dataclass
class SeriesResult:
    """Everything measured on one series; arrays are (O, K) over origins and horizons."""

    series: EvalSeries
    origins: np.ndarray
    skipped: Counter[str]
    truth_us: np.ndarray
    methods: dict[str, Forecasts]
    classical: set[str]
    latencies_s: list[float]
    problems: Counter[str]
    trace: dict[str, Any] | None = None


def empty_forecasts(shape: tuple[int, int]) -> Forecasts:
    return Forecasts(*(np.full(shape, np.nan) for _ in range(5)))


def store_rows(target: Forecasts, rows: slice, values: Forecasts) -> None:
    for name in ("mean_us", "lower80_us", "upper80_us", "lower95_us", "upper95_us"):
        getattr(target, name)[rows] = getattr(values, name)


def plan_series(series: EvalSeries, config: BenchConfig) -> tuple[np.ndarray, int, OriginPlan]:
    """Step column of each horizon (-1: not on this grid), the forecast horizon in steps, the origins."""
    steps = horizon_steps(config.horizons_s, series.interval_s)
    columns = np.array([steps.get(h, 0) - 1 for h in config.horizons_s], dtype=np.int64)
    horizon = max(steps.values(), default=0)
    if horizon == 0:
        reason = f"no horizon is a whole number of its {series.interval_s:g} s cadence (see --horizons)"
        return columns, 0, OriginPlan(np.empty(0, np.int64), Counter({reason: 1}))
    return (
        columns,
        horizon,
        select_origins(
            series.offsets_us,
            series.step_indices,
            interval_s=series.interval_s,
            context=config.context,
            horizon=horizon,
            stride_s=config.stride_s,
            skip_start_s=config.skip_start_s,
            first_origin=first_origin_after(series, config.after_time_s),
        ),
    )


def truth_at(series: EvalSeries, origins: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(O, K) observed offsets at each origin's horizons (NaN: missing, or a horizon not on the grid)."""
    truth = np.full((origins.size, columns.size), np.nan)
    for k, column in enumerate(columns):
        if column >= 0:
            truth[:, k] = series.offsets_us[origins + column]
    return truth


def evaluate_series(
    series: EvalSeries, forecaster: Forecaster, config: BenchConfig, progress: Callable[[int], None] = lambda _: None
) -> SeriesResult:
    """Forecast every kept origin of one series and collect truth and forecasts at the horizons."""
    columns, horizon, plan = plan_series(series, config)
    if horizon == 0:
        return SeriesResult(
            series, plan.origins, plan.skipped, np.empty((0, len(config.horizons_s))), {}, set(), [], Counter()
        )
    origins = plan.origins
    truth = truth_at(series, origins, columns)
    methods: dict[str, Forecasts] = {}
    classical: set[str] = set()
    latencies: list[float] = []
    problems: Counter[str] = Counter()
    trace = None
    for start in range(0, origins.size, config.batch):
        batch = origins[start : start + config.batch]
        contexts = [series.offsets_us[o - config.context : o] for o in batch]
        answer = forecaster.forecast(contexts, series.interval_s, horizon, columns)
        if answer.latency_s is not None:
            latencies.append(answer.latency_s)
        problems.update(answer.problems)
        classical |= answer.classical
        rows = slice(start, start + batch.size)
        for name, values in answer.methods.items():
            store_rows(methods.setdefault(name, empty_forecasts(truth.shape)), rows, values)
        if trace is None and answer.path_mean_us is not None:
            trace = _trace(series, batch, config.context, horizon, answer)
        progress(batch.size)
    return SeriesResult(series, origins, plan.skipped, truth, methods, classical, latencies, problems, trace)


def _trace(series: EvalSeries, batch: np.ndarray, context: int, horizon: int, answer: BatchAnswer) -> dict[str, Any]:
    """Fused paths from origins of one batch at least a horizon apart (so they do not overlap),
    with their quantiles and the observed offsets around them."""
    rows = [0]
    for row in range(1, batch.size):
        if len(rows) < TRACE_ORIGINS and batch[row] >= batch[rows[-1]] + horizon:
            rows.append(row)
    first, last = int(batch[0]), int(batch[rows[-1]]) + horizon
    lead = min(context, 4 * horizon)
    return {
        "interval_s": series.interval_s,
        "time_index": list(range(first - lead, last)),
        "observed_us": series.offsets_us[first - lead : last].tolist(),
        "origins": batch[rows].tolist(),
        "mean_us": answer.path_mean_us[rows].tolist(),
        "quantiles_us": answer.path_quantiles_us[rows].tolist(),
    }


def _metrics_table(truth: np.ndarray, methods: dict[str, Forecasts], horizons_s: list[float]) -> dict[str, Any]:
    return {
        name: {h: m.as_dict() for h, m in method_metrics(truth, f, horizons_s).items()} for name, f in methods.items()
    }


def _best_classical(metrics: dict[str, Any], classical: set[str], horizon: str) -> tuple[str | None, float]:
    candidates = [(metrics[name][horizon]["mae_us"], name) for name in classical if name in metrics]
    candidates = [(mae, name) for mae, name in candidates if math.isfinite(mae)]
    if not candidates:
        return None, math.nan
    mae, name = min(candidates)
    return name, mae


def comparison(metrics: dict[str, Any], classical: set[str], horizons_s: list[float]) -> dict[str, Any]:
    """Per horizon: the classical method with the lowest MAE, and fused MAE / its MAE."""
    out = {}
    for h in (f"{h:g}" for h in horizons_s):
        name, best = _best_classical(metrics, classical, h)
        fused = metrics.get(FUSED, {}).get(h, {}).get("mae_us", math.nan)
        out[h] = {
            "best_classical": name,
            "best_classical_mae_us": best,
            "fused_over_best_classical": fused / best if best and math.isfinite(best) else math.nan,
        }
    return out


def summarize(results: list[SeriesResult], failures: list[SourceFailure], config: BenchConfig) -> dict[str, Any]:
    """The results document: per file, pooled overall, mean of per-file MAEs, latency, failures."""
    horizons = config.horizons_s
    files = []
    for r in results:
        metrics = _metrics_table(r.truth_us, r.methods, horizons)
        files.append(
            {
                "source": r.series.name,
                "format": r.series.format,
                "interval_s": r.series.interval_s,
                "grid_samples": int(r.series.offsets_us.size),
                "observed_samples": int(np.isfinite(r.series.offsets_us).sum()),
                "steps": len(r.series.step_indices),
                "gaps": r.series.gaps,
                "bad_lines": r.series.bad_lines,
                "bad_line_examples": r.series.bad_line_examples,
                "origins": int(r.origins.size),
                "skipped_origins": dict(r.skipped),
                "problems": dict(r.problems),
                "classical": sorted(r.classical),
                "metrics": metrics,
                "comparison": comparison(metrics, r.classical, horizons),
            }
        )
    names = sorted({name for r in results for name in r.methods})
    pooled_methods = {}
    pooled_truth = np.concatenate([r.truth_us for r in results]) if results else np.empty((0, len(horizons)))
    for name in names:
        pooled_methods[name] = Forecasts.concatenate(
            [r.methods.get(name, empty_forecasts(r.truth_us.shape)) for r in results]
        )
    classical = set().union(*(r.classical for r in results)) if results else set()
    overall = _metrics_table(pooled_truth, pooled_methods, horizons)
    mean_file_mae = {
        name: {
            f"{h:g}": _nanmean([f["metrics"][name][f"{h:g}"]["mae_us"] for f in files if name in f["metrics"]])
            for h in horizons
        }
        for name in names
    }
    latencies = [s for r in results for s in r.latencies_s]
    return {
        "config": {
            "horizons_s": horizons,
            "context": config.context,
            "stride_s": config.stride_s,
            "skip_start_s": config.skip_start_s,
            "batch": config.batch,
            "after_time_s": config.after_time_s,
        },
        "files": files,
        "overall": {
            "origins": int(pooled_truth.shape[0]),
            "classical": sorted(classical),
            "metrics": overall,
            "comparison": comparison(overall, classical, horizons),
            "mean_of_file_mae_us": mean_file_mae,
        },
        "latency_ms": latency_summary(latencies),
        "failures": [{"path": f.path, "reason": f.reason} for f in failures],
    }


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def latency_summary(latencies_s: list[float]) -> dict[str, float | int]:
    if not latencies_s:
        return {"calls": 0}
    ms = np.asarray(latencies_s) * 1000.0
    return {
        "calls": int(ms.size),
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "max": float(ms.max()),
    }


def run_bench(
    series: list[EvalSeries],
    failures: list[SourceFailure],
    forecaster: Forecaster,
    config: BenchConfig,
    progress: Callable[[int], None] = lambda _: None,
) -> tuple[dict[str, Any], list[SeriesResult]]:
    results = [evaluate_series(s, forecaster, config, progress) for s in series]
    return summarize(results, failures, config), results
