"""Quantiles for families that do not forecast them: written once here, used by every such family.

* Sample-based models (Toto): quantiles and mean are the samples' own.
* Point forecasters (TinyTimeMixer, Time-MoE): the spread comes from the model's own recent
  errors. The model forecasts the tail of each context from J rolling origins
  (``chronotick.backtest``) in the same batch as the real forecast; the residual RMS per step,
  made non-decreasing over the horizon (an error cannot shrink by looking further ahead), is
  taken as a normal standard deviation around the point forecast. With no usable origin (a short
  context), or when the request says ``skip_spread_backtests`` (its caller calibrates the spread
  itself and only needs a claim of the right shape), the spread is the RMS of the context's own
  h-step changes, a random-walk bound that costs no model call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Protocol

import numpy as np

from chronotick.backtest import backtest_origins, truth_after
from chronotick.contract import ModelInfo
from chronotick.kit.adapter import BatchForecast, ModelBatch

SPREAD_LEVELS = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
RESIDUAL_ORIGINS = 8
_Z = np.array([NormalDist().inv_cdf(level) for level in SPREAD_LEVELS])


def quantiles_from_samples(samples: np.ndarray, levels: np.ndarray = SPREAD_LEVELS) -> BatchForecast:
    """(batch, samples, horizon) draws -> their empirical quantiles and mean."""
    quantiles = np.quantile(samples, levels, axis=1).transpose(1, 0, 2)
    return BatchForecast(levels=np.asarray(levels, float), quantiles=quantiles, mean=samples.mean(axis=1))


class PointForecaster(Protocol):
    """A model that gives one value per step. ``point_forecast`` returns (batch, horizon)."""

    @property
    def info(self) -> ModelInfo: ...

    def point_forecast(self, batch: ModelBatch) -> np.ndarray: ...


def _anchored(context: np.ndarray) -> tuple[np.ndarray, float]:
    last = float(context[np.flatnonzero(~np.isnan(context))[-1]])
    return context - last, last


def _cut(batch: ModelBatch, index: int, origin: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    past = {k: v[:origin] for k, v in batch.past_covariates[index].items()} if batch.past_covariates else {}
    future = (
        {k: batch.past_covariates[index][k][origin : origin + batch.horizon] for k in batch.future_covariates[index]}
        if batch.future_covariates
        else {}
    )
    return batch.contexts[index][:origin], past, future


def _random_walk_std(context: np.ndarray, horizon: int) -> np.ndarray:
    """RMS of the context's h-step changes for every h at once (NaN-padded windows, missing
    samples skipped), made non-decreasing."""
    padded = np.concatenate([context, np.full(horizon, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, horizon + 1)[: context.size]
    changes = windows[:, 1:] - windows[:, :1]  # (n, H): x[t + h] - x[t]
    known = np.isfinite(changes)
    with np.errstate(invalid="ignore", divide="ignore"):  # no known change for h: NaN, filled below
        std = np.sqrt(np.square(np.where(known, changes, 0.0)).sum(axis=0) / known.sum(axis=0))
    return np.fmax.accumulate(np.nan_to_num(std, nan=np.nanmax(std) if np.isfinite(std).any() else 1.0))


@dataclass
class ResidualSpread:
    """A point forecaster with a spread from its own residuals on the tail of each context."""

    model: PointForecaster
    origins: int = RESIDUAL_ORIGINS

    @property
    def info(self) -> ModelInfo:
        return self.model.info

    def forecast(self, batch: ModelBatch) -> BatchForecast:
        horizon = batch.horizon
        count = 0 if batch.skip_spread_backtests else self.origins
        plans = [backtest_origins(c, horizon, count) for c in batch.contexts]
        contexts, pasts, futures, anchors = [], [], [], []
        for index, origins in enumerate(plans):
            for origin in origins:
                context, past, future = _cut(batch, index, origin)
                anchored, last = _anchored(context)
                contexts.append(anchored)
                pasts.append(past)
                futures.append(future)
                anchors.append(last)
        expanded = replace(
            batch,
            contexts=list(batch.contexts) + contexts,
            interval_s=list(batch.interval_s) + [batch.interval_s[i] for i, o in enumerate(plans) for _ in o],
            past_covariates=(list(batch.past_covariates) + pasts) if batch.past_covariates else [],
            future_covariates=(list(batch.future_covariates) + futures) if batch.future_covariates else [],
        )
        points = np.asarray(self.model.point_forecast(expanded), dtype=float)
        mean = points[: len(batch)]
        backtests = points[len(batch) :] + np.asarray(anchors)[:, None] if anchors else points[len(batch) :]
        std = np.empty_like(mean)
        row = 0
        for index, origins in enumerate(plans):
            if origins:
                errors = truth_after(batch.contexts[index], origins, horizon) - backtests[row : row + len(origins)]
                row += len(origins)
                known = np.isfinite(errors)
                rms = np.sqrt(np.where(known, errors**2, 0.0).sum(axis=0) / np.maximum(known.sum(axis=0), 1))
                std[index] = np.fmax.accumulate(rms)
            if not origins or not np.any(std[index] > 0):
                std[index] = _random_walk_std(batch.contexts[index], horizon)
        std = np.maximum(std, 1e-6)
        quantiles = mean[:, None, :] + _Z[None, :, None] * std[:, None, :]
        return BatchForecast(levels=SPREAD_LEVELS, quantiles=quantiles, mean=mean)
