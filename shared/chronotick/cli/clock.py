"""What the gateway remembers of a clock, for the terminal: ``chronotick status --clock`` (its
``ClockReport``) and the line ``chronotick predict --clock-id`` adds to its answer."""

from __future__ import annotations

from rich.table import Table

from chronotick.contract import ClockReport, SeriesMemory

# Members named in a cell (the heaviest weights, the smallest errors); the others are counted.
TOP_MEMBERS = 3
# The fused intervals whose realised coverage the gateway reports (the keys of HorizonMemory.coverage).
COVERAGE_LEVELS = ("0.8", "0.95")


def memory_line(memory: SeriesMemory) -> str:
    """One line on how the answer used its clock's memory."""
    return (
        f"clock {memory.clock_id}: {memory.state}, {memory.scored} scored forecasts behind its memory, "
        f"{memory.newly_scored} scored by this request's samples, remembered weights' share {memory.handover:.0%}"
    )


def report_header(report: ClockReport) -> str:
    last = "none yet" if report.last_sample_s is None else f"{report.last_sample_s:.3f} s"
    return (
        f"clock {report.clock_id}: interval {report.interval_s:g} s, last sample {last}, "
        f"{report.requests} requests, {report.pending_forecasts} pending forecasts, "
        f"state {report.state_bytes} bytes"
    )


def _top(values: dict[str, float], *, largest: bool, digits: int) -> str:
    ranked = sorted(values.items(), key=lambda item: (-item[1] if largest else item[1], item[0]))
    shown = ", ".join(f"{name} {value:.{digits}f}" for name, value in ranked[:TOP_MEMBERS])
    more = len(ranked) - TOP_MEMBERS
    return (shown + (f" (+{more} more)" if more > 0 else "")) or "-"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f} %"


def clock_table(report: ClockReport) -> Table:
    """One row per scored horizon: evidence, rule, weights, errors, interval coverage, error scale."""
    table = Table(title=f"Memory of clock {report.clock_id} (errors in us)")
    for header in (
        "horizon (s)",
        "scored",
        "rule",
        "weights (top)",
        "MAE fused",
        "MAE members (best)",
        *(f"cov {float(level):.0%}" for level in COVERAGE_LEVELS),
        "error scale",
    ):
        left = header in ("rule", "weights (top)", "MAE members (best)")
        table.add_column(header, justify="left" if left else "right")
    for horizon in sorted(report.horizons, key=lambda h: h.horizon_s):
        members = {name: mae for name, mae in horizon.mae_us.items() if name != "fused"}
        fused = horizon.mae_us.get("fused")
        table.add_row(
            f"{horizon.horizon_s:g}",
            str(horizon.scored),
            horizon.rule,
            _top(horizon.weights, largest=True, digits=2),
            "-" if fused is None else f"{fused:.3f}",
            _top(members, largest=False, digits=3),
            *(_percent(horizon.coverage.get(level)) for level in COVERAGE_LEVELS),
            f"{horizon.error_scale_us:.3f}",
        )
    if not report.horizons:
        table.caption = "no forecast of this clock has been scored yet"
    return table
