"""What the benchmark evaluates: clock logs read onto their grid, or held-out synthetic clocks.

Logs are read with ``chronotick.clockdata.read_clock_log``; a file that cannot be read (wrong
format, unreadable, empty) becomes a ``SourceFailure`` with the reason, never an exception, so
one bad file does not stop a benchmark over a folder of real-world logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chronotick.clockdata import read_clock_log
from chronotick.synthetic import SCENARIOS, generate_clock

# Training draws its clocks from seeds below 20_000; evaluation stays far away from them.
SYNTHETIC_FIRST_SEED = 50_000
SYNTHETIC_LENGTH_S = 4 * 3600


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make == ambiguous
class EvalSeries:
    """One clock on a regular grid: ``offsets_us`` (NaN = missing) every ``interval_s``.

    ``time_s`` are the grid's times as the log wrote them (None for synthetic clocks, which no
    model is fine-tuned on): ``--after-finetune`` compares them with the fine-tuning cut.
    """

    name: str
    format: str
    offsets_us: np.ndarray
    interval_s: float
    step_indices: list[int]
    gaps: int
    bad_lines: int
    bad_line_examples: list[str]
    time_s: np.ndarray | None = None


@dataclass(frozen=True)
class SourceFailure:
    path: str
    reason: str


def log_files(paths: list[str]) -> Iterator[Path]:
    """The files named, and every non-hidden file under the folders named (sorted, recursively)."""
    for given in map(Path, paths):
        if given.is_dir():
            yield from sorted(
                p
                for p in given.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(given).parts)
            )
        else:
            yield given


def read_log(path: Path) -> EvalSeries | SourceFailure:
    """A log on its own median cadence, or why it could not be used."""
    try:
        series = read_clock_log(path)
        if len(series) < 2:
            return SourceFailure(str(path), f"{series.format}: only {len(series)} usable samples")
        grid = series.on_grid()
    except (ValueError, OSError) as error:  # UnsupportedFormat is a ValueError
        return SourceFailure(str(path), f"{type(error).__name__}: {error}")
    return EvalSeries(
        name=str(path),
        format=grid.format,
        offsets_us=grid.offset_us,
        interval_s=grid.interval_s,
        step_indices=[s.index for s in grid.steps],
        gaps=len(grid.gaps),
        bad_lines=len(grid.bad_lines),
        bad_line_examples=[f"line {b.line_number}: {b.reason}" for b in grid.bad_lines[:3]],
        time_s=grid.time_s,
    )


def synthetic_series(length_s: int = SYNTHETIC_LENGTH_S, first_seed: int = SYNTHETIC_FIRST_SEED) -> list[EvalSeries]:
    """One 1 Hz clock per scenario, seeds first_seed, first_seed + 1, ... (never training seeds)."""
    clocks = []
    for offset, scenario in enumerate(SCENARIOS):
        seed = first_seed + offset
        clock = generate_clock(scenario, length_s, seed=seed)
        clocks.append(
            EvalSeries(
                name=f"synthetic:{scenario}:seed={seed}",
                format="synthetic",
                offsets_us=clock.observed_offset_us,
                interval_s=clock.interval_s,
                step_indices=[int(i) for i in clock.steps],
                gaps=0,
                bad_lines=0,
                bad_line_examples=[],
            )
        )
    return clocks
