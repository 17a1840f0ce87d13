"""Turn validated requests into model batches, and model answers back into the contract.

The checks here are the ones that depend on the model (context length, horizon, covariates) and
on the data as a grid (timestamps on a regular cadence); the contract already checked the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chronotick.contract import InputScaling, ModelInfo, PredictRequest, SeriesForecast, SeriesInput
from chronotick.grid import regularize
from chronotick.kit.adapter import BatchForecast, ModelBatch
from chronotick.kit.quantiles import quantiles_at, std_from_quantiles
from chronotick.kit.scaling import as_offsets, scale_context
from chronotick.problems import validation_problem


@dataclass(frozen=True)
class PreparedRequest:
    """A request as the model sees it, plus what is needed to undo the anchoring and scaling:
    ``offset_us = model_value * scales_us + anchors_us``, per series, once ``input_scaling``'s steps are summed."""

    batch: ModelBatch
    anchors_us: np.ndarray
    scales_us: np.ndarray
    flagged_outliers: list[list[int]]
    input_scaling: InputScaling = "anchored"

    @property
    def grouping_key(self) -> tuple[object, ...]:
        """Requests with equal keys can share one model call."""
        past = tuple(sorted(self.batch.past_covariates[0])) if self.batch.past_covariates else ()
        future = tuple(sorted(self.batch.future_covariates[0])) if self.batch.future_covariates else ()
        return (self.batch.horizon, past, future, self.batch.skip_spread_backtests)


def _prepare_series(
    series: SeriesInput, index: int, info: ModelInfo, clean: bool
) -> tuple[np.ndarray, float, dict[str, np.ndarray], dict[str, np.ndarray], float, float, list[int]]:
    field = f"series.{index}"
    # Cleaning sees the whole series, not only the model's window: the window's first samples
    # are judged with their neighbours before it.
    grid = regularize(series, field, clean=clean)
    offsets = grid.offsets_us[-info.max_context :]
    observed = np.flatnonzero(~np.isnan(offsets))
    if observed.size < info.min_context:
        raise validation_problem(
            [
                {
                    "field": f"{field}.offsets_us",
                    "reason": f"{observed.size} observed samples in the last {info.max_context}; "
                    f"model {info.name!r} needs at least {info.min_context}",
                }
            ]
        )
    anchor_us = float(offsets[observed[-1]])
    context, scale_us = scale_context(offsets - anchor_us, info.input_scaling)
    past = {name: values[-info.max_context :] for name, values in grid.past_covariates.items()}
    return (context, grid.interval_s, past, grid.future_covariates, anchor_us, scale_us, grid.flagged_outliers.tolist())


def _check_model_limits(request: PredictRequest, info: ModelInfo) -> None:
    if request.horizon > info.max_horizon:
        raise validation_problem(
            [
                {
                    "field": "horizon",
                    "reason": f"{request.horizon} steps is beyond model {info.name!r}'s maximum of {info.max_horizon}",
                }
            ]
        )
    for index, series in enumerate(request.series):
        if not series.covariates:
            continue
        field = f"series.{index}.covariates"
        has_future = any(c.future is not None for c in series.covariates.values())
        if not info.past_covariates:
            raise validation_problem(
                [
                    {
                        "field": field,
                        "reason": f"model {info.name!r} does not use covariates; send none "
                        "or choose a model that does (see GET /info)",
                    }
                ]
            )
        unknown = sorted(set(series.covariates) - set(info.known_covariates(series.covariates)))
        if unknown:
            raise validation_problem(
                [
                    {
                        "field": f"{field}.{name}",
                        "reason": f"model {info.name!r} does not know covariate {name!r}; "
                        f"it uses {', '.join(info.covariate_names or [])}",
                    }
                    for name in unknown
                ]
            )
        if has_future and not info.future_covariates:
            raise validation_problem(
                [{"field": field, "reason": f"model {info.name!r} does not use known future covariate values"}]
            )
    names = {tuple(sorted(s.covariates)) for s in request.series}
    futures = {tuple(sorted(n for n, c in s.covariates.items() if c.future is not None)) for s in request.series}
    if len(names) > 1 or len(futures) > 1:
        raise validation_problem(
            [{"field": "series", "reason": "every series of a request must carry the same covariates"}]
        )


