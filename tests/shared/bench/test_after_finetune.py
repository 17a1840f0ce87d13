"""`bench --after-finetune DIR` never evaluates an origin at or before the fine-tuning cut."""

import json
from pathlib import Path

import numpy as np

from chronotick.bench.__main__ import main
from chronotick.bench.run import BenchConfig, plan_series
from chronotick.bench.sources import read_log
from chronotick.finetune import split_log, write_record
from support.clock_log import write_csv_log

HORIZON = 60


def test_no_evaluated_origin_or_truth_lies_at_or_before_the_cut(tmp_path: Path):
    log = write_csv_log(tmp_path / "clock.csv", 3000)
    cut_s = split_log(log, 0.5).cut_time_s
    series = read_log(log)
    config = BenchConfig(horizons_s=[1.0, 60.0], context=512, stride_s=1.0, skip_start_s=0.0, after_time_s=cut_s)
    _, _, plan = plan_series(series, config)
    _, _, uncut = plan_series(series, BenchConfig(horizons_s=[1.0, 60.0], context=512, stride_s=1.0, skip_start_s=0.0))
    assert plan.origins.size > 0 and plan.skipped["at or before the fine-tuning cut"] > 0
    assert uncut.origins.min() < np.searchsorted(series.time_s, cut_s)  # without the cut, earlier origins are used
    # Origin o forecasts from offsets[o - context : o]; its first truth is offsets[o].
    assert np.all(series.time_s[plan.origins - 1] > cut_s)
    assert np.all(series.time_s[plan.origins] > cut_s)
    # The very first origin after the cut is kept: the context may reach back into the tuning data.
    assert series.time_s[plan.origins.min() - 1] == cut_s + 1.0
    assert series.time_s[plan.origins.min() - 512] <= cut_s


def test_the_command_reads_the_cut_from_the_finetune_record(tmp_path: Path):
    log = write_csv_log(tmp_path / "clock.csv", 3000)
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    cut_s = split_log(log, 0.5).cut_time_s
    write_record(tuned, {"cut_time_s": cut_s})
    out = tmp_path / "out"
    args = [
        str(log),
        "--in-process",
        "--after-finetune",
        str(tuned),
        "--skip-start-s",
        "0",
        "--stride-s",
        "10",
        "--out",
        str(out),
        "--no-plots",
        "--no-progress",
    ]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["after_time_s"] == cut_s
    kept = results["files"][0]["origins"]
    assert kept > 0 and results["files"][0]["skipped_origins"]["at or before the fine-tuning cut"] > 0
    # The cut is at 1499 s (half of the 2999 s span): candidates every 10 s from the context (512) on, kept from
    # the first whose last context sample (origin - 1) is after the cut, to the last with a full horizon.
    assert cut_s == read_log(log).time_s[1499]
    assert kept == len(range(1502, 3000 - HORIZON + 1, 10))
