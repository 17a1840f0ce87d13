"""Plain CSV tables of offsets: a header row, a time column, an offset column, anything else.

Time column (first present): `time`, `timestamp`, `time_s`, `unix_time`, `system_time`; values in
Unix seconds or ISO-8601 (naive ISO times are taken as UTC). Offset column (first present, or
`offset_column=`), with the factor that turns it into our microseconds and sign:
- `offset_us`: already ours;
- `offset_s`: our sign, in seconds;
- `ntp_offset`: an NTP client's theta in seconds (reference minus local): negated;
- `chrony_system_time_offset`: chrony's "System time" in seconds, taken as local minus NTP
  time. Exports differ here (`chronyc -c tracking` prints the correction, positive when slow);
  the TACC column falls at the logged -85.7 ppm frequency, as a slow clock's offset does.
For the TACC export (which has both of the last two) the default is `ntp_offset`: it is an
independent measurement against a reference, while chrony's column is chrony's own belief.
Any other column whose values are numeric becomes a covariate; empty cells are NaN.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path

from chronotick.clockdata.lines import US_PER_S
from chronotick.clockdata.series import (
    BadLine,
    OffsetSeries,
    Sample,
    UnsupportedFormat,
    bad_line,
    build_series,
)

FORMAT = "csv"
TIME_COLUMNS = ("time", "timestamp", "time_s", "unix_time", "system_time")
OFFSET_COLUMNS_TO_US: dict[str, float] = {
    "offset_us": 1.0,
    "offset_s": US_PER_S,
    "ntp_offset": -US_PER_S,
    "chrony_system_time_offset": US_PER_S,
}


def _header(text: str) -> list[str]:
    return [name.strip() for name in next(csv.reader([text]))]


def looks_like(first_line: str) -> bool:
    """A header naming a time column and a known offset column."""
    names = {name.lower() for name in _header(first_line)}
    return bool(names & set(TIME_COLUMNS)) and bool(names & set(OFFSET_COLUMNS_TO_US))


def _unix_s(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        stamp = datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _number(value: str) -> float:
    return math.nan if value.strip() == "" else float(value)


def _is_number(value: str) -> bool:
    try:
        _number(value)
    except ValueError:
        return False
    return True


def read_csv(
    path: str | Path,
    *,
    offset_column: str | None = None,
    offset_to_us: float | None = None,
    time_column: str | None = None,
) -> OffsetSeries:
    """Read a CSV export; an offset column not in OFFSET_COLUMNS_TO_US needs `offset_to_us`."""
    path = Path(path)
    with path.open(encoding="utf-8", errors="replace", newline="") as file:
        rows = csv.reader(file)
        header = [name.strip() for name in next(rows, [])]
        lower = [name.lower() for name in header]
        time_name = time_column or next((c for c in TIME_COLUMNS if c in lower), None)
        offset_name = offset_column or next((c for c in OFFSET_COLUMNS_TO_US if c in lower), None)
        if time_name is None or time_name.lower() not in lower:
            raise UnsupportedFormat(f"{path}: no time column; expected one of {', '.join(TIME_COLUMNS)}")
        if offset_name is None or offset_name.lower() not in lower:
            raise UnsupportedFormat(f"{path}: no offset column; expected one of {', '.join(OFFSET_COLUMNS_TO_US)}")
        scale = offset_to_us
        if scale is None:
            scale = OFFSET_COLUMNS_TO_US.get(offset_name.lower())
        if scale is None:
            raise ValueError(f"offset column {offset_name!r} is not a known one: give offset_to_us")
        time_at, offset_at = lower.index(time_name.lower()), lower.index(offset_name.lower())
        bad: list[BadLine] = []
        kept: list[tuple[int, float, float, list[str]]] = []
        for row in rows:
            number = rows.line_num  # the last physical line of the row: quoted cells may span lines
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                reason = f"{len(row)} cells, header has {len(header)}"
                bad.append(bad_line(number, reason, ",".join(row)))
                continue
            try:
                kept.append((number, _unix_s(row[time_at]), _number(row[offset_at]) * scale, row))
            except ValueError as error:
                bad.append(bad_line(number, str(error), ",".join(row)))
    covariate_at = {
        header[i]: i
        for i in range(len(header))
        if i not in (time_at, offset_at) and all(_is_number(row[i]) for *_, row in kept)
    }
    samples = [
        Sample(number, time_s, offset_us, {c: _number(row[i]) for c, i in covariate_at.items()})
        for number, time_s, offset_us, row in kept
    ]
    return build_series(f"{path} [{header[offset_at]}]", FORMAT, samples, bad)
