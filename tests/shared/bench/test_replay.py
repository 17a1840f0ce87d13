"""The benchmark's replay mode: which origins a clock streams and which are scored, the clock ids,
the order of a clock's requests, the side-by-side summary, and a whole run against a stand-in
gateway over real HTTP."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from chronotick.bench.__main__ import main
from chronotick.bench.forecasters import FUSED, FUSED_STATELESS, BatchAnswer
from chronotick.bench.metrics import Forecasts
from chronotick.bench.origins import select_origins
from chronotick.bench.replay import ReplayScoring, plan_replay, replay_clock_ids, run_replay, warm_up_reason
from chronotick.bench.report import results_markdown
from chronotick.bench.run import BenchConfig
from chronotick.bench.sources import EvalSeries
from chronotick.contract import CLOCK_ID_PATTERN
from support.clock_memory import ClockMemoryStandIn, clock_memory_app
from support.servers import serve_in_thread

CONFIG = BenchConfig(horizons_s=[1.0, 10.0], context=64, stride_s=10.0, skip_start_s=0.0, batch=1)
START_S = 1_700_000_000.0


def ramp(n: int, steps: list[int] = (), name: str = "ramp.log") -> EvalSeries:
    """1 us per second at 1 Hz, with the log's own times."""
    return EvalSeries(
        name,
        "test",
        np.arange(n, dtype=np.float64),
        1.0,
        list(steps),
        0,
        0,
        [],
        time_s=START_S + np.arange(n, dtype=np.float64),
    )


