"""chronyd's `log tracking measurements statistics` files (columns as in chrony.conf(5)).

Signs, per chrony.conf(5):
- tracking.log "Offset": positive when the local clock was ahead: kept.
- measurements.log "Offset" is NTP's theta, "positive indicates that the local clock is slow of
  the remote source": negated.
- statistics.log "Est. offset": "positive means the local clock is estimated to be fast": kept.

measurements.log and statistics.log interleave peers; one peer is read per call (`source_id`,
default the one with most samples) because peers differ by their own path asymmetry.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from chronotick.clockdata.lines import US_PER_S, parse_file, utc_to_unix_s
from chronotick.clockdata.series import OffsetSeries, Sample

TRACKING = "chrony-tracking"
MEASUREMENTS = "chrony-measurements"
STATISTICS = "chrony-statistics"

# statistics.log gives frequencies as plain ratios (s/s).
_PPM_PER_RATIO = 1e6

_STAMP = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? +\S+ +"
_EXP = r"-?\d+\.\d+e[-+]\d+"
_TRACKING_LINE = re.compile(_STAMP + r"\d+ +-?\d+\.\d+ +-?\d+\.\d+ +" + _EXP)
_MEASUREMENTS_LINE = re.compile(_STAMP + r"[N+\-?] +\d+ +[01]{3} +[01]{3} +[01]{4} ")
_STATISTICS_LINE = re.compile(_STAMP + " +".join([_EXP] * 5))


def _is_banner(text: str) -> bool:
    """chrony repeats a '=====' ruled column header every `logbanner` lines."""
    return text.startswith("=") or text.startswith("Date (UTC)")


def looks_like_tracking(text: str) -> bool:
    return bool(_TRACKING_LINE.match(text))


def looks_like_measurements(text: str) -> bool:
    return bool(_MEASUREMENTS_LINE.match(text))


def looks_like_statistics(text: str) -> bool:
    return bool(_STATISTICS_LINE.match(text))


def _tracking_line(number: int, text: str) -> Sample | None:
    if _is_banner(text):
        return None
    f = text.split()
    if len(f) < 7:
        raise ValueError(f"tracking line has {len(f)} fields, need at least 7")
    stratum = int(f[3])
    covariates = {"freq_ppm": float(f[4]), "skew_ppm": float(f[5]), "stratum": float(stratum)}
    unsynchronised = stratum == 0 or (len(f) > 7 and f[7] == "?")
    # The optional columns came with chrony 2.x; older logs stop after the offset.
    for name, column, scale in (
        ("sources", 8, 1.0),
        ("offset_sd_us", 9, US_PER_S),
        ("remaining_correction_us", 10, US_PER_S),
        ("root_delay_us", 11, US_PER_S),
        ("root_dispersion_us", 12, US_PER_S),
        ("max_error_us", 13, US_PER_S),
    ):
        if len(f) > column:
            covariates[name] = float(f[column]) * scale
    # Unsynchronised rows log 0.0 as offset: chrony had no estimate, not a perfect clock.
    offset_us = math.nan if unsynchronised else float(f[6]) * US_PER_S
    return Sample(number, utc_to_unix_s(f[0], f[1]), offset_us, covariates)


def _measurements_line(number: int, text: str) -> Sample | None:
    if _is_banner(text):
        return None
    if not looks_like_measurements(text):
        raise ValueError("not a chrony measurements line")
    f = text.split()
    if len(f) < 16:
        raise ValueError(f"measurements line has {len(f)} fields, need at least 16")
    covariates = {
        "delay_us": float(f[12]) * US_PER_S,
        "dispersion_us": float(f[13]) * US_PER_S,
        "root_delay_us": float(f[14]) * US_PER_S,
        "root_dispersion_us": float(f[15]) * US_PER_S,
        "stratum": float(f[4]),
    }
    return Sample(number, utc_to_unix_s(f[0], f[1]), -float(f[11]) * US_PER_S, covariates, f[2])


def _statistics_line(number: int, text: str) -> Sample | None:
    if _is_banner(text):
        return None
    f = text.split()
    if len(f) < 12:
        raise ValueError(f"statistics line has {len(f)} fields, need at least 12")
    covariates = {
        "std_dev_us": float(f[3]) * US_PER_S,
        "offset_sd_us": float(f[5]) * US_PER_S,
        "diff_freq_ppm": float(f[6]) * _PPM_PER_RATIO,
        "est_skew_ppm": float(f[7]) * _PPM_PER_RATIO,
        "samples": float(f[9]),
        "runs": float(f[11]),
    }
    return Sample(number, utc_to_unix_s(f[0], f[1]), float(f[4]) * US_PER_S, covariates, f[2])


def read_tracking(path: str | Path) -> OffsetSeries:
    """chrony's offset estimate at each clock update; unsynchronised updates are NaN."""
    return parse_file(path, TRACKING, _tracking_line)


def read_measurements(path: str | Path, *, source_id: str | None = None) -> OffsetSeries:
    """Raw NTP samples of one peer: the noisiest and most direct view of the clock."""
    return parse_file(path, MEASUREMENTS, _measurements_line, multi_source=True, source_id=source_id)


def read_statistics(path: str | Path, *, source_id: str | None = None) -> OffsetSeries:
    """chrony's regression estimate of one source's offset: what chrony itself believed."""
    return parse_file(path, STATISTICS, _statistics_line, multi_source=True, source_id=source_id)
