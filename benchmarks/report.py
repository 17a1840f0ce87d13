"""Regenerate BENCHMARKS.md from the latest record of each section under benchmarks/results/."""

from __future__ import annotations

from pathlib import Path

from chronotick.bench.records import render

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    (ROOT / "BENCHMARKS.md").write_text(render(ROOT))
