"""What every benchmark shares: the workload, and recording figures with their provenance."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# The scripts that drive a fleet share tests/support's helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chronotick.bench.records import checkout_state, machine_description, write_record  # noqa: E402
from chronotick.synthetic import generate_clock  # noqa: E402

CONTEXT, HORIZON = 512, 60


def clock_series(seed: int, length: int = CONTEXT) -> dict[str, object]:
    """One synthetic clock's history in the contract's form."""
    offsets = generate_clock("mixed", length, seed=seed).observed_offset_us
    return {"offsets_us": [None if np.isnan(v) else float(v) for v in offsets], "interval_s": 1.0}


def percentile_ms(latencies_s: list[float], q: float) -> float:
    return float(np.percentile(latencies_s, q)) * 1000.0


def provenance(script: str, argv: list[str]) -> str:
    commit, dirty = checkout_state()
    return (
        f"Command: `python benchmarks/{script} {' '.join(argv)}`  \n"
        f"Commit: `{commit}{' (with uncommitted changes)' if dirty else ''}`, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}  \n"
        f"Machine: {machine_description()}; context {CONTEXT}, horizon {HORIZON}."
    )


def log_arguments(doc: str) -> tuple[list[Path], Path | None]:
    """A benchmark over real clock logs: the logs named (the ``*.txt`` of each folder named; the
    scion logs beside the checkout by default), in order, and the Markdown file to record in."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("../shared/data/scion")])
    parser.add_argument("--write", type=Path, help="record this run and regenerate this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()
    logs = sorted(p for path in args.paths for p in ([path] if path.is_file() else path.glob("*.txt")))
    return logs, args.write


def publish(text: str, markdown: Path | None, section: str) -> None:
    """Print a benchmark's record, and put it in ``markdown`` as ``section`` when asked to."""
    print(text)
    if markdown is not None:
        write_record(markdown, section, text)
