"""The benchmark's outputs: results.json, results.md (Markdown tables), PNG plots and, with
``--report``, the same figures in the terminal (a rich table and a text chart).

Tables are built from the results document alone (``run.summarize``), so what the Markdown says
is exactly what the JSON holds. Plotting imports matplotlib lazily: the tables and JSON need
nothing beyond numpy.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from chronotick.bench.forecasters import FUSED
from chronotick.bench.run import SeriesResult
from chronotick.bench.sources import SYNTHETIC_FIRST_SEED
from chronotick.textplot import DEFAULT_WIDTH, Line, line_chart

TARGET_RATIO = 0.8
TARGET_COVERAGE80 = (0.75, 0.85)
TARGET_COVERAGE95 = (0.92, 0.97)
# Horizons (s) at which fused is compared with the best classical method.
COMPARED_HORIZONS = ("10", "60")


def _number(value: float, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _percent(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100.0 * value:.1f} %"


def _method_order(metrics: dict[str, Any], classical: list[str]) -> list[str]:
    """Fused first, then the models, then the classical forecasters."""
    names = list(metrics)
    models = sorted(n for n in names if n != FUSED and n not in classical)
    return ([FUSED] if FUSED in names else []) + models + sorted(n for n in names if n in classical)


def metrics_table(metrics: dict[str, Any], classical: list[str]) -> str:
    """One row per method and horizon: MAE, RMSE, p95 |error|, 80/95 % coverage, n."""
    lines = ["| method | horizon (s) | MAE (us) | RMSE (us) | p95 abs err (us) | cov 80 % | cov 95 % | n |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in _method_order(metrics, classical):
        label = f"{name} (classical)" if name in classical else name
        for horizon, m in metrics[name].items():
            lines.append(f"| {label} | {horizon} | {_number(m['mae_us'])} | {_number(m['rmse_us'])} | "
                         f"{_number(m['p95_abs_error_us'])} | {_percent(m['coverage80'])} | "
                         f"{_percent(m['coverage95'])} | {m['n']} |")
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def comparison_table(rows: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    """Per source: best classical at 10 s / 60 s, fused/best ratio, fused coverage against targets."""
    header = ["source"]
    for h in COMPARED_HORIZONS:
        header += [f"best classical @{h}s", f"fused/best @{h}s", f"<= {TARGET_RATIO}"]
    header += ["fused cov 80 % (@10s/@60s)", "fused cov 95 % (@10s/@60s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for source, metrics, comparison in rows:
        cells = [source]
        for h in COMPARED_HORIZONS:
            c = comparison.get(h, {})
            ratio = c.get("fused_over_best_classical", math.nan)
            cells += [f"{c.get('best_classical') or '-'} ({_number(c.get('best_classical_mae_us', math.nan))} us)",
                      _number(ratio), _verdict(ratio <= TARGET_RATIO if math.isfinite(ratio) else None)]
        fused = metrics.get(FUSED, {})
        for key, (low, high) in (("coverage80", TARGET_COVERAGE80), ("coverage95", TARGET_COVERAGE95)):
            values = [fused.get(h, {}).get(key, math.nan) for h in COMPARED_HORIZONS]
            ok = [low <= v <= high for v in values if math.isfinite(v)]
            cells.append(" / ".join(_percent(v) for v in values) + f" (in target: {_verdict(all(ok) if ok else None)})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _files_summary(results: dict[str, Any]) -> str:
    lines = ["| source | format | cadence (s) | samples (observed) | steps | gaps | bad lines | origins | skipped | problems |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for f in results["files"]:
        skipped = ", ".join(f"{reason}: {count}" for reason, count in f["skipped_origins"].items()) or "-"
        problems = "; ".join(f"{p} (x{n})" for p, n in f["problems"].items()) or "-"
        lines.append(f"| {f['source']} | {f['format']} | {f['interval_s']:g} | {f['grid_samples']} "
                     f"({f['observed_samples']}) | {f['steps']} | {f['gaps']} | {f['bad_lines']} | {f['origins']} "
                     f"| {skipped} | {problems} |")
    return "\n".join(lines)


def tables_markdown(results: dict[str, Any]) -> str:
    """The overall and per-file tables (what BENCHMARKS.md records)."""
    overall = results["overall"]
    classical = overall["classical"]
    rows = [("overall (pooled)", overall["metrics"], overall["comparison"])]
    rows += [(Path(f["source"]).name, f["metrics"], f["comparison"]) for f in results["files"]]
    mean_mae = overall["mean_of_file_mae_us"]
    mean_lines = ["| method | " + " | ".join(f"{h:g} s" for h in results["config"]["horizons_s"]) + " |",
                  "|---|" + "---:|" * len(results["config"]["horizons_s"])]
    for name in _method_order(mean_mae, classical):
        mean_lines.append(f"| {name} | " + " | ".join(_number(v) for v in mean_mae[name].values()) + " |")
    latency = results["latency_ms"]
    parts = [
        "### Fused vs best classical (targets: ratio <= 0.8; coverage 75-85 % / 92-97 %)",
        "The best classical method is chosen per source and per horizon by its MAE (an oracle choice).",
        comparison_table(rows),
        f"### Overall (pooled over {overall['origins']} origins)",
        metrics_table(overall["metrics"], classical),
        "### Mean of per-file MAEs (us)",
        "\n".join(mean_lines),
    ]
    for f in results["files"]:
        parts += [f"### {f['source']} ({f['origins']} origins)", metrics_table(f["metrics"], classical)]
    if latency.get("calls"):
        parts.append(f"Gateway latency per call ({latency['calls']} calls, up to {results['config']['batch']} "
                     f"origins each): p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms.")
    return "\n\n".join(parts)


def results_markdown(results: dict[str, Any], header: str) -> str:
    config = results["config"]
    failures = results["failures"]
    synthetic = any(f["format"] == "synthetic" for f in results["files"])
    parts = [
        "# Accuracy benchmark", header,
        f"Rolling-origin backtest: an origin every {config['stride_s']:g} s, context {config['context']} samples "
        f"(missing samples sent as null), horizons {', '.join(f'{h:g}' for h in config['horizons_s'])} s. "
        f"Origins whose context starts within the first {config['skip_start_s']:g} s of a source (start-up "
        "transient), or whose context or truth window crosses a detected clock step, are skipped. "
        "Truth is the observed offset at origin + horizon (missing truths are not scored). Fused intervals are "
        "the gateway's quantiles; members' are mean +- 1.2816 / 1.96 x their calibrated std.",
    ]
    if synthetic:
        parts.append(f"Synthetic clocks use seeds from {SYNTHETIC_FIRST_SEED} up (one per scenario); training uses "
                     "seeds below 20000, so no synthetic clock evaluated here was seen in training.")
    parts += ["## Sources", _files_summary(results)]
    if failures:
        parts += ["## Sources that could not be used",
                  "\n".join(f"- `{f['path']}`: {f['reason']}" for f in failures)]
    parts += ["## Results", tables_markdown(results)]
    return "\n\n".join(parts) + "\n"


def terminal_table(results: dict[str, Any]) -> Any:
    """The pooled metrics as a rich table (``--report``): one row per method and horizon."""
    from rich.table import Table

    overall = results["overall"]
    table = Table(title=f"Overall, pooled over {overall['origins']} origins")
    for header in ("method", "horizon (s)", "MAE (us)", "RMSE (us)", "p95 abs err (us)", "cov 80 %", "cov 95 %", "n"):
        table.add_column(header, justify="left" if header == "method" else "right")
    for name in _method_order(overall["metrics"], overall["classical"]):
        label = f"{name} (classical)" if name in overall["classical"] else name
        for horizon, m in overall["metrics"][name].items():
            table.add_row(label, horizon, _number(m["mae_us"]), _number(m["rmse_us"]), _number(m["p95_abs_error_us"]),
                          _percent(m["coverage80"]), _percent(m["coverage95"]), str(m["n"]))
    return table


# One marker per method of the text chart, so it reads without colour.
_TEXT_MARKERS = ("●", "x", "+", "•", "*", "o", "#", "@", "%", "&")


def mae_text_plot(results: dict[str, Any], *, width: int = DEFAULT_WIDTH, color: bool = False) -> str:
    """MAE against horizon per method (pooled), as a text chart: the PNG's terminal twin."""
    overall = results["overall"]
    methods = _method_order(overall["metrics"], overall["classical"])
    lines = [Line(method, [float(h) for h in overall["metrics"][method]],
                  [m["mae_us"] for m in overall["metrics"][method].values()],
                  _TEXT_MARKERS[k % len(_TEXT_MARKERS)]) for k, method in enumerate(methods)]
    return line_chart(lines, title="MAE vs horizon (pooled)", x_label="horizon (s)", y_label="MAE (us)",
                      width=width, color=color)


