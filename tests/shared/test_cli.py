"""The ``chronotick`` command through typer's runner: help, log -> request, errors with a reason,
and delegation to the bench and to a family's own interpreter."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chronotick.cli import app
from chronotick.cli.forecast import NotForecastable, prepare_request
from chronotick.clockdata import read_clock_log
from support.servers import free_port

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
    result = runner.invoke(app, ["bench", "--synthetic", "--in-process", "--synthetic-length-s", "2400",
                                 "--skip-start-s", "600", "--stride-s", "120", "--out", str(out),
                                 "--no-plots", "--no-progress"])
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
