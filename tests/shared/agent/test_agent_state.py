"""The agent's pure parts: the window it sends, the estimate and bound it serves, the scores it
keeps, and its settings refusing what cannot run."""

from __future__ import annotations

import re
import socket

import numpy as np
import pytest
from typer.testing import CliRunner

from chronotick.agent import SettingsInvalid, load_settings
from chronotick.agent.scoring import Scoreboard
from chronotick.agent.sources import Measurement
from chronotick.agent.state import Forecast, Slot, Window, estimate
from chronotick.cli import app
from chronotick.contract import CLOCK_ID_PATTERN


def forecast(origin_s: float, mean_us: list[float], half_width95_us: float = 4.0, kind: str = "short") -> Forecast:
    mean = np.asarray(mean_us, dtype=float)
    return Forecast(
        kind,
        origin_s,
        1.0,
        origin_s + 0.1,
        mean,
        mean - half_width95_us,
        mean - half_width95_us / 2,
        mean + half_width95_us / 2,
        mean + half_width95_us,
        degraded=False,
    )


LAST = Measurement(time_s=100.0, offset_us=10.0, uncertainty_us=5.0, stratum=3)


def test_window_waits_for_enough_measurements_and_keeps_failed_slots_missing() -> None:
    window = Window(max_slots=12, interval_s=1.0)
    for i in range(7):
        window.append(Slot(float(i), float(i), {"cpu_load": 0.5}))
    assert window.request(horizon=5, deadline_s=1.0, with_covariates=True, clock_id="host-a") is None
    window.append(Slot(7.0, None, {"cpu_load": None}))  # a failed measurement
    window.append(Slot(8.0, 8.0, {"cpu_load": 0.25}))
    request, origin_s = window.request(horizon=5, deadline_s=1.0, with_covariates=True, clock_id="host-a")
    series = request.series[0]
    assert origin_s == 8.0 and series.interval_s == 1.0
    assert series.clock_id == "host-a" and series.start_s == 0.0  # the gateway remembers the clock by it
    assert series.offsets_us == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, None, 8.0]
    assert series.covariates["cpu_load"].past[-2:] == [None, 0.25]
    for i in range(9, 20):  # bounded: the oldest slots leave
        window.append(Slot(float(i), float(i), {}))
    assert len(window) == 12
    request, _ = window.request(horizon=5, deadline_s=1.0, with_covariates=False, clock_id="host-a")
    assert request.series[0].start_s == 8.0  # the oldest slot still held


def test_ticks_skipped_by_a_slow_measurement_become_missing_slots() -> None:
    window = Window(max_slots=20, interval_s=1.0)
    for i in range(8):
        window.append(Slot(float(i), 1.0, {}))
    window.append(Slot(10.02, 2.0, {}))  # ticks 8 and 9 never ran
    request, origin_s = window.request(horizon=1, deadline_s=1.0, with_covariates=False, clock_id="host-a")
    assert request.series[0].offsets_us[-3:] == [None, None, 2.0]
    assert origin_s == 10.02


def test_without_a_forecast_the_bound_grows_at_the_stated_drift() -> None:
    early = estimate(101.0, LAST, [], max_drift_ppm=20.0)
    late = estimate(111.0, LAST, [], max_drift_ppm=20.0)
    assert early.basis == late.basis == "last-measurement"
    assert early.offset_us == late.offset_us == 10.0
    assert early.error_bound_us == pytest.approx(5.0 + 20.0 * 1.0)
    assert late.error_bound_us == pytest.approx(5.0 + 20.0 * 11.0)
    assert late.corrected_time_s == pytest.approx(111.0 - 10e-6)


def test_a_forecast_from_the_last_measurement_moves_the_estimate_and_the_bound_covers_the_move() -> None:
    # Made at the measurement: 2 us per second of drift.
    drifting = forecast(100.0, [12.0, 14.0, 16.0])
    now = estimate(101.5, LAST, [drifting], max_drift_ppm=1.0)
    assert now.basis == "forecast:short"
    assert now.offset_us == pytest.approx(13.0)
    assert now.error_bound_us == pytest.approx(5.0 + 1.0 * 1.5 + 3.0)
    assert now.forecast_interval95_us == pytest.approx(4.0)
    # Past its horizon nothing covers now: the last measurement is held.
    assert estimate(104.0, LAST, [drifting], max_drift_ppm=1.0).basis == "last-measurement"


def test_an_older_forecast_lends_its_drift_to_the_newer_measurement() -> None:
    older = forecast(98.0, [0.0, 1.0, 2.0, 3.0, 4.0])  # step 2 at t=100, where we measured 10
    now = estimate(102.0, LAST, [older], max_drift_ppm=1.0)
    assert now.offset_us == pytest.approx(10.0 + (4.0 - 2.0))