def _json_safe(value: Any) -> Any:
    """NaN and infinities (a metric with nothing to score) become null: strict JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def write_outputs(out_dir: Path, results: dict[str, Any], header: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(_json_safe(results), indent=1, allow_nan=False))
    (out_dir / "results.md").write_text(results_markdown(results, header))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", Path(text).name or text).strip("_")


def write_plots(out_dir: Path, results: dict[str, Any], series_results: list[SeriesResult]) -> list[Path]:
    """MAE against horizon per method (per file and overall), and a fused trace per file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    classical = results["overall"]["classical"]
    panels = [("overall", results["overall"]["metrics"])] + [(f["source"], f["metrics"]) for f in results["files"]]
    for name, metrics in panels:
        if not metrics:
            continue
        figure, axes = plt.subplots(figsize=(6, 4))
        for method in _method_order(metrics, classical):
            horizons = [float(h) for h in metrics[method]]
            mae = [m["mae_us"] for m in metrics[method].values()]
            axes.plot(horizons, mae, marker="o", linestyle="--" if method in classical else "-",
                      linewidth=2.5 if method == FUSED else 1.2, label=method)
        axes.set(xlabel="horizon (s)", ylabel="MAE (us)", title=f"MAE vs horizon: {Path(name).name}")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        path = out_dir / f"mae_{_slug(name)}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    for result in series_results:
        if result.trace:
            written.append(_trace_plot(plt, out_dir, result))
    return written


def _trace_plot(plt: Any, out_dir: Path, result: SeriesResult) -> Path:
    trace = result.trace
    interval = trace["interval_s"]
    figure, axes = plt.subplots(figsize=(10, 4))
    times = [i * interval for i in trace["time_index"]]
    axes.plot(times, trace["observed_us"], color="black", linewidth=0.8, marker=".", markersize=2, label="observed")
    for j, (origin, mean, quantiles) in enumerate(zip(trace["origins"], trace["mean_us"], trace["quantiles_us"])):
        steps = [(origin + k) * interval for k in range(len(mean))]
        axes.fill_between(steps, quantiles[0], quantiles[4], color="tab:blue", alpha=0.12,
                          label="fused 95 %" if j == 0 else None)
        axes.fill_between(steps, quantiles[1], quantiles[3], color="tab:blue", alpha=0.25,
                          label="fused 80 %" if j == 0 else None)
        axes.plot(steps, mean, color="tab:blue", linewidth=1.2, label="fused mean" if j == 0 else None)
    axes.set(xlabel="time since start of source (s)", ylabel="offset (us)",
             title=f"Fused forecasts from consecutive origins: {Path(result.series.name).name}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    path = out_dir / f"trace_{_slug(result.series.name)}.png"
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path
