"""What the agent knows: a bounded window of real measurements, the forecasts it was given, and
the corrected time it serves from them.

The window only ever holds real measurements. A slot whose measurement failed stays in it as a
missing value (so the window stays on its regular cadence); a forecast is never written into it.

The served error bound is chrony's idea (root dispersion growing at ``maxclockerror``): assuming
the offset moves away from the last real measurement at no more than ``max_drift_ppm``
microseconds per second, the true offset lies within the measurement's own uncertainty plus
``max_drift_ppm * age`` of it, so around any estimate the bound is that plus the estimate's
distance from the measurement. It holds whatever the forecast's quality, and keeps growing when
the source or the fleet is gone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from chronotick.agent.sources import Measurement
from chronotick.client import INTERVAL_QUANTILE_LEVELS
from chronotick.contract import (
    MIN_OBSERVED_SAMPLES,
    Covariate,
    FusedPredictRequest,
    FusedPredictResponse,
    SeriesInput,
)

# A time within this fraction of a cadence of a forecast step is that step (tick jitter).
STEP_TOLERANCE = 0.25
ForecastKind = Literal["short", "long"]


@dataclass(frozen=True)
class Slot:
    """One tick of the measurement cadence: when (local clock; the measurement's own time when there
    is one), the offset if measured, the covariates."""

    time_s: float
    offset_us: float | None
    covariates: dict[str, float | None]


class Window:
    """The newest ``max_slots`` ticks, oldest first."""

    def __init__(self, max_slots: int, interval_s: float) -> None:
        self.interval_s = interval_s
        self._slots: deque[Slot] = deque(maxlen=max_slots)

    def __len__(self) -> int:
        return len(self._slots)

    def append(self, slot: Slot) -> None:
        """Add the newest tick; ticks skipped since the previous one (a measurement that ran past
        its cadence) become missing slots, so that the window stays on its regular grid."""
        if self._slots:
            skipped = round((slot.time_s - self._slots[-1].time_s) / self.interval_s) - 1
            for k in range(min(max(skipped, 0), self._slots.maxlen or 0), 0, -1):
                self._slots.append(Slot(slot.time_s - k * self.interval_s, None, {}))
        self._slots.append(slot)

    def slots(self) -> list[Slot]:
        return list(self._slots)

    @property
    def observed(self) -> int:
        return sum(slot.offset_us is not None for slot in self._slots)

    def request(
        self, horizon: int, deadline_s: float, with_covariates: bool, clock_id: str
    ) -> tuple[FusedPredictRequest, float] | None:
        """The gateway request for ``horizon`` steps past the newest slot, and that slot's time;
        None while too few real measurements are in the window.

        The series names ``clock_id`` and starts at the oldest slot's time (``start_s``), so that the
        gateway lines its samples up with the forecasts it remembers for this clock."""
        if self.observed < MIN_OBSERVED_SAMPLES:
            return None
        slots = self.slots()
        covariates = {}
        if with_covariates:
            names = {name for slot in slots for name in slot.covariates}
            for name in sorted(names):
                past = [slot.covariates.get(name) for slot in slots]
                if any(value is not None for value in past):
                    covariates[name] = Covariate(past=past)
        series = SeriesInput(
            id="local-clock",
            interval_s=self.interval_s,
            start_s=slots[0].time_s,
            clock_id=clock_id,
            offsets_us=[slot.offset_us for slot in slots],
            covariates=covariates,
        )
        request = FusedPredictRequest(
            series=[series], horizon=horizon, quantile_levels=INTERVAL_QUANTILE_LEVELS, deadline_s=deadline_s
        )
        return request, slots[-1].time_s


@dataclass(frozen=True, eq=False)
class Forecast:
    """The fused forecast for steps 1..H after ``origin_s`` (the newest slot's time when asked)."""

    kind: ForecastKind
    origin_s: float
    interval_s: float
    received_s: float
    mean_us: np.ndarray
    lower95_us: np.ndarray
    lower80_us: np.ndarray
    upper80_us: np.ndarray
    upper95_us: np.ndarray
    degraded: bool

    @classmethod
    def from_answer(
        cls, kind: ForecastKind, origin_s: float, received_s: float, answer: FusedPredictResponse
    ) -> Forecast:
        forecast = answer.forecasts[0]
        bounds = {
            round(q, 6): np.asarray(values)
            for q, values in zip(answer.quantile_levels, forecast.quantiles_us, strict=True)
        }
        return cls(
            kind,
            origin_s,
            forecast.interval_s,
            received_s,
            np.asarray(forecast.mean_us),
            bounds[0.025],
            bounds[0.1],
            bounds[0.9],
            bounds[0.975],
            answer.degraded,
        )

    @property
    def end_s(self) -> float:
        return self.origin_s + self.mean_us.size * self.interval_s

    def step_times_s(self) -> np.ndarray:
        return self.origin_s + self.interval_s * np.arange(1, self.mean_us.size + 1)

    def covers(self, time_s: float) -> bool:
        return self.origin_s < time_s <= self.end_s + STEP_TOLERANCE * self.interval_s

    def step_at(self, time_s: float) -> int | None:
        """The 1-based step that ``time_s`` falls on, if it is one."""
        position = (time_s - self.origin_s) / self.interval_s
        step = round(position)
        if 1 <= step <= self.mean_us.size and abs(position - step) <= STEP_TOLERANCE:
            return step
        return None


@dataclass(frozen=True)
class Estimate:
    """The corrected time served at local time ``local_time_s``."""

    local_time_s: float
    offset_us: float
    error_bound_us: float
    basis: str
    last_measurement_age_s: float
    forecast_interval95_us: float | None

    @property
    def corrected_time_s(self) -> float:
        # offset = local - reference, so reference = local - offset.
        return self.local_time_s - self.offset_us / 1e6


def _newest_covering(forecasts: list[Forecast], time_s: float) -> Forecast | None:
    covering = [f for f in forecasts if f.covers(time_s)]
    # The freshest origin knows most; at equal origins the short forecast was calibrated for it.
    return max(covering, key=lambda f: (f.origin_s, f.kind == "short"), default=None)


def estimate(now_s: float, last: Measurement, forecasts: list[Forecast], max_drift_ppm: float) -> Estimate:
    """Offset for ``now_s`` and its bound (see the module docstring).

    With a forecast covering now, the estimate is the last measurement moved by the forecast's
    change since then: the forecast brings the drift, the measurement the level. Otherwise it is
    the last measurement held.
    """
    age_s = max(0.0, now_s - last.time_s)
    forecast = _newest_covering(forecasts, now_s)
    offset_us, basis, interval95_us = last.offset_us, "last-measurement", None
    if forecast is not None:
        times, means = forecast.step_times_s(), forecast.mean_us
        if forecast.origin_s >= last.time_s:  # made from a window that holds the last measurement
            times, means = np.insert(times, 0, last.time_s), np.insert(means, 0, last.offset_us)
        offset_us = last.offset_us + float(np.interp(now_s, times, means) - np.interp(last.time_s, times, means))
        half_widths = (forecast.upper95_us - forecast.lower95_us) / 2.0
        interval95_us = float(np.interp(now_s, forecast.step_times_s(), half_widths))
        basis = f"forecast:{forecast.kind}"
    bound_us = last.uncertainty_us + max_drift_ppm * age_s + abs(offset_us - last.offset_us)
    return Estimate(now_s, offset_us, bound_us, basis, age_s, interval95_us)
