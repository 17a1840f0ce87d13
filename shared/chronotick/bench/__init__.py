"""The accuracy benchmark: rolling-origin backtests of the fleet's forecasts on whole clock logs.

Run it as ``python -m chronotick.bench PATH... [options]`` (see ``__main__``). The flow is one
way: ``sources`` reads logs (or generates synthetic clocks) onto a grid, ``origins`` picks the
forecast origins a fair test may use, ``forecasters`` asks the gateway (or the classical
forecasters in process) for every origin, ``metrics`` scores the answers against the observed
offsets, and ``report`` writes the tables, JSON and plots. ``replay`` is the other loop: each log
streamed to the gateway in time order as an agent would, its clock remembered, scored side by side
with the same origins asked for without memory.

Sign convention as everywhere: offset_us = local clock minus reference, microseconds.
"""

from chronotick.bench.metrics import HorizonMetrics, coverage, horizon_metrics
from chronotick.bench.origins import OriginPlan, select_origins
from chronotick.bench.run import BenchConfig, run_bench

__all__ = [
    "BenchConfig",
    "HorizonMetrics",
    "OriginPlan",
    "coverage",
    "horizon_metrics",
    "run_bench",
    "select_origins",
]
