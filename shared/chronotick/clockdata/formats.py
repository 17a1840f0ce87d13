"""Which reader handles a file: by name, or detected from the file's own lines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from chronotick.clockdata import chrony, meinberg, ntpd, ptp4l, table
from chronotick.clockdata.series import OffsetSeries, UnsupportedFormat, numbered_lines

# Enough lines to get past banners and start-up chatter (mbgsvcd prints a few, ptp4l dozens).
_DETECT_LINES = 200


@dataclass(frozen=True)
class LogFormat:
    """A format name, how strongly a file's first lines look like it, and its reader."""

    name: str
    votes: Callable[[list[str]], int]
    read: Callable[..., OffsetSeries]


def _each_line(looks_like: Callable[[str], bool]) -> Callable[[list[str]], int]:
    """Votes of a line-oriented log: one per line that looks like its data."""
    return lambda head: sum(map(looks_like, head))


def _csv_header(head: list[str]) -> int:
    """A table is recognised by its header alone; it then outvotes any line format."""
    return len(head) if head and table.looks_like(head[0]) else 0


FORMATS: tuple[LogFormat, ...] = (
    LogFormat(chrony.TRACKING, _each_line(chrony.looks_like_tracking), chrony.read_tracking),
    LogFormat(chrony.MEASUREMENTS, _each_line(chrony.looks_like_measurements), chrony.read_measurements),
    LogFormat(chrony.STATISTICS, _each_line(chrony.looks_like_statistics), chrony.read_statistics),
    LogFormat(ntpd.LOOPSTATS, _each_line(ntpd.looks_like_loopstats), ntpd.read_loopstats),
    LogFormat(ntpd.PEERSTATS, _each_line(ntpd.looks_like_peerstats), ntpd.read_peerstats),
    LogFormat(ptp4l.FORMAT, _each_line(ptp4l.looks_like), ptp4l.read_ptp4l),
    LogFormat(meinberg.FORMAT, _each_line(meinberg.looks_like), meinberg.read_mbgsvcd),
    LogFormat(table.FORMAT, _csv_header, table.read_csv),
)
FORMAT_NAMES: tuple[str, ...] = tuple(f.name for f in FORMATS)


def _unsupported(path: Path, detail: str) -> UnsupportedFormat:
    return UnsupportedFormat(f"{path}: {detail}; supported formats: {', '.join(FORMAT_NAMES)}")


def _votes(path: Path) -> dict[str, int]:
    head = [text for _, text in islice(numbered_lines(path), _DETECT_LINES)]
    return {f.name: f.votes(head) for f in FORMATS}


def detect_format(path: str | Path) -> str:
    """The format recognising most of the file's first lines; UnsupportedFormat if none does."""
    path = Path(path)
    votes = _votes(path)
    best = max(votes, key=votes.__getitem__)
    if votes[best] == 0:
        raise _unsupported(path, "no line looks like any supported clock log")
    return best


def read_clock_log(path: str | Path, format: str | None = None, **options: Any) -> OffsetSeries:
    """Read a clock log into an OffsetSeries, detecting its format unless `format` names one.

    `options` go to the reader: `source_id=` for chrony measurements/statistics and ntpd
    peerstats; `offset_column=`, `offset_to_us=`, `time_column=` for CSV.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    if format is None:
        format = detect_format(path)
    chosen = next((f for f in FORMATS if f.name == format), None)
    if chosen is None:
        raise _unsupported(path, f"unknown format {format!r}")
    if _votes(path)[format] == 0:
        raise _unsupported(path, f"no line looks like {format}")
    return chosen.read(path, **options)
