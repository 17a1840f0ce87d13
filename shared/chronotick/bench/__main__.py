"""Command line: ``python -m chronotick.bench PATH... [options]`` or ``--synthetic``.

Examples:
    python -m chronotick.bench ../shared/data/scion --write BENCHMARKS.md   # live gateway on :8000
    python -m chronotick.bench --synthetic --in-process                     # classical only, no fleet
    python -m chronotick.bench clock.log --after-finetune tuned/            # only after the fine-tuning cut
    python -m chronotick.bench clock.log --in-process --no-clean --report  # raw input; figures in the terminal
    python -m chronotick.bench ../shared/data/scion --replay --report     # streamed as agents would: memory vs none
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import sys
import time
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from chronotick.bench.forecasters import GatewayForecaster, GatewayRefused, InProcessForecaster
from chronotick.bench.records import new_record, publish_record
from chronotick.bench.replay import (
    DEFAULT_CONCURRENCY,
    DEFAULT_EVERY_S,
    DEFAULT_SCORE_AFTER_S,
    ReplayScoring,
    replay_clock_ids,
    run_replay,
    streamed_origins,
)
from chronotick.bench.report import (
    headline_figures,
    mae_text_plot,
    replay_terminal_table,
    tables_markdown,
    terminal_table,
    write_outputs,
    write_plots,
)
from chronotick.bench.run import DEFAULT_BATCH, DEFAULT_STRIDE_S, BenchConfig, plan_series, run_bench
from chronotick.bench.sources import (
    SYNTHETIC_LENGTH_S,
    EvalSeries,
    SourceFailure,
    log_files,
    read_log,
    synthetic_series,
)
from chronotick.contract import ClockId
from chronotick.finetune import read_cut_time_s
from chronotick.textplot import DEFAULT_WIDTH


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chronotick.bench",
        description="Rolling-origin accuracy benchmark of the fleet's fused forecast and its members on clock logs.",
    )
    parser.add_argument("paths", nargs="*", help="clock logs, or folders searched recursively for them")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="also evaluate one held-out synthetic clock per scenario (seeds >= 50000)",
    )
    parser.add_argument("--synthetic-length-s", type=int, default=SYNTHETIC_LENGTH_S)
    parser.add_argument(
        "--in-process", action="store_true", help="classical forecasters only, computed here (no fleet needed)"
    )
    parser.add_argument(
        "--gateway",
        default=os.environ.get("CHRONOTICK_GATEWAY_URL", "http://127.0.0.1:8000"),
        help="gateway base URL (env CHRONOTICK_GATEWAY_URL; default %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CHRONOTICK_API_KEY"),
        help="X-API-Key for the gateway (env CHRONOTICK_API_KEY)",
    )
    parser.add_argument("--horizons", default="1,10,30,60", help="horizons in seconds, comma-separated")
    parser.add_argument("--context", type=int, default=512, help="context length in grid samples")
    parser.add_argument(
        "--stride-s",
        type=float,
        help=f"seconds between origins (default {DEFAULT_STRIDE_S:g}; with --replay, see --replay-every-s)",
    )
    parser.add_argument(
        "--skip-start-s",
        type=float,
        default=1200.0,
        help="start-up transient at the start of each source, never in a context",
    )
    parser.add_argument(
        "--after-finetune",
        type=Path,
        metavar="DIR",
        help="a directory written by finetune: evaluate only origins strictly after its cut "
        "(the last sample it was tuned on); serve that checkpoint in the fleet",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help="origins per gateway call (1-256; with --replay every call is one origin)",
    )
    parser.add_argument("--deadline-s", type=float, default=30.0, help="deadline_s sent with each call")
    parser.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder")
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    parser.add_argument("--label", help="section label accuracy:<label> (default: synthetic, or the first path's name)")
    parser.add_argument(
        "--no-clean",
        action="store_true",
        help="forecast from the raw contexts: no spike removal (chronotick.cleaning); "
        "the truth is scored raw either way",
    )
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--report",
        action="store_true",
        help="also print the pooled metrics table and a text chart of MAE vs horizon per method",
    )
    parser.add_argument("--no-progress", action="store_true")
    replay = parser.add_argument_group(
        "replay",
        "Stream each log to the gateway in time order as an agent would, each request naming the log's "
        "clock, so that the gateway remembers it; every scored origin is also asked for without naming the clock, "
        "and the report sets the two side by side.",
    )
    replay.add_argument("--replay", action="store_true", help="replay mode (needs the gateway: not --in-process)")
    replay.add_argument(
        "--replay-every-s",
        type=float,
        default=DEFAULT_EVERY_S,
        help="seconds between a clock's origins (default %(default)g)",
    )
    replay.add_argument(
        "--score-after-s",
        type=float,
        default=DEFAULT_SCORE_AFTER_S,
        help="score only origins after each clock's first this many seconds, its warm-up (default %(default)g)",
    )
    replay.add_argument(
        "--score-every-s",
        type=float,
        help="score only the origins of this coarser grid, a multiple of --replay-every-s (default: "
        "every origin streamed); each scored origin is also asked for statelessly, the "
        "expensive way, so an agent's cadence of 1 s is replayed with, say, 10 here",
    )
    replay.add_argument(
        "--stream-for-s",
        type=float,
        help="stream only this many seconds of each log from its first origin (default: all of it)",
    )
    replay.add_argument(
        "--clock-prefix",
        help="clock ids are this prefix + the log's file name (default: the file name + a suffix "
        "unique to the run); each is forgotten at the gateway before the run, to start cold",
    )
    replay.add_argument(
        "--replay-concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="clocks replayed side by side (each clock's requests go one at a time; default %(default)d)",
    )
    return parser


def _check_replay(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.in_process:
        parser.error(
            "--replay measures the gateway's memory of each clock; the in-process forecasters have none "
            "(drop --in-process and point --gateway at a running gateway)"
        )
    if args.stride_s is not None:
        parser.error("--replay spaces each clock's origins by --replay-every-s, not --stride-s")
    if args.replay_every_s <= 0 or args.score_after_s < 0 or args.replay_concurrency < 1:
        parser.error("--replay-every-s must be positive, --score-after-s at least 0, --replay-concurrency at least 1")
    if args.score_every_s is not None:
        ratio = args.score_every_s / args.replay_every_s
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            parser.error(
                "--score-every-s must be a whole multiple of --replay-every-s: the scored origins are "
                "among those streamed"
            )
    if args.stream_for_s is not None and args.stream_for_s <= args.score_after_s:
        parser.error("--stream-for-s must be longer than --score-after-s: nothing after the warm-up would be scored")
    if args.clock_prefix is not None:
        try:
            TypeAdapter(ClockId).validate_python(args.clock_prefix + "x")
        except ValidationError as error:
            parser.error(f"--clock-prefix {args.clock_prefix!r} cannot start a clock id: {error.errors()[0]['msg']}")


def _collect(args: argparse.Namespace) -> tuple[list[EvalSeries], list[SourceFailure]]:
    series, failures = [], []
    for path in log_files(args.paths):
        item = read_log(path)
        (failures if isinstance(item, SourceFailure) else series).append(item)
    if args.synthetic:
        series += synthetic_series(args.synthetic_length_s)
    return series, failures


def _print_report(results: dict[str, object]) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console()
    if "replay" in results:
        console.print(replay_terminal_table(results))
    console.print(terminal_table(results))
    console.print(
        Text.from_ansi(mae_text_plot(results, width=min(DEFAULT_WIDTH, console.width), color=console.is_terminal))
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if not args.paths and not args.synthetic:
        _parser().error("give at least one PATH or --synthetic")
    if not 1 <= args.batch <= 256:
        _parser().error("--batch must be between 1 and 256")
    if args.replay:
        _check_replay(_parser(), args)
    after_time_s = None
    if args.after_finetune is not None:
        try:
            after_time_s = read_cut_time_s(args.after_finetune)
        except (ValueError, OSError) as error:
            _parser().error(f"--after-finetune: {error}")
    stride_s = args.replay_every_s if args.replay else (DEFAULT_STRIDE_S if args.stride_s is None else args.stride_s)
    config = BenchConfig(
        horizons_s=[float(h) for h in args.horizons.split(",")],
        context=args.context,
        stride_s=stride_s,
        skip_start_s=args.skip_start_s,
        batch=1 if args.replay else args.batch,
        after_time_s=after_time_s,
    )
    started = time.perf_counter()
    series, failures = _collect(args)
    for failure in failures:
        print(f"skipped {failure.path}: {failure.reason}", file=sys.stderr)
    if args.in_process:
        forecaster = InProcessForecaster(clean=not args.no_clean)
        mode = "in process (classical forecasters, their own uncalibrated std)"
    else:
        forecaster = GatewayForecaster(
            args.gateway,
            deadline_s=args.deadline_s,
            timeout_s=args.deadline_s + 30.0,
            api_key=args.api_key,
            clean=not args.no_clean,
        )
        mode = f"gateway {args.gateway}"
        fleet = forecaster.models()
        models = [
            f"{m['name']} ({s['name']}, version {m['model_version'][:12]})"
            for s in fleet["services"]
            if s["ready"] and s.get("info")
            for m in s["info"]["models"]
        ]
        mode += "; models: " + (", ".join(models) or "none ready") + "; classical: " + ", ".join(fleet["classical"])
    mode += "; input cleaning off" if args.no_clean else "; input cleaning on"
    if after_time_s is not None:
        mode += f"; only origins after the fine-tuning cut at {after_time_s:.3f} s ({args.after_finetune})"
    clock_ids: list[str] = []
    scoring = ReplayScoring(args.score_after_s, args.score_every_s, args.stream_for_s)
    if args.replay:
        run_token = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
        clock_ids = replay_clock_ids([s.name for s in series], prefix=args.clock_prefix, run_token=run_token)
        mode += (
            f"; replay: an origin every {args.replay_every_s:g} s per clock, scored after its first "
            f"{args.score_after_s:g} s"
        )
        if args.score_every_s is not None:
            mode += f", every {args.score_every_s:g} s"
        if args.stream_for_s is not None:
            mode += f"; the first {args.stream_for_s:g} s of each log streamed"
        mode += f", clocks {', '.join(clock_ids)}"
        total = streamed_origins(series, config, scoring)
    else:
        total = sum(plan_series(s, config)[2].origins.size for s in series)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="origin", desc="replay" if args.replay else "bench")
    progress = bar.update if bar else lambda _: None
    try:
        if args.replay:
            results, series_results = run_replay(
                series,
                failures,
                forecaster,
                config,
                clock_ids=clock_ids,
                scoring=scoring,
                concurrency=args.replay_concurrency,
                progress=progress,
            )
        else:
            results, series_results = run_bench(series, failures, forecaster, config, progress=progress)
    except GatewayRefused as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if bar:
            bar.close()
        if isinstance(forecaster, GatewayForecaster):
            forecaster.close()
    wall_s = time.perf_counter() - started
    results["mode"] = mode
    results["wall_s"] = wall_s
    header = f"Mode: {mode}.  \nWall time: {wall_s:.0f} s.  \nCommand: `python -m chronotick.bench {' '.join(argv)}`"
    write_outputs(args.out, results, header)
    if not args.no_plots:
        write_plots(args.out, results, series_results)
    if args.report:
        _print_report(results)
    if args.write:
        label = args.label or ("synthetic" if args.synthetic and not args.paths else Path(args.paths[0]).name)
        record = new_record(f"accuracy:{label}", "", f"python -m chronotick.bench {' '.join(argv)}")
        dirty = " (with uncommitted changes)" if record.dirty else ""
        provenance = (
            f"Command: `{record.command}`  \nCommit: `{record.commit}{dirty}`, {record.date[:10]}  \n"
            f"Machine: {record.machine}."
        )
        text = (
            f"## Accuracy: {label}\n\n{provenance}  \n"
            f"Mode: {mode}; wall time {wall_s:.0f} s.\n\n{tables_markdown(results)}"
        )
        titled = dataclasses.replace(
            record, markdown=text, title=f"Accuracy: {label}", figures=headline_figures(results)
        )
        publish_record(args.write, titled)
    print(
        f"{len(series)} sources, {results['overall']['origins']} origins, {len(failures)} unusable; "
        f"{wall_s:.0f} s; results in {args.out}/results.md"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
