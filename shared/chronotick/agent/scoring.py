"""How good the fleet's forecasts were on this clock: each real measurement scores the earlier
forecasts that predicted its time, at the configured horizons.

Running figures per (forecast kind, horizon): mean absolute error, and how often the measurement
fell inside the forecast's 80 % and 95 % intervals (coverage should come out near 0.80 and 0.95
if the fleet's bounds are honest here).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chronotick.agent.sources import Measurement
from chronotick.agent.state import Forecast


@dataclass
class Score:
    count: int = 0
    abs_error_sum_us: float = 0.0
    inside80: int = 0
    inside95: int = 0

    @property
    def mae_us(self) -> float:
        return self.abs_error_sum_us / self.count

    @property
    def coverage80(self) -> float:
        return self.inside80 / self.count

    @property
    def coverage95(self) -> float:
        return self.inside95 / self.count


@dataclass(frozen=True)
class Realized:
    """One forecast step met by a real measurement."""

    kind: str
    horizon_s: float
    error_us: float
    inside80: bool
    inside95: bool


class Scoreboard:
    def __init__(self, horizons_s: Iterable[float]) -> None:
        self.horizons_s = sorted(set(horizons_s))
        self.scores: dict[tuple[str, float], Score] = {}

    def _scored_horizon(self, horizon_s: float, interval_s: float) -> float | None:
        return next((h for h in self.horizons_s if abs(h - horizon_s) <= 0.25 * interval_s), None)

    def record(self, measurement: Measurement, forecasts: Iterable[Forecast]) -> list[Realized]:
        """Score every forecast with a step at the measurement's time."""
        realized = []
        for forecast in forecasts:
            step = forecast.step_at(measurement.time_s)
            if step is None:
                continue
            horizon_s = self._scored_horizon(step * forecast.interval_s, forecast.interval_s)
            if horizon_s is None:
                continue
            i, truth = step - 1, measurement.offset_us
            result = Realized(
                forecast.kind,
                horizon_s,
                truth - float(forecast.mean_us[i]),
                bool(forecast.lower80_us[i] <= truth <= forecast.upper80_us[i]),
                bool(forecast.lower95_us[i] <= truth <= forecast.upper95_us[i]),
            )
            score = self.scores.setdefault((forecast.kind, horizon_s), Score())
            score.count += 1
            score.abs_error_sum_us += abs(result.error_us)
            score.inside80 += result.inside80
            score.inside95 += result.inside95
            realized.append(result)
        return realized
