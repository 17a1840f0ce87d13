"""A small clock log written by a test: a 1 Hz random walk as a plain CSV (time, offset_us)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

START_S = 1_763_000_000.0  # Unix seconds, 2025-11-13


def write_csv_log(path: Path, n: int, *, step_at: int | None = None, missing: tuple[int, ...] = ()) -> Path:
    """``n`` seconds of offsets (seeded); an optional 500 us clock step at ``step_at``; ``missing`` rows left out."""
    rng = np.random.default_rng(11)
    offsets = np.cumsum(rng.normal(0.0, 0.3, n))
    if step_at is not None:
        offsets[step_at:] += 500.0
    rows = [f"{START_S + i:.3f},{offsets[i]:.4f}" for i in range(n) if i not in missing]
    path.write_text("time,offset_us\n" + "\n".join(rows) + "\n")
    return path
