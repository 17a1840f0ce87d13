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

from chronotick.bench.forecasters import FUSED, FUSED_STATELESS
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
    """Fused first (with memory, then stateless, in replay mode), then the models, then the classical forecasters."""
    names = list(metrics)
    fused = [n for n in (FUSED, FUSED_STATELESS) if n in names]
    models = sorted(n for n in names if n not in fused and n not in classical)
    return fused + models + sorted(n for n in names if n in classical)


def metrics_table(metrics: dict[str, Any], classical: list[str]) -> str:
    """One row per method and horizon: MAE, RMSE, p95 |error|, 80/95 % coverage, n."""
    lines = [
        "| method | horizon (s) | MAE (us) | RMSE (us) | p95 abs err (us) | cov 80 % | cov 95 % | n |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in _method_order(metrics, classical):
        label = f"{name} (classical)" if name in classical else name
        for horizon, m in metrics[name].items():
            lines.append(
                f"| {label} | {horizon} | {_number(m['mae_us'])} | {_number(m['rmse_us'])} | "
                f"{_number(m['p95_abs_error_us'])} | {_percent(m['coverage80'])} | "
                f"{_percent(m['coverage95'])} | {m['n']} |"
            )
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
            cells += [
                f"{c.get('best_classical') or '-'} ({_number(c.get('best_classical_mae_us', math.nan))} us)",
                _number(ratio),
                _verdict(ratio <= TARGET_RATIO if math.isfinite(ratio) else None),
            ]
        fused = metrics.get(FUSED, {})
        for key, (low, high) in (("coverage80", TARGET_COVERAGE80), ("coverage95", TARGET_COVERAGE95)):
            values = [fused.get(h, {}).get(key, math.nan) for h in COMPARED_HORIZONS]
            ok = [low <= v <= high for v in values if math.isfinite(v)]
            cells.append(" / ".join(_percent(v) for v in values) + f" (in target: {_verdict(all(ok) if ok else None)})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _replay_rows(replay: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None, dict[str, Any]]]:
    """(source, clock id, memory states, comparison by horizon): pooled first, then each clock."""
    overall = replay["overall"]
    rows = [("overall (pooled)", "-", overall["memory_states"], overall["comparison"])]
    return rows + [
        (Path(f["source"]).name, f["clock_id"], f["memory_states"], f["comparison"]) for f in replay["files"]
    ]


def _states(states: dict[str, int] | None) -> str:
    return ", ".join(f"{state} {count}" for state, count in sorted(states.items())) if states else "-"


def replay_table(results: dict[str, Any]) -> str:
    """Stateless against with memory, per clock and horizon: fused MAE / best classical MAE, coverage."""
    replay = results["replay"]
    lines = [
        "| source | clock id | horizon (s) | best classical (MAE us) | fused/best stateless | fused/best memory "
        "| cov 80 % stateless | cov 80 % memory | cov 95 % stateless | cov 95 % memory | n | memory states |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for source, clock_id, states, comparison in _replay_rows(replay):
        for horizon, c in comparison.items():
            stateless, memory = c["stateless"], c["memory"]
            lines.append(
                f"| {source} | {clock_id} | {horizon} | {c['best_classical'] or '-'} "
                f"({_number(c['best_classical_mae_us'])}) | {_number(stateless['ratio'])} | {_number(memory['ratio'])} "
                f"| {_percent(stateless['coverage80'])} | {_percent(memory['coverage80'])} "
                f"| {_percent(stateless['coverage95'])} | {_percent(memory['coverage95'])} | {memory['n']} "
                f"| {_states(states)} |"
            )
    for horizon, mean in replay["overall"]["mean_of_clock_ratios"].items():
        lines.append(
            f"| mean of the clocks' ratios | - | {horizon} | - | {_number(mean['stateless'])} "
            f"| {_number(mean['memory'])} | | | | | | |"
        )
    return "\n".join(lines)


def _streamed_part(replay: dict[str, Any]) -> str:
    stream_for_s = replay.get("stream_for_s")
    return "" if stream_for_s is None else f" for the first {stream_for_s:g} s of each log"


def _scored_part(replay: dict[str, Any]) -> str:
    every_s = replay.get("score_every_s", replay["every_s"])
    if every_s == replay["every_s"]:
        return ""
    return (
        f"Origins are scored every {every_s:g} s only (the origins a replay at that cadence scores), as an "
        "agent's cadence would ask the stateless gateway far more often than its memory needs. "
    )


def replay_description(results: dict[str, Any]) -> str:
    replay = results["replay"]
    latency = replay["latency_ms"]
    text = (
        f"Replay: each log streamed to the gateway in time order as an agent would, {replay['streamed_origins']} "
        f"requests in all, an origin every {replay['every_s']:g} s{_streamed_part(replay)}, each request naming its "
        "clock (a clock id per log, forgotten before the run so that it starts cold) and sent after the clock's "
        f"previous one was answered. {_scored_part(replay)}Each scored origin was asked for twice from the same "
        "gateway: once naming the clock "
        "(memory: the gateway's weights and bounds learned from the clock's scored forecasts) and once naming "
        f"none (stateless). Only origins after each clock's first {replay['score_after_s']:g} s (its warm-up) "
        "are scored. The best classical method is the classical member with the lowest MAE on the same origins, "
        "per clock and horizon; memory states count the answers of the scored origins by how they used the memory."
    )
    if latency["memory"].get("calls") and latency["stateless"].get("calls"):
        text += (
            f" Latency per request: with memory p50 {latency['memory']['p50']:.0f} ms, p95 "
            f"{latency['memory']['p95']:.0f} ms; stateless p50 {latency['stateless']['p50']:.0f} ms, p95 "
            f"{latency['stateless']['p95']:.0f} ms."
        )
    return text


def _files_summary(results: dict[str, Any]) -> str:
    lines = [
        "| source | format | cadence (s) | samples (observed) | steps | gaps | bad lines | origins | skipped "
        "| problems |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for f in results["files"]:
        skipped = ", ".join(f"{reason}: {count}" for reason, count in f["skipped_origins"].items()) or "-"
        problems = "; ".join(f"{p} (x{n})" for p, n in f["problems"].items()) or "-"
        lines.append(
            f"| {f['source']} | {f['format']} | {f['interval_s']:g} | {f['grid_samples']} "
            f"({f['observed_samples']}) | {f['steps']} | {f['gaps']} | {f['bad_lines']} | {f['origins']} "
            f"| {skipped} | {problems} |"
        )
    return "\n".join(lines)


def headline_figures(results: dict[str, Any]) -> dict[str, float]:
    """The pooled fused MAE and its ratio to the best classical method per horizon, for the record
    (a horizon with no finite figure is left out: JSON has no NaN)."""
    overall = results["overall"]
    figures = {}
    for horizon, compared in overall["comparison"].items():
        fused_mae_us = overall["metrics"].get(FUSED, {}).get(horizon, {}).get("mae_us", math.nan)
        figures[f"fused_mae_us_{horizon}s"] = fused_mae_us
        figures[f"fused_over_best_classical_{horizon}s"] = compared["fused_over_best_classical"]
    return {name: float(value) for name, value in figures.items() if math.isfinite(value)}


def tables_markdown(results: dict[str, Any]) -> str:
    """The overall and per-file tables (what BENCHMARKS.md records)."""
    overall = results["overall"]
    classical = overall["classical"]
    rows = [("overall (pooled)", overall["metrics"], overall["comparison"])]
    rows += [(Path(f["source"]).name, f["metrics"], f["comparison"]) for f in results["files"]]
    mean_mae = overall["mean_of_file_mae_us"]
    mean_lines = [
        "| method | " + " | ".join(f"{h:g} s" for h in results["config"]["horizons_s"]) + " |",
        "|---|" + "---:|" * len(results["config"]["horizons_s"]),
    ]
    for name in _method_order(mean_mae, classical):
        mean_lines.append(f"| {name} | " + " | ".join(_number(v) for v in mean_mae[name].values()) + " |")
    latency = results["latency_ms"]
    parts = []
    if "replay" in results:
        parts += [
            f"### Replay: stateless vs with memory (origins after each clock's first "
            f"{results['replay']['score_after_s']:g} s)",
            replay_description(results),
            replay_table(results),
        ]
    parts += [
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
    if latency.get("calls") and "replay" not in results:
        parts.append(
            f"Gateway latency per call ({latency['calls']} calls, up to {results['config']['batch']} "
            f"origins each): p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms."
        )
    return "\n\n".join(parts)


def results_markdown(results: dict[str, Any], header: str) -> str:
    config = results["config"]
    failures = results["failures"]
    synthetic = any(f["format"] == "synthetic" for f in results["files"])
    kind = "Replay" if "replay" in results else "Rolling-origin backtest"
    parts = [
        "# Accuracy benchmark",
        header,
        f"{kind}: an origin every {config['stride_s']:g} s, context {config['context']} samples "
        f"(missing samples sent as null), horizons {', '.join(f'{h:g}' for h in config['horizons_s'])} s. "
        f"Origins whose context starts within the first {config['skip_start_s']:g} s of a source (start-up "
        "transient), or whose context or truth window crosses a detected clock step, are skipped. "
        "Truth is the observed offset at origin + horizon (missing truths are not scored). Fused intervals are "
        "the gateway's quantiles; members' are mean +- 1.2816 / 1.96 x their calibrated std.",
    ]
    if "replay" in results:
        parts.append(
            "In this replay (see Results), origins skipped by these rules are still streamed, as an agent "
            "would send them, but not scored; fused is the forecast with the clock's memory, fused-stateless "
            "the one without, and the members are scored as the stateless answers gave them."
        )
    if synthetic:
        parts.append(
            f"Synthetic clocks use seeds from {SYNTHETIC_FIRST_SEED} up (one per scenario); training uses "
            "seeds below 20000, so no synthetic clock evaluated here was seen in training."
        )
    parts += ["## Sources", _files_summary(results)]
    if failures:
        parts += ["## Sources that could not be used", "\n".join(f"- `{f['path']}`: {f['reason']}" for f in failures)]
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
            table.add_row(
                label,
                horizon,
                _number(m["mae_us"]),
                _number(m["rmse_us"]),
                _number(m["p95_abs_error_us"]),
                _percent(m["coverage80"]),
                _percent(m["coverage95"]),
                str(m["n"]),
            )
    return table


def replay_terminal_table(results: dict[str, Any]) -> Any:
    """The replay's side-by-side figures as a rich table (``--report`` in replay mode)."""
    from rich.table import Table

    replay = results["replay"]
    table = Table(
        title=f"Replay: stateless vs with memory, origins after each clock's first {replay['score_after_s']:g} s"
    )
    for header in (
        "source",
        "horizon (s)",
        "best classical",
        "fused/best stateless",
        "fused/best memory",
        "cov 80 % stateless",
        "cov 80 % memory",
        "cov 95 % stateless",
        "cov 95 % memory",
        "n",
    ):
        table.add_column(header, justify="left" if header in ("source", "best classical") else "right")
    for source, _, _, comparison in _replay_rows(replay):
        for horizon, c in comparison.items():
            stateless, memory = c["stateless"], c["memory"]
            table.add_row(
                source,
                horizon,
                f"{c['best_classical'] or '-'} ({_number(c['best_classical_mae_us'])} us)",
                _number(stateless["ratio"]),
                _number(memory["ratio"]),
                _percent(stateless["coverage80"]),
                _percent(memory["coverage80"]),
                _percent(stateless["coverage95"]),
                _percent(memory["coverage95"]),
                str(memory["n"]),
            )
    return table


# One marker per method of the text chart, so it reads without colour.
_TEXT_MARKERS = ("●", "x", "+", "•", "*", "o", "#", "@", "%", "&")


def mae_text_plot(results: dict[str, Any], *, width: int = DEFAULT_WIDTH, color: bool = False) -> str:
    """MAE against horizon per method (pooled), as a text chart: the PNG's terminal twin."""
    overall = results["overall"]
    methods = _method_order(overall["metrics"], overall["classical"])
    lines = [
        Line(
            method,
            [float(h) for h in overall["metrics"][method]],
            [m["mae_us"] for m in overall["metrics"][method].values()],
            _TEXT_MARKERS[k % len(_TEXT_MARKERS)],
        )
        for k, method in enumerate(methods)
    ]
    return line_chart(
        lines, title="MAE vs horizon (pooled)", x_label="horizon (s)", y_label="MAE (us)", width=width, color=color
    )


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
            axes.plot(
                horizons,
                mae,
                marker="o",
                linestyle="--" if method in classical else "-",
                linewidth=2.5 if method == FUSED else 1.2,
                label=method,
            )
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
    for j, (origin, mean, quantiles) in enumerate(
        zip(trace["origins"], trace["mean_us"], trace["quantiles_us"], strict=True)
    ):
        steps = [(origin + k) * interval for k in range(len(mean))]
        axes.fill_between(
            steps, quantiles[0], quantiles[4], color="tab:blue", alpha=0.12, label="fused 95 %" if j == 0 else None
        )
        axes.fill_between(
            steps, quantiles[1], quantiles[3], color="tab:blue", alpha=0.25, label="fused 80 %" if j == 0 else None
        )
        axes.plot(steps, mean, color="tab:blue", linewidth=1.2, label="fused mean" if j == 0 else None)
    axes.set(
        xlabel="time since start of source (s)",
        ylabel="offset (us)",
        title=f"Fused forecasts from consecutive origins: {Path(result.series.name).name}",
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    path = out_dir / f"trace_{_slug(result.series.name)}.png"
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path
