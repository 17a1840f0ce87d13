"""What a run ran on, in words, for the records that benchmarks and model cards keep."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The processor's model name (Linux's /proc/cpuinfo), else what ``platform`` says."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor() or "unknown processor",
    )


def describe() -> str:
    """E.g. "2 cores (Intel(R) Xeon(R) Processor)"."""
    return f"{os.cpu_count()} cores ({cpu_model()})"