def prepare_request(request: PredictRequest, info: ModelInfo) -> PreparedRequest:
    """Validate ``request`` against the model and build its batch (raises 422 problems)."""
    _check_model_limits(request, info)
    prepared = [_prepare_series(s, i, info, request.clean) for i, s in enumerate(request.series)]
    contexts, intervals, pasts, futures, anchors, scales, flagged = zip(*prepared, strict=True)
    batch = ModelBatch(
        contexts=list(contexts),
        horizon=request.horizon,
        interval_s=list(intervals),
        past_covariates=list(pasts) if any(pasts) else [],
        future_covariates=list(futures) if any(futures) else [],
        skip_spread_backtests=request.skip_spread_backtests,
    )
    return PreparedRequest(
        batch=batch,
        anchors_us=np.asarray(anchors, dtype=float),
        scales_us=np.asarray(scales, dtype=float),
        flagged_outliers=list(flagged),
        input_scaling=info.input_scaling,
    )


def merge_batches(batches: list[ModelBatch]) -> ModelBatch:
    """One model call for several requests with the same grouping key."""
    if len(batches) == 1:
        return batches[0]
    return ModelBatch(
        contexts=[c for b in batches for c in b.contexts],
        horizon=batches[0].horizon,
        interval_s=[i for b in batches for i in b.interval_s],
        past_covariates=[p for b in batches for p in b.past_covariates],
        future_covariates=[f for b in batches for f in b.future_covariates],
        skip_spread_backtests=batches[0].skip_spread_backtests,  # part of the grouping key
    )


def slice_forecast(forecast: BatchForecast, start: int, stop: int) -> BatchForecast:
    return BatchForecast(
        levels=forecast.levels,
        quantiles=forecast.quantiles[start:stop],
        mean=forecast.mean[start:stop],
    )


def check_forecast(forecast: BatchForecast, batch_size: int, horizon: int) -> None:
    """A model answer with the wrong shape or non-finite values is a bug, never a forecast."""
    expected = (batch_size, forecast.levels.size, horizon)
    if forecast.quantiles.shape != expected or forecast.mean.shape != (batch_size, horizon):
        raise RuntimeError(
            f"model returned quantiles {forecast.quantiles.shape} and mean {forecast.mean.shape}, "
            f"expected {expected} and {(batch_size, horizon)}"
        )
    if not (np.isfinite(forecast.quantiles).all() and np.isfinite(forecast.mean).all()):
        raise RuntimeError("model returned non-finite values")


def to_series_forecasts(
    request: PredictRequest, prepared: PreparedRequest, forecast: BatchForecast
) -> list[SeriesForecast]:
    """Undo the scaling and anchoring (affine, scale > 0: quantiles stay quantiles; steps are summed first) and
    answer at the requested quantile levels."""
    forecast = as_offsets(forecast, prepared.input_scaling)
    anchors, scales = prepared.anchors_us[:, None], prepared.scales_us[:, None]
    std = std_from_quantiles(forecast.levels, forecast.quantiles)
    quantiles = quantiles_at(np.asarray(request.quantile_levels), forecast.levels, forecast.quantiles, std)
    quantiles = quantiles * scales[:, :, None] + anchors[:, :, None]
    mean = forecast.mean * scales + anchors
    std = std * scales
    return [
        SeriesForecast(
            id=series.id,
            interval_s=prepared.batch.interval_s[i],
            mean_us=mean[i].tolist(),
            quantiles_us=quantiles[i].tolist(),
            std_us=std[i].tolist(),
        )
        for i, series in enumerate(request.series)
    ]