class RememberingRamp:
    """A gateway on a 1 us/s ramp: answers that name the clock are exact, those that do not miss by
    half the horizon, and its classical member (persistence) misses by the horizon. It fails the test
    when a clock's requests overlap."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, float | None]] = []
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    def forget_clock(self, clock_id: str) -> None:
        with self._lock:
            self.calls.append(("forget", clock_id, None))

    def forecast_clock(self, context, interval_s, horizon, columns, *, clock_id, start_s) -> BatchAnswer:
        with self._lock:
            assert clock_id not in self._in_flight, "two requests of one clock at once"
            self._in_flight.add(clock_id)
            self.calls.append(("memory", clock_id, start_s))
        time.sleep(0.0005)
        mean = (context[-1] + np.arange(1, horizon + 1))[columns][None, :]
        with self._lock:
            self._in_flight.discard(clock_id)
        return BatchAnswer(
            {FUSED: Forecasts.from_std(mean, np.full(mean.shape, 0.1))},
            set(),
            0.001,
            memory=[{"clock_id": clock_id, "state": "remembered"}],
        )

    def forecast(self, contexts, interval_s, horizon, columns) -> BatchAnswer:
        with self._lock:
            self.calls.append(("stateless", None, None))
        steps = np.arange(1, horizon + 1, dtype=np.float64)[columns][None, :]
        last = contexts[0][-1]
        std = np.full(steps.shape, 0.1)
        return BatchAnswer(
            {
                FUSED: Forecasts.from_std(last + steps / 2.0, std),
                "persistence": Forecasts.from_std(np.full(steps.shape, last), std),
            },
            {"persistence"},
            0.002,
        )


def test_a_clock_streams_every_origin_in_time_order_and_scores_the_fair_ones_after_its_warm_up() -> None:
    series = ramp(2000, steps=[1000])
    _, horizon, plan = plan_replay(series, CONFIG, ReplayScoring(after_s=300.0))
    assert horizon == 10
    assert np.all(np.diff(plan.origins) == 10) and plan.origins[0] == 64
    # An agent cannot know a step is coming, nor skip one in its window: those origins are streamed...
    crossing = (plan.origins - 64 < 1000) & (1000 < plan.origins + 10)
    assert crossing.any()
    # ... but scored are exactly the origins the rolling backtest keeps, once the warm-up is over.
    fair = select_origins(
        series.offsets_us, [1000], interval_s=1.0, context=64, horizon=10, stride_s=10.0, skip_start_s=0.0
    ).origins
    after_warm_up = plan.origins >= 64 + 300
    np.testing.assert_array_equal(plan.origins[plan.scored], fair[fair >= 64 + 300])
    assert not plan.scored[crossing].any() and not plan.scored[~after_warm_up].any()
    assert plan.skipped[warm_up_reason(300.0)] == 30  # origins 64, 74 ... 354
    assert plan.skipped["crosses a clock step"] == int(crossing.sum())


def test_an_agent_cadence_is_streamed_in_full_and_scored_on_the_coarser_grid_up_to_the_stream_s_end() -> None:
    series = ramp(3000, steps=[1000])
    every_second = BenchConfig(horizons_s=[1.0, 10.0], context=64, stride_s=1.0, skip_start_s=0.0, batch=1)
    _, _, coarse = plan_replay(series, CONFIG, ReplayScoring(after_s=300.0))
    _, _, plan = plan_replay(series, every_second, ReplayScoring(after_s=300.0, every_s=10.0, stream_for_s=2000.0))
    assert np.all(np.diff(plan.origins) == 1) and plan.origins[0] == 64 and plan.origins[-1] == 64 + 1999
    # the origins a replay every 10 s scores, those before the stream's end
    np.testing.assert_array_equal(plan.origins[plan.scored], coarse.origins[coarse.scored & (coarse.origins < 2064)])


def test_a_context_too_thin_to_forecast_is_not_streamed_and_a_thin_one_is_not_scored() -> None:
    offsets = np.arange(1500, dtype=np.float64)
    offsets[400:700] = np.nan  # contexts inside the hole have nothing; at its edges, a few samples
    series = EvalSeries("holey.log", "test", offsets, 1.0, [], 0, 0, [])
    _, _, plan = plan_replay(series, CONFIG, ReplayScoring(after_s=0.0))
    observed = np.array([np.isfinite(offsets[o - 64 : o]).sum() for o in plan.origins])
    truth = np.array([np.isfinite(offsets[o : o + 10]).any() for o in plan.origins])
    assert observed.min() >= 8 and (observed < 32).any()
    np.testing.assert_array_equal(plan.scored, (observed >= 32) & truth)
    assert np.diff(plan.origins).max() > 10  # the hole is skipped in time, the order kept


def test_clock_ids_come_from_the_file_names_valid_unique_and_new_each_run() -> None:
    names = ["/logs/a/tracking.log", "/logs/b/tracking.log", "synthetic:server_load:seed=50000", "x" * 300, "/logs/___"]
    ids = replay_clock_ids(names, prefix=None, run_token="20250101-120000-ab12")
    assert ids[:3] == [
        "tracking.log.20250101-120000-ab12",
        "tracking.log-2.20250101-120000-ab12",
        "synthetic:server_load:seed-50000.20250101-120000-ab12",
    ]
    assert ids[4] == "clock.20250101-120000-ab12"
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(CLOCK_ID_PATTERN, i) and len(i) <= 128 for i in ids)
    assert replay_clock_ids(names[:2], prefix="bench-", run_token="unused") == [
        "bench-tracking.log",
        "bench-tracking.log-2",
    ]


def test_replay_forgets_each_clock_then_sends_its_origins_one_at_a_time_and_answers_scored_ones_twice() -> None:
    clocks = [ramp(900, name="a.log"), ramp(700, name="b.log")]
    forecaster = RememberingRamp()
    results, series_results = run_replay(
        clocks, [], forecaster, CONFIG, clock_ids=["a", "b"], scoring=ReplayScoring(after_s=300.0), concurrency=2
    )
    calls = forecaster.calls
    assert calls[:2] == [("forget", "a", None), ("forget", "b", None)]
    for clock_id, series in zip(("a", "b"), clocks, strict=True):
        starts = [start for kind, c, start in calls if kind == "memory" and c == clock_id]
        _, _, plan = plan_replay(series, CONFIG, ReplayScoring(after_s=300.0))
        assert starts == [START_S + o - 64 for o in plan.origins.tolist()]  # in order, the first context sample's time
    scored = sum(r.origins.size for r in series_results)
    assert sum(kind == "stateless" for kind, _, _ in calls) == scored > 0
    replay = results["replay"]
    for h, distance in (("1", 1.0), ("10", 10.0)):
        overall = replay["overall"]["comparison"][h]
        assert overall["best_classical"] == "persistence"
        assert overall["best_classical_mae_us"] == pytest.approx(distance)
        assert overall["stateless"]["ratio"] == pytest.approx(0.5)
        assert overall["memory"]["ratio"] == pytest.approx(0.0)
        assert overall["memory"]["n"] == overall["stateless"]["n"] == scored
        assert replay["overall"]["mean_of_clock_ratios"][h] == {"stateless": pytest.approx(0.5), "memory": 0.0}
    assert [f["clock_id"] for f in replay["files"]] == ["a", "b"]
    assert replay["files"][0]["memory_states"] == {"remembered": int(series_results[0].origins.size)}
    assert {FUSED, FUSED_STATELESS, "persistence"} == set(results["overall"]["metrics"])
    markdown = results_markdown(results, "test")
    assert "only origins after each clock's first 300 s (its warm-up) are scored" in " ".join(markdown.split()).lower()
    assert "| a.log | a | 10 | persistence (10.00) | 0.50 | 0.00 |" in markdown


def test_replay_needs_the_gateway_and_its_own_spacing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as in_process:
        main(["--synthetic", "--in-process", "--replay"])
    assert in_process.value.code == 2
    assert "in-process forecasters have none" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--synthetic", "--replay", "--stride-s", "30"])
    assert "--replay-every-s" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--synthetic", "--replay", "--clock-prefix", "bad/"])
    assert "cannot start a clock id" in capsys.readouterr().err


def test_a_replay_run_against_a_gateway_that_remembers_clocks(tmp_path: Path) -> None:
    log = tmp_path / "host-a.csv"
    log.write_text("\n".join(["time_s,offset_us"] + [f"{START_S + t:.0f},{0.5 * t}" for t in range(700)]) + "\n")
    stand_in = ClockMemoryStandIn(clocks={"bench-host-a.csv": 99})  # an earlier run's memory
    out = tmp_path / "out"
    with serve_in_thread(clock_memory_app(stand_in)) as url:
        code = main(
            [
                str(log),
                "--replay",
                "--gateway",
                url,
                "--clock-prefix",
                "bench-",
                "--context",
                "64",
                "--skip-start-s",
                "0",
                "--score-after-s",
                "300",
                "--horizons",
                "1,10",
                "--no-plots",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
    assert code == 0
    assert stand_in.requests[0][:2] == ("DELETE", "/clocks/bench-host-a.csv")
    named = [
        body["series"][0]
        for method, path, body in stand_in.requests
        if path == "/predict" and "clock_id" in body["series"][0]
    ]
    assert named[0]["start_s"] == START_S and [s["start_s"] for s in named] == sorted(s["start_s"] for s in named)
    assert stand_in.clocks == {"bench-host-a.csv": len(named)}  # forgotten first, then one per origin
    results = json.loads((out / "results.json").read_text())
    replay = results["replay"]
    assert replay["streamed_origins"] == len(named) and replay["score_after_s"] == 300.0
    assert replay["files"][0]["memory_states"] == {"remembered": results["overall"]["origins"]}
    assert replay["overall"]["comparison"]["10"]["memory"]["ratio"] == pytest.approx(1.0)  # the stand-in holds
    assert "Replay: stateless vs with memory" in (out / "results.md").read_text()
