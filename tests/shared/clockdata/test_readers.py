"""Clock-log readers: right units and sign per format, format detection, and damaged input
reported rather than fatal. The samples/ files are synthetic, written from each format's
documentation."""

import math
import os
from pathlib import Path

import numpy as np
import pytest

from chronotick.clockdata import (
    FORMAT_NAMES,
    OffsetSeries,
    UnsupportedFormat,
    detect_format,
    read_clock_log,
)
from chronotick.clockdata.series import detect_steps

SAMPLES = Path(__file__).parent / "samples"
# The project's real-data folder sits next to the repository (read-only, never copied in).
REAL_DATA = Path(os.environ.get("CHRONOTICK_DATA", Path(__file__).resolve().parents[3] / "../shared/data")).resolve()

FILE_FORMATS = {
    "tracking.log": "chrony-tracking",
    "measurements.log": "chrony-measurements",
    "statistics.log": "chrony-statistics",
    "loopstats": "ntpd-loopstats",
    "peerstats": "ntpd-peerstats",
    "ptp4l.log": "ptp4l",
    "mbgsvcd.txt": "mbgsvcd",
    "offsets.csv": "csv",
    "tacc_like.csv": "csv",
}


def read(name: str, **options: object) -> OffsetSeries:
    return read_clock_log(SAMPLES / name, **options)


@pytest.mark.parametrize(("name", "format"), FILE_FORMATS.items())
def test_format_is_detected_from_content(name: str, format: str) -> None:
    assert detect_format(SAMPLES / name) == format
    assert read(name).format == format


def test_chrony_tracking_keeps_sign_and_converts_seconds() -> None:
    series = read("tracking.log")
    np.testing.assert_allclose(series.offset_us[:4], [1.0, -1.1, 1.2, -1.0])
    assert series.interval_s == 16.0
    assert series.time_s[0] == 1709287200.0  # 2024-03-01 10:00:00 UTC
    assert series.covariates["freq_ppm"][0] == pytest.approx(-3.5)
    assert series.covariates["root_delay_us"][0] == pytest.approx(1e-3)


def test_chrony_tracking_unsynchronised_update_is_missing_not_zero() -> None:
    series = read("tracking.log")
    assert math.isnan(series.offset_us[5])
    assert np.count_nonzero(np.isnan(series.offset_us)) == 1


def test_chrony_measurements_negate_theta_and_read_the_busiest_peer() -> None:
    series = read("measurements.log")
    # theta +250 us means the local clock is slow: -250 us in our sign.
    np.testing.assert_allclose(series.offset_us[:3], [-250.0, -251.0, -252.0])
    assert series.source.endswith("[192.0.2.10]")
    assert series.covariates["delay_us"][0] == pytest.approx(12_000.0)


def test_multi_source_logs_read_the_peer_asked_for() -> None:
    series = read("measurements.log", source_id="198.51.100.7")
    np.testing.assert_allclose(series.offset_us, [40.0, 40.0, 40.0])
    with pytest.raises(ValueError, match="203.0.113.99"):
        read("measurements.log", source_id="203.0.113.99")


def test_chrony_statistics_keep_sign_per_source() -> None:
    np.testing.assert_allclose(read("statistics.log").offset_us, -0.8)
    gps = read("statistics.log", source_id="GPS")
    np.testing.assert_allclose(gps.offset_us, 12_000.0)
    assert gps.interval_s == 32.0


def test_ntpd_loopstats_convert_mjd_and_negate_theta() -> None:
    series = read("loopstats")
    # MJD 60370 + 36000 s = 2024-03-01 10:00:00 UTC.
    assert series.time_s[0] == 1709287200.0
    np.testing.assert_allclose(series.offset_us[:3], [-3.0, -4.0, -5.0])
    assert series.covariates["freq_ppm"][0] == pytest.approx(-12.345)
    assert series.covariates["jitter_us"][0] == pytest.approx(2.0)


def test_ntpd_peerstats_read_one_peer_and_negate_theta() -> None:
    refclock = read("peerstats")
    assert refclock.source.endswith("[127.127.20.0]")
    np.testing.assert_allclose(refclock.offset_us, 2.0)
    server = read("peerstats", source_id="203.0.113.5")
    np.testing.assert_allclose(server.offset_us, -1500.0)
    assert server.covariates["delay_us"][0] == pytest.approx(25_000.0)


def test_ptp4l_keeps_slave_minus_master_and_converts_nanoseconds() -> None:
    series = read("ptp4l.log")
    assert len(series) == 30  # port and summary messages are not samples
    np.testing.assert_allclose(series.offset_us[:2], [0.017, -0.023])
    assert series.time_s[0] == 1001.0
    assert series.covariates["freq_ppm"][0] == pytest.approx(1.234)
    assert series.covariates["path_delay_us"][0] == pytest.approx(0.567)
    assert series.covariates["servo_state"][0] == 2.0


def test_mbgsvcd_negates_reference_minus_system() -> None:
    series = read("mbgsvcd.txt")
    assert len(series) == 20
    # The card reports +8.5 us (system behind the reference): -8.5 us in our sign.
    np.testing.assert_allclose(series.offset_us[:2], [-8.5, -8.75])
    assert series.time_s[0] == 1709287200.25
    assert series.covariates["synchronised"][7] == 0.0
    assert series.covariates["latency_us"][0] == pytest.approx(0.14)


def test_csv_reads_iso_time_seconds_and_covariates() -> None:
    series = read("offsets.csv")
    assert series.time_s[0] == 1709287200.0
    assert series.interval_s == 2.0
    np.testing.assert_allclose(series.offset_us[:4], [-25.0, -24.0, -23.0, -22.0])
    assert math.isnan(series.offset_us[4])  # empty cell: missing
    np.testing.assert_allclose(series.covariates["temperature_c"][:2], [40.0, 40.1])


