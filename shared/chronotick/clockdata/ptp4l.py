"""linuxptp's ptp4l servo lines, as printed to stdout/syslog with `-m` or in the journal.

`ptp4l[5374018.735]: master offset        -23 s2 freq   +1234 path delay        567`
"master offset" is slave minus master in nanoseconds: positive means the local clock is ahead,
our sign, so it is only scaled. The bracketed stamp is ptp4l's monotonic clock in seconds; the
line has no Unix time, so time_s is that monotonic time.

Other ptp4l messages (port state changes, best-master selection, `rms ... max` summaries) are
not samples and are skipped; a line with "master offset" that does not parse is a bad line.
"""

from __future__ import annotations

import re
from pathlib import Path

from chronotick.clockdata.lines import parse_file
from chronotick.clockdata.series import OffsetSeries, Sample

FORMAT = "ptp4l"
NS_PER_US = 1e3
PPB_PER_PPM = 1e3

_PTP4L = re.compile(r"ptp4l\[(\d+(?:\.\d+)?)\]:")
_SERVO = re.compile(
    r"ptp4l\[(?P<time>\d+(?:\.\d+)?)\]: +(?:\S+ +)?master offset +(?P<offset>[-+]?\d+) +"
    r"s(?P<state>\d) +freq +(?P<freq>[-+]?\d+)(?: +path delay +(?P<delay>[-+]?\d+))?"
)


def looks_like(text: str) -> bool:
    return bool(_PTP4L.search(text))


def _line(number: int, text: str) -> Sample | None:
    if "master offset" not in text:
        return None
    match = _SERVO.search(text)
    if match is None:
        raise ValueError("unparsable ptp4l servo line")
    covariates = {
        "servo_state": float(match["state"]),
        "freq_ppm": float(match["freq"]) / PPB_PER_PPM,
    }
    if match["delay"] is not None:
        covariates["path_delay_us"] = float(match["delay"]) / NS_PER_US
    return Sample(number, float(match["time"]), float(match["offset"]) / NS_PER_US, covariates)


def read_ptp4l(path: str | Path) -> OffsetSeries:
    """The servo's offset to its master at each sync, with frequency and path delay."""
    return parse_file(path, FORMAT, _line)
