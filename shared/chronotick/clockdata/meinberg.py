"""Meinberg `mbgsvcd -f` output: the system clock compared with a GNSS/PZF card each second.

`GNS181PEX: 2021-02-20 07:18:05.6747944 1613805485.674794436 1613805485.674785614 +0.000008583,
ltcy: 0.14 us, exec: 0.08 us, limit: 0.08 us, leap: 00 *`
Fields: device, UTC date and time, reference (card) time and system time in Unix seconds, offset
= reference - system in seconds, latency/execution/limit in microseconds, leap bits, and '*'
when the card is synchronised. The offset is negated into our local-minus-reference sign; the
card's time is the sample time. Lines that do not start with a device name (the banner, device
list, cycle counter) are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

from chronotick.clockdata.lines import US_PER_S, parse_file
from chronotick.clockdata.series import OffsetSeries, Sample

FORMAT = "mbgsvcd"

_DEVICE = re.compile(r"^[A-Z][A-Z0-9]+: ")
_DATA = re.compile(
    r"^[A-Z][A-Z0-9]+: +\d{4}-\d\d-\d\d +\S+ +(?P<ref>\d+\.\d+) +(?P<sys>\d+\.\d+) +"
    r"(?P<offset>[-+]?\d+\.\d+), +ltcy: +(?P<ltcy>[-\d.]+) us, +exec: +(?P<exec>[-\d.]+) us, +"
    r"limit: +(?P<limit>[-\d.]+) us, +leap: +\d+(?P<sync> +\*)?\s*$"
)


def looks_like(text: str) -> bool:
    return bool(_DATA.match(text))


def _line(number: int, text: str) -> Sample | None:
    if not _DEVICE.match(text):
        return None
    match = _DATA.match(text)
    if match is None:
        raise ValueError("unparsable mbgsvcd line")
    covariates = {
        "latency_us": float(match["ltcy"]),
        "exec_us": float(match["exec"]),
        "limit_us": float(match["limit"]),
        "synchronised": 1.0 if match["sync"] else 0.0,
    }
    return Sample(number, float(match["ref"]), -float(match["offset"]) * US_PER_S, covariates)


def read_mbgsvcd(path: str | Path) -> OffsetSeries:
    """System clock against the card each second; unsynchronised seconds are flagged, kept."""
    return parse_file(path, FORMAT, _line)