def test_tacc_style_csv_defaults_to_the_ntp_measurement_negated() -> None:
    series = read("tacc_like.csv")
    assert series.source.endswith("[ntp_offset]")
    np.testing.assert_allclose(series.offset_us, -12_500.0)
    assert series.time_s[0] == 1709287200.0
    # Numeric columns become covariates; the text column does not.
    assert set(series.covariates) == {
        "high_precision_time",
        "chrony_system_time_offset",
        "cpu_temp",
        "cpu_load",
    }


def test_csv_offset_column_can_be_chosen() -> None:
    series = read("tacc_like.csv", offset_column="chrony_system_time_offset")
    np.testing.assert_allclose(series.offset_us[:2], [-100.0, -110.0])
    with pytest.raises(ValueError, match="offset_to_us"):
        read("tacc_like.csv", offset_column="cpu_temp")
    scaled = read("tacc_like.csv", offset_column="cpu_temp", offset_to_us=1.0)
    assert scaled.offset_us[0] == pytest.approx(55.0)


def test_a_file_of_no_known_format_names_the_supported_ones() -> None:
    with pytest.raises(UnsupportedFormat) as error:
        read("not_a_clock_log.txt")
    for name in FORMAT_NAMES:
        assert name in str(error.value)


def test_a_file_read_as_the_wrong_format_is_refused() -> None:
    with pytest.raises(UnsupportedFormat, match="ptp4l"):
        read("tracking.log", format="ptp4l")


def test_an_unknown_format_name_is_refused() -> None:
    with pytest.raises(UnsupportedFormat, match="unknown format 'syslog'"):
        read("tracking.log", format="syslog")


@pytest.mark.parametrize(
    ("name", "line_numbers"),
    [
        ("tracking.log", [8, 18]),
        ("measurements.log", [5]),
        ("loopstats", [7]),
        ("ptp4l.log", [26]),
        ("mbgsvcd.txt", [19]),
        ("offsets.csv", [8]),
    ],
)
def test_malformed_lines_are_counted_with_their_line_numbers(name: str, line_numbers: list[int]) -> None:
    series = read(name)
    assert [bad.line_number for bad in series.bad_lines] == line_numbers
    assert all(bad.reason for bad in series.bad_lines)


def test_garbage_after_valid_lines_never_crashes(tmp_path: Path) -> None:
    good = (SAMPLES / "tracking.log").read_bytes()
    damaged = tmp_path / "tracking.log"
    garbage = b"2024-03-01 10:09:00 PPS  1 \xff\xfe\x00garbage\n" + bytes(range(256))
    damaged.write_bytes(good + garbage)
    series = read_clock_log(damaged)
    assert len(series) == len(read("tracking.log"))
    assert len(series.bad_lines) >= 3
    assert all(len(bad.text) <= 120 for bad in series.bad_lines)


def test_chronys_step_excursion_and_a_gap_are_reported() -> None:
    series = read("tracking.log")
    # chrony logged -2.5 s, then stepped the clock back: both jumps are reported, not smoothed.
    assert [(s.index, round(s.size_us)) for s in series.steps] == [(9, -2_500_001), (10, 2_500_001)]
    assert series.offset_us[9] == -2.5e6
    assert [(g.index, g.duration_s) for g in series.gaps] == [(16, 160.0)]


def test_a_lasting_step_is_reported_once() -> None:
    series = read("ptp4l.log")
    assert len(series.steps) == 1
    assert series.steps[0].index == 15
    assert series.steps[0].size_us == pytest.approx(-40.04)


def test_heavy_tailed_noise_is_not_a_step() -> None:
    rng = np.random.default_rng(2)
    offset_us = rng.normal(0.0, 50.0, 5000) + 1000.0 * (rng.random(5000) < 0.05)
    assert detect_steps(offset_us) == []


def test_on_grid_puts_missing_slots_as_nan() -> None:
    gridded = read("tracking.log").on_grid()
    assert gridded.interval_s == 16.0
    assert len(gridded) == 16 + 10 + 5  # the 160 s gap holds 9 empty slots
    assert np.count_nonzero(np.isnan(gridded.offset_us)) == 1 + 9
    np.testing.assert_allclose(np.diff(gridded.time_s), 16.0)
    assert [g.index for g in gridded.gaps] == [25]
    assert [s.index for s in gridded.steps] == [9, 10]


def test_segments_split_at_steps_and_gaps() -> None:
    series = read("tracking.log")
    pieces = list(series.segments())
    assert [len(p) for p in pieces] == [9, 6, 6]
    assert all(not p.steps and not p.gaps for p in pieces)
    np.testing.assert_array_equal(pieces[1].time_s, series.time_s[10:16])


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"no real clock data at {REAL_DATA}")
def test_every_real_log_reads_with_sane_sizes() -> None:
    files = sorted(p for p in REAL_DATA.rglob("*") if p.is_file() and p.suffix != ".md")
    assert files
    for path in files:
        series = read_clock_log(path)
        observed = np.isfinite(series.offset_us)
        assert len(series) >= 200, path
        assert np.all(np.diff(series.time_s) > 0.0), path
        assert 0.5 <= series.interval_s <= 2000.0, path
        assert series.time_s[-1] - series.time_s[0] > 3600.0, path
        assert observed.mean() > 0.99, path
        assert len(series.bad_lines) <= 0.01 * len(series), path
        # Clocks under test are within a second, bar the odd logged step.
        assert abs(np.median(series.offset_us[observed])) < 1e6, path
