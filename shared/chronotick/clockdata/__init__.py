"""Readers for the clock logs users already have, into one OffsetSeries type.

Every reader converts to the project's sign (offset_us = local minus reference, microseconds,
positive = local clock ahead), reports gaps and clock steps instead of smoothing them, and counts
malformed lines instead of failing on them.
"""

from chronotick.clockdata.formats import (
    FORMAT_NAMES,
    FORMATS,
    LogFormat,
    detect_format,
    read_clock_log,
)
from chronotick.clockdata.series import BadLine, ClockStep, Gap, OffsetSeries, UnsupportedFormat

__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "BadLine",
    "ClockStep",
    "Gap",
    "LogFormat",
    "OffsetSeries",
    "UnsupportedFormat",
    "detect_format",
    "read_clock_log",
]
