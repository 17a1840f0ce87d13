"""One result type for every clock log, and the checks that make a parsed log usable.

Readers only turn lines into samples; building the series (ordering, cadence, gap and step
detection) is done once, here, so every format reports its gaps and steps the same way.

Sign convention: ``offset_us`` is local clock minus reference, in microseconds, positive when the
local clock is ahead (see ``chronotick.contract``); each reader converts its format to it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# A hole longer than this many median cadences is a gap, not timestamp jitter or one lost poll.
GAP_CADENCES = 3.0
# A jump between consecutive observed offsets is a step when it exceeds this many times the 90th
# percentile of |jump| around it. A high quantile rather than the median, because network noise
# is heavy-tailed: an SNTP client's 1 ms outliers are routine, not steps. For Gaussian noise the
# threshold is about 46 standard deviations of a jump.
STEP_NOISE_QUANTILE = 0.9
STEP_NOISE_FACTOR = 20.0
# Jumps on either side used to estimate the local noise; large enough that a step is one outlier.
STEP_NOISE_HALF_WINDOW = 32
# Below this no jump is a step, so quantised or noise-free logs don't turn rounding into steps.
STEP_FLOOR_US = 1.0
BAD_LINE_TEXT_CHARS = 120


class UnsupportedFormat(ValueError):
    """The file is not in any format a reader exists for (or not in the one asked for)."""


@dataclass(frozen=True)
class ClockStep:
    """A jump in the offset: `index` is the first sample after it; `size_us` = after - before."""

    index: int
    size_us: float


@dataclass(frozen=True)
class Gap:
    """No sample for `duration_s` before the sample at `index` (more than GAP_CADENCES cadences)."""

    index: int
    duration_s: float


@dataclass(frozen=True)
class BadLine:
    """A line that looked like data but could not be parsed; `text` is truncated."""

    line_number: int
    reason: str
    text: str


@dataclass(frozen=True)
class Sample:
    """One parsed line; `source_id` names the peer in logs that interleave several."""

    line_number: int
    time_s: float
    offset_us: float
    covariates: dict[str, float] = field(default_factory=dict)
    source_id: str = ""


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make == ambiguous
class OffsetSeries:
    """A clock's offset history read from a log.

    Attributes:
        source: where it came from (path, plus the chosen peer for multi-source logs).
        format: the reader's format name (see FORMATS).
        time_s: (n,) float64 sample times, strictly increasing; Unix seconds except for ptp4l,
            whose log only has its monotonic clock.
        offset_us: (n,) float64 local minus reference in microseconds; NaN = missing.
        covariates: name -> (n,) float64 other per-sample numbers the log carries; NaN = missing.
        interval_s: median spacing of time_s (NaN with fewer than two samples).
        steps: jumps much larger than the local noise; reported, never smoothed away.
        gaps: holes longer than GAP_CADENCES cadences.
        bad_lines: lines that looked like data but did not parse (truncated, garbled).
    """

    source: str
    format: str
    time_s: np.ndarray
    offset_us: np.ndarray
    covariates: dict[str, np.ndarray]
    interval_s: float
    steps: list[ClockStep]
    gaps: list[Gap]
    bad_lines: list[BadLine]

    def __len__(self) -> int:
        return int(self.time_s.size)

    def segment(self, start: int, stop: int) -> OffsetSeries:
        """Samples start..stop-1, with the steps and gaps inside re-indexed; bad lines are kept."""
        start, stop, _ = slice(start, stop).indices(len(self))
        return replace(
            self,
            time_s=self.time_s[start:stop],
            offset_us=self.offset_us[start:stop],
            covariates={name: values[start:stop] for name, values in self.covariates.items()},
            steps=[replace(s, index=s.index - start) for s in self.steps if start < s.index < stop],
            gaps=[replace(g, index=g.index - start) for g in self.gaps if start < g.index < stop],
        )

    def segments(self, min_length: int = 2) -> Iterator[OffsetSeries]:
        """The stretches between steps and gaps: continuous history a forecaster can use as is."""
        cuts = sorted({0, len(self), *(s.index for s in self.steps), *(g.index for g in self.gaps)})
        for start, stop in pairwise(cuts):
            if stop - start >= min_length:
                yield self.segment(start, stop)

    def on_grid(self, interval_s: float | None = None) -> OffsetSeries:
        """The series on a regular grid of `interval_s` (default: the median cadence), holes as NaN.

        Each sample goes to its nearest slot; when several land in one slot the last wins, since
        loggers that run late write the freshest value last. Steps and gaps keep pointing at the
        sample they were found at.
        """
        interval_s = self.interval_s if interval_s is None else interval_s
        if not (math.isfinite(interval_s) and interval_s > 0.0):
            raise ValueError(f"need a positive cadence to grid on, got {interval_s}")
        if len(self) == 0:
            return self
        slot = np.rint((self.time_s - self.time_s[0]) / interval_s).astype(np.int64)
        n_slots = int(slot[-1]) + 1

        def place(values: np.ndarray) -> np.ndarray:
            gridded = np.full(n_slots, np.nan)
            gridded[slot] = values
            return gridded

        return replace(
            self,
            time_s=self.time_s[0] + interval_s * np.arange(n_slots),
            offset_us=place(self.offset_us),
            covariates={name: place(values) for name, values in self.covariates.items()},
            interval_s=interval_s,
            steps=[replace(s, index=int(slot[s.index])) for s in self.steps],
            gaps=[replace(g, index=int(slot[g.index])) for g in self.gaps],
        )


def bad_line(line_number: int, reason: str, text: str) -> BadLine:
    return BadLine(line_number, reason, text[:BAD_LINE_TEXT_CHARS])


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of non-blank lines; undecodable bytes never crash."""
    with path.open(encoding="utf-8", errors="replace") as file:
        for number, line in enumerate(file, start=1):
            text = line.strip()
            if text:
                yield number, text


