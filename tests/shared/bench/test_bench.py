"""The accuracy benchmark's pure parts: origin selection, metrics, tables, and a whole in-process run
on data generated here (the real logs are never read by the tests)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from chronotick.bench.__main__ import main
from chronotick.bench.forecasters import FUSED, BatchAnswer, InProcessForecaster, parse_answer
from chronotick.bench.metrics import Z_80, Z_95, Forecasts, coverage, horizon_metrics
from chronotick.bench.origins import horizon_steps, select_origins
from chronotick.bench.report import results_markdown, tables_markdown
from chronotick.bench.run import BenchConfig, run_bench, summarize
from chronotick.bench.sources import EvalSeries, SourceFailure, read_log, synthetic_series
from chronotick.synthetic import SCENARIOS

HORIZONS = [1.0, 10.0, 30.0, 60.0]


def ramp_series(n: int, steps: list[int] = (), name: str = "ramp") -> EvalSeries:
    """1 us per second, 1 Hz: the next offsets follow exactly from the last one."""
    return EvalSeries(name, "test", np.arange(n, dtype=np.float64), 1.0, list(steps), 0, 0, [])


class RampOracle:
    """Knows the series is a 1 us/s ramp: forecasts it exactly, with a std of 0.1 us."""

    def forecast(self, contexts, interval_s, horizon, columns):
        mean = np.stack([c[-1] + np.arange(1, horizon + 1) for c in contexts])[:, columns]
        std = np.full(mean.shape, 0.1)
        return BatchAnswer(
            {
                FUSED: Forecasts.from_std(mean, std),
                "flat": Forecasts.from_std(np.stack([np.full(len(columns), c[-1]) for c in contexts]), std),
            },
            {"flat"},
            latency_s=0.01,
        )


def test_origins_never_cross_a_step_and_skip_the_start_up_transient():
    offsets = np.zeros(5000)
    steps = [1500, 2600, 2601, 4000]
    plan = select_origins(offsets, steps, interval_s=1.0, context=512, horizon=60, stride_s=7.0, skip_start_s=600.0)
    assert plan.origins.size > 0
    for origin in plan.origins:
        assert origin - 512 >= 600  # the whole context is after the transient
        assert not any(origin - 512 < s < origin + 60 for s in steps)
    assert plan.skipped["crosses a clock step"] > 0
    # Every candidate is either kept or counted as skipped.
    candidates = np.arange(512 + 600, 5000 - 60 + 1, 7)
    assert plan.origins.size + sum(plan.skipped.values()) == candidates.size


def test_a_step_at_the_first_context_sample_or_just_after_the_truth_window_is_harmless():
    offsets = np.zeros(2000)
    plan = select_origins(
        offsets, [1000, 1000 + 512 + 60], interval_s=1.0, context=512, horizon=60, stride_s=1.0, skip_start_s=0.0
    )
    assert 1512 in plan.origins  # step at o - context (first context sample) and at o + horizon
    assert 1511 not in plan.origins  # context would hold the sample before the step at 1000
    assert 1513 not in plan.origins  # truth window would reach the step at 1572


def test_origins_with_a_thin_context_or_no_truth_are_skipped():
    offsets = np.zeros(3000)
    offsets[:1000] = np.nan  # no observations: contexts there are too thin
    offsets[2000:2100] = np.nan  # a 100 s hole: truth windows inside it are empty
    plan = select_origins(offsets, [], interval_s=1.0, context=512, horizon=60, stride_s=1.0, skip_start_s=0.0)
    assert plan.origins.min() >= 1000 + 32  # at least 32 observations in the context
    assert not np.any((plan.origins >= 2000) & (plan.origins + 60 <= 2100))
    assert plan.skipped["no observed truth"] == 100 - 60 + 1


def test_horizons_map_to_steps_on_near_regular_grids_and_are_dropped_otherwise():
    assert horizon_steps(HORIZONS, 1.00027) == {1.0: 1, 10.0: 10, 30.0: 30, 60.0: 60}
    assert horizon_steps(HORIZONS, 2.0) == {10.0: 5, 30.0: 15, 60.0: 30}
    assert horizon_steps(HORIZONS, 16.0) == {}


def test_a_perfect_forecaster_has_zero_error_and_full_coverage():
    truth = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
    forecasts = Forecasts.from_std(truth.copy(), np.full(truth.shape, 0.5))
    first, second = horizon_metrics(truth, forecasts, 0), horizon_metrics(truth, forecasts, 1)
    assert (first.n, first.mae_us, first.rmse_us, first.coverage80, first.coverage95) == (3, 0.0, 0.0, 1.0, 1.0)
    assert second.n == 2  # the missing truth is not scored


def test_metrics_on_known_errors():
    truth = np.zeros((4, 1))
    mean = np.array([[1.0], [-2.0], [3.0], [-4.0]])
    std = np.full((4, 1), 2.0)  # 80 %: +-2.56, 95 %: +-3.92
    metrics = horizon_metrics(truth, Forecasts.from_std(mean, std), 0)
    assert metrics.mae_us == pytest.approx(2.5)
    assert metrics.rmse_us == pytest.approx(math.sqrt(7.5))
    assert metrics.p95_abs_error_us == pytest.approx(np.percentile([1, 2, 3, 4], 95))
    assert metrics.coverage80 == pytest.approx(0.5)  # |e| = 1, 2 inside
    assert metrics.coverage95 == pytest.approx(0.75)  # |e| = 4 outside 3.92


def test_normal_intervals_use_the_80_and_95_percent_points():
    f = Forecasts.from_std(np.array([[10.0]]), np.array([[1.0]]))
    assert (f.lower80_us[0, 0], f.upper80_us[0, 0]) == (10.0 - Z_80, 10.0 + Z_80)
    assert (f.lower95_us[0, 0], f.upper95_us[0, 0]) == (10.0 - Z_95, 10.0 + Z_95)
    assert coverage(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.5, 3.0]), np.array([2.0, 3.0, 3.0])) == pytest.approx(
        2 / 3
    )


def test_the_backtest_aligns_truth_with_each_horizon():
    config = BenchConfig(horizons_s=HORIZONS, context=64, stride_s=10.0, skip_start_s=0.0, batch=4)
    results, series_results = run_bench([ramp_series(400, steps=[200])], [], RampOracle(), config)
    overall = results["overall"]["metrics"]
    for h in ("1", "10", "30", "60"):
        assert overall[FUSED][h]["mae_us"] == 0.0
        assert overall[FUSED][h]["coverage95"] == 1.0
        assert overall["flat"][h]["mae_us"] == pytest.approx(float(h))  # persistence misses the ramp by h
    comparison = results["overall"]["comparison"]
    assert comparison["10"] == {
        "best_classical": "flat",
        "best_classical_mae_us": pytest.approx(10.0),
        "fused_over_best_classical": 0.0,
    }
    origins = series_results[0].origins
    assert not np.any((origins - 64 < 200) & (200 < origins + 60))
    assert results["latency_ms"]["calls"] == math.ceil(origins.size / 4)


def test_overall_pools_origins_and_also_reports_the_mean_of_per_file_maes():
    config = BenchConfig(horizons_s=[10.0], context=32, stride_s=5.0, skip_start_s=0.0, batch=8)
    short, long = ramp_series(200, name="short"), ramp_series(600, name="long")
    results, _ = run_bench([short, long], [SourceFailure("bad.log", "UnsupportedFormat: nope")], RampOracle(), config)
    per_file = [f["origins"] for f in results["files"]]
    assert results["overall"]["origins"] == sum(per_file)
    assert results["overall"]["metrics"]["flat"]["10"]["n"] == sum(per_file)
    assert results["overall"]["mean_of_file_mae_us"]["flat"]["10"] == pytest.approx(10.0)
    assert results["failures"] == [{"path": "bad.log", "reason": "UnsupportedFormat: nope"}]
    markdown = results_markdown(results, "test")
    assert "bad.log" in markdown and "| overall (pooled) | flat (10.00 us) | 0.00 | yes |" in markdown


def test_classical_in_process_is_exact_on_a_constant_clock():
    series = EvalSeries("flat", "test", np.full(900, 7.0), 1.0, [], 0, 0, [])
    config = BenchConfig(horizons_s=HORIZONS, context=128, stride_s=50.0, skip_start_s=0.0)
    results, _ = run_bench([series], [], InProcessForecaster(), config)
    metrics = results["overall"]["metrics"]
    assert set(metrics) == {"last-value", "chrony-fit", "kalman"}
    assert metrics["last-value"]["60"]["mae_us"] == 0.0
    assert metrics["chrony-fit"]["10"]["mae_us"] == pytest.approx(0.0, abs=1e-9)


def test_in_process_cleaning_removes_a_context_spike_unless_switched_off():
    offsets = np.arange(900, dtype=np.float64) * 0.5 + np.where(np.arange(900) % 2, 0.2, -0.2)
    offsets[np.arange(150, 900, 50)] += 400.0  # spikes inside every context, never its last sample
    series = EvalSeries("spiky", "test", offsets, 1.0, [], 0, 0, [])
    config = BenchConfig(horizons_s=HORIZONS, context=128, stride_s=50.0, skip_start_s=0.0)
    cleaned, _ = run_bench([series], [], InProcessForecaster(), config)
    raw, _ = run_bench([series], [], InProcessForecaster(clean=False), config)
    mae = {name: r["overall"]["metrics"]["chrony-fit"]["1"]["mae_us"] for name, r in (("clean", cleaned), ("raw", raw))}
    assert mae["clean"] < mae["raw"]


def test_the_gateway_answer_gives_fused_quantile_bounds_and_members_calibrated_std():
    answer = {
        "forecasts": [
            {
                "mean_us": [1.0, 2.0, 3.0],
                "std_us": [1.0] * 3,
                "quantiles_us": [[-9.0] * 3, [-8.0] * 3, [0.0] * 3, [8.0] * 3, [9.0] * 3],
            }
        ],
        "backends": [
            {
                "name": "kalman",
                "service": None,
                "status": "ok",
                "forecasts": [{"mean_us": [4.0, 5.0, 6.0], "std_us": [1.0, 2.0, 3.0]}],
            },
            {"name": "chronos-bolt", "service": "chronos", "status": "timeout", "reason": "slow", "forecasts": None},
        ],
    }
    parsed = parse_answer(answer, np.array([0, 2, -1]))
    fused = parsed.methods[FUSED]
    np.testing.assert_array_equal(fused.mean_us, [[1.0, 3.0, np.nan]])
    np.testing.assert_array_equal(fused.lower80_us, [[-8.0, -8.0, np.nan]])
    np.testing.assert_array_equal(fused.upper95_us, [[9.0, 9.0, np.nan]])
    np.testing.assert_allclose(parsed.methods["kalman"].upper95_us[0, :2], [4.0 + Z_95, 6.0 + 3 * Z_95])
    assert parsed.classical == {"kalman"}
    assert parsed.problems == ["chronos-bolt: timeout: slow"]


def test_a_member_without_a_spread_for_a_series_is_scored_as_missing_there():
    answer = {
        "forecasts": [{"mean_us": [1.0, 2.0], "std_us": [1.0] * 2, "quantiles_us": [[0.0] * 2] * 5}] * 2,
        "backends": [
            {
                "name": "last-value",
                "service": None,
                "status": "ok",
                "forecasts": [None, {"mean_us": [4.0, 5.0], "std_us": [1.0, 1.0]}],
            }
        ],
    }
    member = parse_answer(answer, np.array([0, 1])).methods["last-value"]
    assert np.isnan(member.mean_us[0]).all()
    np.testing.assert_array_equal(member.mean_us[1], [4.0, 5.0])


def test_synthetic_clocks_use_seeds_far_from_training():
    clocks = synthetic_series(length_s=600)
    assert [c.name.split(":")[1] for c in clocks] == list(SCENARIOS)
    seeds = [int(c.name.rsplit("=", 1)[1]) for c in clocks]
    assert min(seeds) >= 50_000


def test_a_wrong_format_file_is_reported_and_the_run_goes_on(tmp_path: Path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\nthis is not a clock log\n")
    good = tmp_path / "offsets.csv"
    lines = ["time_s,offset_us"] + [f"{1_700_000_000 + t},{0.5 * t}" for t in range(900)] + ["garbled,row,,"]
    good.write_text("\n".join(lines) + "\n")
    assert isinstance(read_log(bad), SourceFailure)
    assert "supported formats" in read_log(bad).reason
    out = tmp_path / "out"
    code = main(
        [
            str(tmp_path),
            "--in-process",
            "--no-plots",
            "--no-progress",
            "--skip-start-s",
            "0",
            "--stride-s",
            "60",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [f["path"] for f in results["failures"]] == [str(bad)]
    assert results["files"][0]["bad_lines"] == 1
    assert results["overall"]["metrics"]["chrony-fit"]["60"]["mae_us"] == pytest.approx(0.0, abs=1e-6)
    assert "mbgsvcd" in (out / "results.md").read_text()  # the failure names the supported formats


def test_summary_tables_cover_every_file_and_method():
    config = BenchConfig(horizons_s=[10.0, 60.0], context=32, stride_s=20.0, skip_start_s=0.0)
    results = summarize([], [], config)
    assert results["overall"]["origins"] == 0
    assert "Overall (pooled over 0 origins)" in tables_markdown(results)
