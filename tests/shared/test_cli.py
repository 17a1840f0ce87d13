"""The ``chronotick`` command through typer's runner: help, log -> request, errors with a reason,
and delegation to the bench and to a family's own interpreter."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chronotick.cli import app
from chronotick.cli.app import out as cli_out
from chronotick.cli.forecast import NotForecastable, prepare_request
from chronotick.clockdata import read_clock_log
from support.clock_memory import ClockMemoryStandIn, clock_memory_app
from support.servers import free_port, serve_in_thread

runner = CliRunner()
COMMANDS = ("predict", "status", "bench", "train", "finetune", "agent")


def write_csv(path: Path, offsets_s: list[float], interval_s: float = 2.0) -> Path:
    lines = ["time_s,offset_s"] + [f"{1_700_000_000 + i * interval_s},{v:.9f}" for i, v in enumerate(offsets_s)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example: chronotick " + command in " ".join(result.output.split())


def test_request_holds_the_logs_last_stretch_after_a_step(tmp_path: Path) -> None:
    # 1 us/s drift with a 500 us step after 60 samples: only the 40 samples after it are history.
    offsets_s = [i * 2e-6 + (500e-6 if i >= 60 else 0.0) for i in range(100)]
    series = read_clock_log(write_csv(tmp_path / "clock.csv", offsets_s))
    assert [s.index for s in series.steps] == [60]
    prepared = prepare_request(series, horizon_s=9.0, context=512, deadline_s=1.0)
    request = prepared.request
    assert prepared.used_samples == 40 and prepared.interval_s == 2.0
    assert request.horizon == 5  # 9 s at a 2 s cadence: 5 steps to cover it
    assert request.series[0].offsets_us[0] == pytest.approx(60 * 2.0 + 500.0)
    assert prepared.last_offset_us == pytest.approx(99 * 2.0 + 500.0)


def test_context_keeps_the_newest_samples(tmp_path: Path) -> None:
    series = read_clock_log(write_csv(tmp_path / "clock.csv", [i * 1e-6 for i in range(50)]))
    request = prepare_request(series, horizon_s=2.0, context=16, deadline_s=1.0).request
    assert request.series[0].offsets_us == pytest.approx([float(i) for i in range(34, 50)])


def test_a_named_clock_sends_the_time_of_its_first_sent_sample(tmp_path: Path) -> None:
    series = read_clock_log(write_csv(tmp_path / "clock.csv", [i * 1e-6 for i in range(50)]))
    named = prepare_request(series, horizon_s=2.0, context=16, deadline_s=1.0, clock_id="host-a.eth0").request
    assert named.series[0].clock_id == "host-a.eth0"
    assert named.series[0].start_s == 1_700_000_000 + 34 * 2.0  # the newest 16 of 50 samples, 2 s apart
    unnamed = prepare_request(series, horizon_s=2.0, context=16, deadline_s=1.0).request
    assert unnamed.series[0].clock_id is None and unnamed.series[0].start_s is None


def test_predict_names_the_clock_on_the_wire_and_shows_what_its_memory_did(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "clock.csv", [i * 1e-6 for i in range(30)])
    stand_in = ClockMemoryStandIn()
    with serve_in_thread(clock_memory_app(stand_in)) as url:
        first = runner.invoke(app, ["predict", str(csv), "--clock-id", "host-a", "--horizon-s", "4", "--gateway", url])
        second = runner.invoke(app, ["predict", str(csv), "--clock-id", "host-a", "--horizon-s", "4", "--gateway", url])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    sent = stand_in.requests[0][2]["series"][0]
    assert sent["clock_id"] == "host-a" and sent["start_s"] == 1_700_000_000.0 and sent["interval_s"] == 2.0
    assert "clock host-a: cold-start" in first.output
    assert "clock host-a: remembered, 1 scored forecasts" in second.output


def test_predict_refuses_a_clock_id_the_contract_refuses(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "clock.csv", [i * 1e-6 for i in range(30)])
    result = runner.invoke(app, ["predict", str(csv), "--clock-id", "host/a", "--gateway", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "clock_id" in result.output


def test_status_of_a_clock_shows_its_memory_per_horizon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_out, "width", 200)  # the whole table on one line per horizon
    stand_in = ClockMemoryStandIn(clocks={"host-a": 12})
    with serve_in_thread(clock_memory_app(stand_in)) as url:
        result = runner.invoke(app, ["status", "--clock", "host-a", "--gateway", url])
    assert result.exit_code == 0, result.output
    output = result.output
    assert (
        "clock host-a: interval 1 s, last sample 1700000099.000 s, 12 requests, 3 pending forecasts, state 2048 bytes"
    ) in output
    assert "kalman 0.60, chrony-fit 0.30, last-value 0.10" in output
    assert "kalman 1.500, chrony-fit 2.000, last-value 4.000" in output
    assert "81.0 %" in output and "95.2 %" in output and "1.250" in output
    rows = [line for line in output.splitlines() if "weights" in line and "kalman" in line]
    assert [row.split()[1] for row in rows] == ["1", "10"]  # one row per horizon, shortest first


def test_status_of_an_unknown_clock_says_so_and_fails() -> None:
    with serve_in_thread(clock_memory_app(ClockMemoryStandIn())) as url:
        unknown = runner.invoke(app, ["status", "--clock", "host-b", "--gateway", url])
        invalid = runner.invoke(app, ["status", "--clock", "host/b", "--gateway", url])
    assert unknown.exit_code == 1
    assert "remembers no clock 'host-b'" in " ".join(unknown.output.split())
    assert invalid.exit_code == 2 and "not a clock id" in invalid.output


def test_a_horizon_beyond_the_contract_is_refused_with_the_step_count(tmp_path: Path) -> None:
    series = read_clock_log(write_csv(tmp_path / "clock.csv", [0.0] * 20, interval_s=1.0))
    with pytest.raises(NotForecastable, match="2000 steps"):
        prepare_request(series, horizon_s=2000.0, context=512, deadline_s=1.0)


def test_predict_names_the_problem_with_a_file_that_is_no_clock_log(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("dear diary\nthe clock was fine today\n")
    result = runner.invoke(app, ["predict", str(path)])
    assert result.exit_code == 2
    assert "no line looks like any supported clock log" in " ".join(result.output.split())


def test_predict_and_status_say_when_the_gateway_is_unreachable(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "clock.csv", [i * 1e-6 for i in range(30)])
    gateway = f"http://127.0.0.1:{free_port()}"
    for arguments in (["predict", str(csv)], ["status"]):
        result = runner.invoke(app, [*arguments, "--gateway", gateway, "--timeout-s", "1"])
        assert result.exit_code == 1
        assert "error:" in result.output and "127.0.0.1" in result.output


def test_bench_passes_every_argument_to_the_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "bench-out"
    result = runner.invoke(
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
            str(out),
            "--no-plots",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["overall"]["origins"] > 0


def test_train_refuses_an_unknown_family_naming_the_known_ones() -> None:
    result = runner.invoke(app, ["train", "prophet"])
    assert result.exit_code == 2
    assert "chronos, ttm, toto, timemoe" in " ".join(result.output.split())


def test_finetune_runs_the_family_module_with_the_family_venv_and_its_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A family environment of its own: a venv folder whose python is this interpreter, and a
    # chronotick_toto package (only on its path) whose finetune module records what it was given.
    venv_bin = tmp_path / "venvs" / "toto" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    package = tmp_path / "site" / "chronotick_toto"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    record = tmp_path / "argv.json"
    (package / "finetune.py").write_text(
        "import json, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'executable': sys.executable}}, open({str(record)!r}, 'w'))\n"
        "sys.exit(3)\n"
    )
    monkeypatch.setenv("CHRONOTICK_VENVS", str(tmp_path / "venvs"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    arguments = ["--model", "toto", "--log", "clock.log", "--train-fraction", "0.5", "--out", "ft"]
    result = runner.invoke(app, ["finetune", "toto", *arguments])
    assert result.exit_code == 3
    called = json.loads(record.read_text())
    assert called["argv"] == arguments
    assert called["executable"] == str(venv_bin / "python")