def pick_source(samples: Sequence[Sample], source_id: str | None) -> tuple[list[Sample], str]:
    """Keep one peer of a multi-source log: the one asked for, else the one with most samples.

    Peers are never mixed: each has its own path asymmetry, so interleaving them would turn the
    difference between servers into fake offset noise.
    """
    counts = Counter(s.source_id for s in samples)
    if source_id is None:
        if not counts:
            return [], ""
        source_id = counts.most_common(1)[0][0]
    elif source_id not in counts:
        present = ", ".join(sorted(counts))
        raise ValueError(f"source {source_id!r} not in the log; present: {present}")
    return [s for s in samples if s.source_id == source_id], source_id


def detect_gaps(time_s: np.ndarray, interval_s: float) -> list[Gap]:
    if time_s.size < 2 or not math.isfinite(interval_s):
        return []
    spacing_s = np.diff(time_s)
    return [Gap(int(i) + 1, float(spacing_s[i])) for i in np.flatnonzero(spacing_s > GAP_CADENCES * interval_s)]


def detect_steps(offset_us: np.ndarray) -> list[ClockStep]:
    """Jumps between consecutive observed offsets far beyond the local noise.

    The noise is a running quantile of |jump| over the neighbouring jumps, so a noisy stretch
    (an SNTP client under load) and a quiet one (PPS) each get their own threshold, and the step
    itself barely moves the quantile it is compared with. A one-sample excursion (chrony logging
    -11 s and stepping the clock back) shows as two steps: both jumps happened.
    """
    observed = np.flatnonzero(np.isfinite(offset_us))
    if observed.size < 3:
        return []
    jumps_us = np.diff(offset_us[observed])
    padded = np.pad(np.abs(jumps_us), STEP_NOISE_HALF_WINDOW, mode="symmetric")
    window = sliding_window_view(padded, 2 * STEP_NOISE_HALF_WINDOW + 1)
    noise_us = np.quantile(window, STEP_NOISE_QUANTILE, axis=1)
    threshold_us = np.maximum(STEP_NOISE_FACTOR * noise_us, STEP_FLOOR_US)
    return [
        ClockStep(int(observed[k + 1]), float(jumps_us[k])) for k in np.flatnonzero(np.abs(jumps_us) > threshold_us)
    ]


def build_series(source: str, format: str, samples: Iterable[Sample], bad_lines: list[BadLine]) -> OffsetSeries:
    """Order samples by time, drop repeated timestamps, and find cadence, gaps and steps.

    A repeated timestamp keeps its first sample and reports the others as bad lines: two
    offsets for one instant cannot both be right, and the grid needs distinct times.
    """
    ordered = sorted(samples, key=lambda s: s.time_s)
    kept: list[Sample] = []
    bad = list(bad_lines)
    for sample in ordered:
        if kept and sample.time_s == kept[-1].time_s:
            bad.append(bad_line(sample.line_number, "repeats the previous timestamp", ""))
        else:
            kept.append(sample)
    bad.sort(key=lambda b: b.line_number)
    time_s = np.array([s.time_s for s in kept], dtype=np.float64)
    offset_us = np.array([s.offset_us for s in kept], dtype=np.float64)
    names = sorted({name for s in kept for name in s.covariates})
    covariates = {name: np.array([s.covariates.get(name, math.nan) for s in kept], dtype=np.float64) for name in names}
    interval_s = float(np.median(np.diff(time_s))) if time_s.size >= 2 else math.nan
    return OffsetSeries(
        source=source,
        format=format,
        time_s=time_s,
        offset_us=offset_us,
        covariates=covariates,
        interval_s=interval_s,
        steps=detect_steps(offset_us),
        gaps=detect_gaps(time_s, interval_s),
        bad_lines=bad,
    )