def test_the_freshest_covering_forecast_is_served() -> None:
    old, new = forecast(99.0, [50.0] * 10), forecast(100.0, [11.0] * 10, kind="long")
    assert estimate(100.5, LAST, [old, new], max_drift_ppm=1.0).basis == "forecast:long"


def test_scores_compare_later_measurements_with_earlier_forecasts_per_horizon() -> None:
    board = Scoreboard([1.0, 2.0])
    forecasts = [forecast(100.0, [10.0, 20.0, 30.0], half_width95_us=4.0)]
    first = board.record(Measurement(101.0, 11.0, 1.0, 3), forecasts)  # error 1: inside both
    second = board.record(Measurement(102.0, 23.0, 1.0, 3), forecasts)  # error 3: inside 95 % only
    board.record(Measurement(103.0, 30.0, 1.0, 3), forecasts)  # 3 s is not a scored horizon
    assert [(r.horizon_s, r.error_us, r.inside80, r.inside95) for r in first + second] == [
        (1.0, 1.0, True, True),
        (2.0, 3.0, False, True),
    ]
    assert set(board.scores) == {("short", 1.0), ("short", 2.0)}
    assert board.scores[("short", 2.0)].mae_us == 3.0
    assert board.scores[("short", 2.0)].coverage80 == 0.0 and board.scores[("short", 2.0)].coverage95 == 1.0


def test_a_measurement_never_scores_a_forecast_made_after_it() -> None:
    board = Scoreboard([1.0])
    assert board.record(Measurement(100.0, 10.0, 1.0, 3), [forecast(100.0, [1.0, 2.0])]) == []


@pytest.mark.parametrize(
    ("host_name", "clock_id"),
    [
        ("ntp-client-3", "ntp-client-3"),
        ("build box/7.example.org", "build-box-7.example.org"),
        ("_gateway.local", "gateway.local"),
        ("h" * 200, "h" * 128),
    ],
)
def test_the_clock_id_defaults_to_the_host_name_made_valid(
    monkeypatch: pytest.MonkeyPatch, host_name: str, clock_id: str
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: host_name)
    settings = load_settings()
    assert settings.clock_id == clock_id
    assert re.fullmatch(CLOCK_ID_PATTERN, settings.clock_id)


def test_the_clock_id_setting_overrides_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "host-a")
    monkeypatch.setenv("CHRONOTICK_AGENT_CLOCK_ID", "host-a.eth0")
    assert load_settings().clock_id == "host-a.eth0"
    assert load_settings(clock_id="ptp:00:1b:21:ff:fe:4a:5c:10").clock_id == "ptp:00:1b:21:ff:fe:4a:5c:10"


def test_a_host_name_that_gives_no_clock_id_asks_for_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "___")
    with pytest.raises(SettingsInvalid, match="CHRONOTICK_AGENT_CLOCK_ID"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("CHRONOTICK_AGENT_CLOCK_ID", "host/a", "CHRONOTICK_AGENT_CLOCK_ID"),
        ("CHRONOTICK_AGENT_MEASURE_INTERVAL_S", "0", "CHRONOTICK_AGENT_MEASURE_INTERVAL_S"),
        ("CHRONOTICK_AGENT_SOURCE", "gps", "CHRONOTICK_AGENT_SOURCE"),
        ("CHRONOTICK_AGENT_GATEWAY_URL", "not a url", "CHRONOTICK_AGENT_GATEWAY_URL"),
        ("CHRONOTICK_AGENT_LONG_HORIZON_S", "5000", "CHRONOTICK_AGENT_LONG_HORIZON_S"),
        ("CHRONOTICK_AGENT_NTP_SERVR", "pool.ntp.org", "unknown setting CHRONOTICK_AGENT_NTP_SERVR"),
    ],
)
def test_invalid_configuration_stops_the_agent_at_start_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsInvalid, match=named):
        load_settings()
    result = CliRunner().invoke(app, ["agent"])
    assert result.exit_code == 2
    assert named in " ".join(result.output.split())


def test_a_wrong_command_line_option_is_named_as_typed_not_as_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOTICK_AGENT_GATEWAY_URL", "http://127.0.0.1:8000")
    result = CliRunner().invoke(app, ["agent", "--gateway", "not a url", "--port", "0"])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "--gateway: " in output and "'not a url'" in output and "--port: " in output
    assert "CHRONOTICK_AGENT_GATEWAY_URL" not in output and "CHRONOTICK_AGENT_PORT" not in output


def test_command_line_options_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOTICK_AGENT_NTP_SERVER", "192.0.2.1")
    monkeypatch.setenv("CHRONOTICK_AGENT_SOURCE", "ntp")
    settings = load_settings(ntp_server="127.0.0.1", port=None)
    assert settings.ntp_server == "127.0.0.1" and settings.source == "ntp" and settings.port == 8100
