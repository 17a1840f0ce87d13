"""The fused answer: each series fused from the members that answered, and each member's part in it.

A series whose clock is warm is fused with the clock's remembered weights and conformal bounds (no
backtests); any other with the calibrated math of ``calibrated`` on the request's own backtests,
its weights handed over towards the clock's remembered ones as their evidence grows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chronotick.contract import BackendResult, SeriesForecast
from chronotick_gateway.backtest import SeriesPlan
from chronotick_gateway.clocks import RecalledClock
from chronotick_gateway.fusion.calibrated import FusedForecast, fuse, predictive_quantiles
from chronotick_gateway.members import MemberResult
from chronotick_gateway.memory import remembered_bounds, step_weights


@dataclass(frozen=True)
class SeriesFusion:
    """A series' fused forecast, whichever way it was made."""

    mean_us: np.ndarray  # (H,)
    std_us: np.ndarray  # (H,)
    quantiles_us: np.ndarray | None  # (levels, H); None: Student-t from std_us and degrees_of_freedom
    degrees_of_freedom: np.ndarray  # (H,)
    weights: np.ndarray  # (M, H)
    member_std_us: np.ndarray  # (M, H)
    calibration_scale: np.ndarray  # (M,) each member's pooled variance scale (1 on the warm path)

    def quantiles(self, levels: Sequence[float]) -> np.ndarray:
        """(levels, H) the bounds at ``levels`` (the request's: those the fusion was made for)."""
        if self.quantiles_us is not None:
            return self.quantiles_us
        return predictive_quantiles(self.mean_us, self.std_us, list(levels), self.degrees_of_freedom)


def fuse_remembered(
    clock: RecalledClock, names: Sequence[str], means: np.ndarray, own_std: np.ndarray, levels: Sequence[float]
) -> SeriesFusion:
    """The warm path: the clock's remembered weights and conformal bounds, no backtests."""
    horizon = means.shape[1]
    weights = step_weights(clock.state, names, horizon)
    mean = np.sum(weights * means, axis=0)
    bounds = remembered_bounds(clock.state, levels, horizon)
    return SeriesFusion(
        mean,
        bounds.std_us,
        mean[None, :] + bounds.quantiles_us,
        np.full(horizon, float(clock.scored)),
        weights,
        own_std,
        np.ones(len(names)),
    )


def handed_over(
    clock: RecalledClock | None, fused: FusedForecast, names: Sequence[str], means: np.ndarray
) -> SeriesFusion:
    """The in-context fusion; for a cold clock, its weights moved towards the remembered ones by the
    clock's ``handover`` share, and the bounds, the in-context ones, centred on the new mean."""
    weights = fused.weights
    if clock is not None and clock.handover > 0:
        remembered = step_weights(clock.state, names, means.shape[1])
        weights = (1.0 - clock.handover) * fused.weights + clock.handover * remembered
    return SeriesFusion(
        np.sum(weights * means, axis=0),
        fused.std_us,
        None,
        fused.degrees_of_freedom,
        weights,
        fused.member_std_us,
        fused.calibration_scale,
    )


def fuse_series(
    clock: RecalledClock | None,
    answered: Sequence[MemberResult],
    index: int,
    plan: SeriesPlan,
    levels: Sequence[float],
    weight_floor: float,
) -> SeriesFusion:
    """Series ``index`` fused from the members that ``answered``: from its clock's memory on the warm
    path, else on the request's own backtests, handed over towards the clock's remembered weights."""
    names = [r.name for r in answered]
    forecasts = [r.forecasts[index] for r in answered if r.forecasts is not None]
    means = np.stack([f.mean_us for f in forecasts])
    if clock is not None and clock.warm:
        return fuse_remembered(clock, names, means, np.stack([f.std_us for f in forecasts]), levels)
    return handed_over(clock, fuse(forecasts, origins=plan.origins, weight_floor=weight_floor), names, means)


@dataclass(frozen=True)
class FusedAnswer:
    """What the answer says of its forecasts: the fused ones, and each member's part in them."""

    fusions: list[SeriesFusion]  # per series, for the clock memory to remember
    forecasts: list[SeriesForecast]
    degrees_of_freedom: list[list[float]]
    backends: list[BackendResult]  # per member result, in their order


def fuse_answer(
    results: Sequence[MemberResult],
    plans: Sequence[SeriesPlan],
    clocks: dict[int, RecalledClock],
    levels: Sequence[float],
    weight_floor: float,
) -> FusedAnswer:
    """Every series fused from the ``results`` that answered (at least one did), and each result as
    the answer reports it: its weights, calibrated spread and calibration scale per series."""
    answered = [r for r in results if r.ok]
    fusions = [fuse_series(clocks.get(i), answered, i, plan, levels, weight_floor) for i, plan in enumerate(plans)]
    forecasts = [
        SeriesForecast(
            id=plan.id,
            interval_s=plan.grid.interval_s,
            mean_us=fusion.mean_us.tolist(),
            quantiles_us=fusion.quantiles(levels).tolist(),
            std_us=fusion.std_us.tolist(),
        )
        for plan, fusion in zip(plans, fusions, strict=True)
    ]
    rows = {r.name: row for row, r in enumerate(answered)}
    backends = [_backend_result(r, plans, fusions, rows.get(r.name)) for r in results]
    return FusedAnswer(fusions, forecasts, [f.degrees_of_freedom.tolist() for f in fusions], backends)


def _backend_result(
    result: MemberResult, plans: Sequence[SeriesPlan], fusions: Sequence[SeriesFusion], row: int | None
) -> BackendResult:
    """A member's result as the answer reports it; ``row``: its row in the fusions (None: it did not
    answer, and had no part in them)."""
    forecasts: list[SeriesForecast | None] | None = None
    if result.forecasts is not None and row is not None:
        forecasts = []
        for plan, fusion, forecast in zip(plans, fusions, result.forecasts, strict=True):
            std = fusion.member_std_us[row]
            # A member with no usable spread for a series (too few observations) had no weight in it.
            usable = np.all(np.isfinite(std)) and np.all(np.isfinite(forecast.mean_us))
            forecasts.append(
                SeriesForecast(
                    id=plan.id,
                    interval_s=plan.grid.interval_s,
                    mean_us=forecast.mean_us.tolist(),
                    quantiles_us=[],
                    std_us=std.tolist(),
                )
                if usable
                else None
            )
    return BackendResult(
        name=result.name,
        service=result.service,
        status=result.status,
        reason=result.reason,
        latency_ms=None if result.latency_s is None else result.latency_s * 1000.0,
        retries=result.retries,
        covariates_used=list(result.covariates_used),
        calibration_scale=None if row is None else [float(f.calibration_scale[row]) for f in fusions],
        forecast_age_s=result.age_s,
        weights=None if row is None else [f.weights[row].tolist() for f in fusions],
        forecasts=forecasts,
    )
