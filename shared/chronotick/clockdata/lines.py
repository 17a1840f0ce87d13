"""The line loop every text log shares: parse, collect bad lines, assemble the series."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from chronotick.clockdata.series import (
    BadLine,
    OffsetSeries,
    Sample,
    bad_line,
    build_series,
    numbered_lines,
    pick_source,
)

# Returns None for lines that are not data (banners, other daemon messages); raises ValueError
# or IndexError for lines that should have been data but are malformed or truncated.
LineParser = Callable[[int, str], Sample | None]

# MJD of 1970-01-01: ntpd stamps its statistics files in Modified Julian Days.
UNIX_EPOCH_MJD = 40_587
SECONDS_PER_DAY = 86_400.0
US_PER_S = 1e6


def utc_to_unix_s(date: str, time: str) -> float:
    """Unix seconds of a 'YYYY-MM-DD' 'HH:MM:SS[.f]' pair in UTC, as chrony writes them."""
    return datetime.fromisoformat(f"{date}T{time}").replace(tzinfo=UTC).timestamp()


def parse_file(
    path: str | Path,
    format: str,
    parse_line: LineParser,
    *,
    multi_source: bool = False,
    source_id: str | None = None,
) -> OffsetSeries:
    """Read `path` line by line with `parse_line`; malformed lines are recorded, never raised."""
    path = Path(path)
    samples: list[Sample] = []
    bad: list[BadLine] = []
    for number, text in numbered_lines(path):
        try:
            sample = parse_line(number, text)
        except (ValueError, IndexError) as error:
            bad.append(bad_line(number, str(error) or type(error).__name__, text))
            continue
        if sample is not None:
            samples.append(sample)
    source = str(path)
    if multi_source:
        samples, chosen = pick_source(samples, source_id)
        source = f"{path} [{chosen}]"
    return build_series(source, format, samples, bad)
