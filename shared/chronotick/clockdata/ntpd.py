"""ntpd's `statsdir` files: loopstats (the clock discipline) and peerstats (per-peer samples).

Both stamp lines with MJD and seconds past UTC midnight. Their offsets follow NTP's theta,
reference minus local (positive: local clock behind), so both readers negate them.
"""

from __future__ import annotations

import re
from pathlib import Path

from chronotick.clockdata.lines import (
    SECONDS_PER_DAY,
    UNIX_EPOCH_MJD,
    US_PER_S,
    parse_file,
)
from chronotick.clockdata.series import OffsetSeries, Sample

LOOPSTATS = "ntpd-loopstats"
PEERSTATS = "ntpd-peerstats"

_NUMBER = r"-?\d+(\.\d+)?(e[-+]?\d+)?"
_STAMP = r"^\d{5} +\d+(\.\d+)? +"
_LOOPSTATS_LINE = re.compile(_STAMP + " +".join([_NUMBER] * 4) + r"( |$)")
_PEERSTATS_LINE = re.compile(_STAMP + r"\S+ +[0-9a-fA-F]{4} +" + _NUMBER)


def looks_like_loopstats(text: str) -> bool:
    return bool(_LOOPSTATS_LINE.match(text))


def looks_like_peerstats(text: str) -> bool:
    return bool(_PEERSTATS_LINE.match(text))


def _unix_s(mjd: str, seconds: str) -> float:
    return (int(mjd) - UNIX_EPOCH_MJD) * SECONDS_PER_DAY + float(seconds)


def _loopstats_line(number: int, text: str) -> Sample | None:
    f = text.split()
    if len(f) < 7 or not looks_like_loopstats(text):
        raise ValueError(f"loopstats line needs 7 numeric fields, has {len(f)}")
    covariates = {
        "freq_ppm": float(f[3]),
        "jitter_us": float(f[4]) * US_PER_S,
        "wander_ppm": float(f[5]),
        "time_constant": float(f[6]),
    }
    return Sample(number, _unix_s(f[0], f[1]), -float(f[2]) * US_PER_S, covariates)


def _peerstats_line(number: int, text: str) -> Sample | None:
    f = text.split()
    if len(f) < 8 or not looks_like_peerstats(text):
        raise ValueError(f"peerstats line needs 8 fields, has {len(f)}")
    covariates = {
        "delay_us": float(f[5]) * US_PER_S,
        "dispersion_us": float(f[6]) * US_PER_S,
        "jitter_us": float(f[7]) * US_PER_S,
    }
    return Sample(number, _unix_s(f[0], f[1]), -float(f[4]) * US_PER_S, covariates, f[2])


def read_loopstats(path: str | Path) -> OffsetSeries:
    """The offset ntpd's discipline loop saw at each update."""
    return parse_file(path, LOOPSTATS, _loopstats_line)


def read_peerstats(path: str | Path, *, source_id: str | None = None) -> OffsetSeries:
    """One peer's filtered samples (default: the peer with most lines, usually the system peer)."""
    return parse_file(path, PEERSTATS, _peerstats_line, multi_source=True, source_id=source_id)
