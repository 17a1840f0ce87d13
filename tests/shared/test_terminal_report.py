"""The terminal views: ``predict --plot`` and ``bench --report`` rendered for known inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.console import Console
from typer.testing import CliRunner

from chronotick.bench.forecasters import InProcessForecaster
from chronotick.bench.report import mae_text_plot, terminal_table
from chronotick.bench.run import BenchConfig, run_bench
from chronotick.bench.sources import EvalSeries
from chronotick.cli import app
from chronotick.cli.forecast import forecast_plot, prepare_request
from chronotick.clockdata import read_clock_log
from chronotick.contract import FusedPredictResponse, SeriesForecast

HORIZON = 10


def known_forecast(tmp_path: Path) -> tuple[object, FusedPredictResponse]:
    """A clock drifting 1 us/s from 100 us for 120 s, one spike the gateway flagged, and a forecast
    that goes on at 1 us/s with bands of +-2 us (80 %) and +-4 us (95 %)."""
    lines = ["time_s,offset_s"] + [f"{1_700_000_000 + i},{(100 + i) * 1e-6:.9f}" for i in range(120)]
    path = tmp_path / "clock.csv"
    path.write_text("\n".join(lines) + "\n")
    prepared = prepare_request(read_clock_log(path), horizon_s=HORIZON, context=512, deadline_s=1.0)
    mean = [220.0 + k for k in range(HORIZON)]
    quantiles = [[m + d for m in mean] for d in (-4.0, -2.0, 0.0, 2.0, 4.0)]
    answer = FusedPredictResponse(
        horizon=HORIZON,
        quantile_levels=[0.025, 0.1, 0.5, 0.9, 0.975],
        forecasts=[
            SeriesForecast(id="clock.csv", interval_s=1.0, mean_us=mean, quantiles_us=quantiles, std_us=[2.0] * HORIZON)
        ],
        degrees_of_freedom=[[30.0] * HORIZON],
        flagged_outliers=[[100]],
        backends=[],
        degraded=False,
        elapsed_ms=1.0,
    )
    return prepared, answer


def test_predict_plot_shows_history_forecast_bands_and_flagged_spikes(tmp_path: Path) -> None:
    prepared, answer = known_forecast(tmp_path)
    text = forecast_plot(prepared, answer, width=90)
    rows = text.splitlines()
    assert "clock.csv: offset_us (local - reference, + = fast)" in rows[0]
    assert all(len(row) <= 90 for row in rows)
    for legend in ("history", "forecast mean", "80 % band", "95 % band", "flagged spike"):
        assert legend in text
    assert "seconds from the last sample" in text and "offset_us" in rows[-1]
    # The x axis runs from the oldest sample shown (60 s back) to the last step ahead (10 s).
    x_ticks = rows[-2].split()
    assert float(x_ticks[0]) == -59.0 and float(x_ticks[-1]) == 10.0
    # The y axis spans the oldest value shown (160 us) to the top of the 95 % band (233 us).
    y_ticks = [float(row.split("┤")[0]) for row in rows if "┤" in row]
    assert max(y_ticks) == 233.0 and min(y_ticks) == 160.0
    assert forecast_plot(prepared, answer, width=90) == text  # no state leaks between charts


def bench_results() -> dict[str, object]:
    offsets = np.arange(900, dtype=np.float64) * 0.5 + np.where(np.arange(900) % 2, 0.2, -0.2)
    series = EvalSeries("zigzag", "test", offsets, 1.0, [], 0, 0, [])
    config = BenchConfig(horizons_s=[1.0, 10.0, 30.0, 60.0], context=128, stride_s=50.0, skip_start_s=0.0)
    results, _ = run_bench([series], [], InProcessForecaster(), config)
    return results


def test_bench_report_has_the_metrics_table_and_a_mae_chart_per_method() -> None:
    results = bench_results()
    console = Console(width=120, record=True)
    console.print(terminal_table(results))
    table = console.export_text()
    last_value_60 = results["overall"]["metrics"]["last-value"]["60"]["mae_us"]
    assert f"│ last-value (classical) │          60 │    {last_value_60:5.2f} │" in table
    chart = mae_text_plot(results, width=80)
    for legend in ("● chrony-fit", "x kalman", "+ last-value"):
        assert legend in chart
    assert "horizon (s)" in chart and "MAE (us)" in chart
    assert chart.splitlines()[-2].split()[-1] == "60.0"


def test_the_bench_command_prints_the_report(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--synthetic",
            "--in-process",
            "--synthetic-length-s",
            "2400",
            "--skip-start-s",
            "600",
            "--stride-s",
            "120",
            "--out",
            str(tmp_path),
            "--no-plots",
            "--no-progress",
            "--report",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Overall, pooled over" in result.output and "MAE vs horizon (pooled)" in result.output
    assert json.loads((tmp_path / "results.json").read_text())["overall"]["origins"] > 0
