"""Rolling-origin backtests on the tail of each request's own context (no stored state).

Every member forecasts the real origin and the backtest origins of ``chronotick.backtest`` in the
same call; the errors at the backtest origins calibrate the member's spread (see ``fusion``).

Known future covariates of a backtest are the covariates' own past values after its origin:
in hindsight they are known, exactly as the client's future values are.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np

from chronotick.backtest import backtest_origins, truth_after
from chronotick.grid import GridSeries


@dataclass(frozen=True)
class SeriesPlan:
    """One client series on its grid and the backtest origins cut from it."""

    grid: GridSeries
    origins: tuple[int, ...]
    horizon: int
    id: str | None = None

    def truth(self) -> np.ndarray:
        """(J, H) observed values after each origin, NaN where missing."""
        return truth_after(self.grid.offsets_us, self.origins, self.horizon)

    def context(self, origin: int | None) -> np.ndarray:
        return self.grid.offsets_us if origin is None else self.grid.offsets_us[:origin]

    def series_body(
        self, origin: int | None, *, past_covariates: AbstractSet[str], future_covariates: AbstractSet[str]
    ) -> dict[str, object]:
        """The real series (``origin=None``) or its backtest cut as a contract ``SeriesInput`` in
        JSON-ready form, with the covariates the receiving model knows: those named in
        ``past_covariates``, with their known future values where also in ``future_covariates``.

        Built with ``ndarray.tolist()``, never value by value or through pydantic: the gateway
        sends every series and its cuts to every member, and converting them one value at a time
        was the largest part of its own cost. Missing samples stay NaN; ``fleet.encode_json``
        writes them as the contract's ``null``.
        """
        end = len(self.grid.offsets_us) if origin is None else origin
        body: dict[str, object] = {
            "offsets_us": self.grid.offsets_us[:end].tolist(),
            "interval_s": self.grid.interval_s,
        }
        if self.id is not None:
            body["id"] = self.id
        covariates: dict[str, dict[str, list[float]]] = {}
        for name, past in self.grid.past_covariates.items():
            if name not in past_covariates:
                continue
            covariates[name] = {"past": past[:end].tolist()}
            if name in future_covariates and name in self.grid.future_covariates:
                covariates[name]["future"] = (
                    self.grid.future_covariates[name].tolist()
                    if origin is None
                    else _forward_filled(past[: origin + self.horizon])[origin:].tolist()
                )
        if covariates:
            body["covariates"] = covariates
        return body


def _forward_filled(values: np.ndarray) -> np.ndarray:
    """Missing values take the last known one (0 before any): a future covariate has no gaps."""
    known = np.where(np.isnan(values), 0, np.arange(values.size))
    filled: np.ndarray = np.nan_to_num(values[np.maximum.accumulate(known)], nan=0.0)
    return filled


def plan_series(grid: GridSeries, horizon: int, count: int, series_id: str | None) -> SeriesPlan:
    return SeriesPlan(grid, backtest_origins(grid.offsets_us, horizon, count), horizon, series_id)
