"""TinyTimeMixer behind the kit's point-forecaster interface, and the input scaling it was trained with.

TinyTimeMixer takes no missing values and forecasts a fixed 96 steps from a fixed 512-step context.
Each context is therefore filled (interior gaps carry the last observation forward, a short or
leading-gap history is padded with its first observation and marked unobserved), made relative to
its last observation and divided by its mean absolute first difference: the scaling that
transferred from synthetic to real clocks (scaling by the standard deviation did not). The bundled
checkpoints are built with ``scaling=None`` so the model sees exactly this; pretrained checkpoints
keep their own ``std`` scaler, which this affine scaling does not disturb.

``ttm-exog`` reads covariates through TinyTimeMixer's exogenous channels: channel 0 is the offset,
then one channel per name in ``COVARIATES``. Past values go in ``past_values`` (the checkpoint's
decoder mixes channels); known future values in ``future_values`` (forecast channel mixing). A
covariate that is not sent, or whose future is not known, holds its last value. ``ModelInfo`` lists
``COVARIATES`` as the names it knows: the kit refuses any other with a 422 naming the model, and the
gateway sends it no other.
"""

from __future__ import annotations

import numpy as np
import torch
from tsfm_public.models.tinytimemixer import TinyTimeMixerForPrediction

from chronotick.contract import ModelInfo
from chronotick.kit import ModelBatch, weights_version
from chronotick.kit.spread import SPREAD_LEVELS

MIN_CONTEXT = 16
SCALE_FLOOR_US = 1e-3  # below any clock's resolution; a constant context then stays near 0 after scaling
CLIP = 1000.0  # scaled units: a spike or servo step far outside the context's typical move is cut here
COVARIATES = ("temperature_c", "cpu_load")
# Covariates keep physical units (the clock reacts to degrees, not to a window's spread): change since
# the last past value, in these units.
COVARIATE_UNITS = np.array([1.0, 0.25])


def fill_forward(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., T) with NaN -> (filled, observed): gaps carry the last observation; leading NaN take the first.

    Rows with no observation at all become 0.
    """
    observed = ~np.isnan(values)
    index = np.where(observed, np.arange(values.shape[-1]), 0)
    np.maximum.accumulate(index, axis=-1, out=index)
    filled = np.take_along_axis(values, index, axis=-1)
    first = np.take_along_axis(values, np.argmax(observed, axis=-1)[..., None], axis=-1)
    filled = np.where(np.isnan(filled), first, filled)
    return np.nan_to_num(filled, nan=0.0), observed


def scale_offsets(past: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(B, T) offsets, NaN where missing -> (scaled, observed, last, scale), each row's own.

    ``scaled = clip((filled - last) / scale)`` with ``last`` the last observed value and ``scale`` the
    mean absolute difference between consecutive observed samples (floored).
    """
    filled, observed = fill_forward(past)
    last = filled[:, -1]
    steps = np.abs(np.diff(past, axis=-1))
    counts = np.isfinite(steps).sum(axis=-1)
    mean_step = np.where(counts > 0, np.nansum(steps, axis=-1) / np.maximum(counts, 1), 0.0)
    scale = np.maximum(mean_step, SCALE_FLOOR_US)
    scaled = np.clip((filled - last[:, None]) / scale[:, None], -CLIP, CLIP)
    return scaled, observed, last, scale


def scale_covariates(past: np.ndarray, future: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, K, T) past and (B, K, P) future covariates (NaN = missing / not known) -> scaled channels.

    Each is its change since its last past value in ``COVARIATE_UNITS``; an unknown future holds (0).
    """
    filled, _ = fill_forward(past)
    last = filled[..., -1:]
    units = COVARIATE_UNITS[None, :, None]
    past_scaled = np.clip((filled - last) / units, -CLIP, CLIP)
    future_scaled = np.clip(np.nan_to_num((future - last) / units, nan=0.0), -CLIP, CLIP)
    return past_scaled, future_scaled


def model_inputs(
    past: np.ndarray, cov_past: np.ndarray | None, cov_future: np.ndarray | None, prediction_length: int
) -> dict[str, torch.Tensor]:
    """The forward arguments for (B, T) offsets (and (B, K, T) / (B, K, P) covariates for an exog model)."""
    scaled, observed, _, _ = scale_offsets(past)
    channels, masks = [scaled[:, :, None]], [observed[:, :, None]]
    inputs: dict[str, torch.Tensor] = {}
    if cov_past is not None and cov_future is not None:
        cov_scaled, future_scaled = scale_covariates(cov_past, cov_future)
        channels.append(cov_scaled.transpose(0, 2, 1))
        masks.append(np.ones(cov_scaled.transpose(0, 2, 1).shape, dtype=bool))
        # The offset channel's future is what is forecast: a dummy 0, as the library asks.
        future = np.concatenate([np.zeros((len(past), 1, prediction_length)), future_scaled], axis=1)
        inputs["future_values"] = torch.tensor(future.transpose(0, 2, 1), dtype=torch.float32)
    inputs["past_values"] = torch.tensor(np.concatenate(channels, axis=-1), dtype=torch.float32)
    inputs["past_observed_mask"] = torch.tensor(np.concatenate(masks, axis=-1))
    return inputs


def uses_covariates(model: TinyTimeMixerForPrediction) -> bool:
    return bool(model.config.exogenous_channel_indices)


class TtmModel:
    """One TinyTimeMixer checkpoint; ``point_forecast`` gives (batch, horizon) offsets relative to each context."""

    def __init__(self, name: str, model_id: str, *, revision: str | None = None) -> None:
        extra = {"revision": revision} if revision else {}
        self._model = TinyTimeMixerForPrediction.from_pretrained(model_id, use_safetensors=True, **extra)
        self._model.eval()
        config = self._model.config
        self._context = int(config.context_length)
        self._prediction_length = int(config.prediction_length)
        self._exog = uses_covariates(self._model)
        if self._exog and list(config.exogenous_channel_indices) != list(range(1, 1 + len(COVARIATES))):
            raise ValueError(f"{model_id}: exogenous channels must be {list(range(1, 1 + len(COVARIATES)))}")
        self._info = ModelInfo(
            name=name,
            model_id=model_id,
            model_version=weights_version(model_id),
            library="granite-tsfm",
            min_context=MIN_CONTEXT,
            max_context=self._context,
            max_horizon=int(config.prediction_filter_length or self._prediction_length),
            native_quantile_levels=SPREAD_LEVELS.tolist(),
            past_covariates=self._exog,
            future_covariates=self._exog,
            covariate_names=list(COVARIATES) if self._exog else None,
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def _covariates(self, batch: ModelBatch) -> tuple[np.ndarray, np.ndarray]:
        """(B, K, context) past and (B, K, prediction_length) future, NaN where not sent or not known."""
        size = len(batch)
        past = np.full((size, len(COVARIATES), self._context), np.nan)
        future = np.full((size, len(COVARIATES), self._prediction_length), np.nan)
        for row in range(size):
            pasts = batch.past_covariates[row] if batch.past_covariates else {}
            futures = batch.future_covariates[row] if batch.future_covariates else {}
            for k, name in enumerate(COVARIATES):
                if name in pasts:
                    values = pasts[name][-self._context :]
                    past[row, k, self._context - len(values) :] = values
                if name in futures:
                    ahead = futures[name][: self._prediction_length]
                    future[row, k, : len(ahead)] = ahead
                    future[row, k, len(ahead) :] = ahead[-1]  # beyond the horizon: never read back
        return past, future

    def point_forecast(self, batch: ModelBatch) -> np.ndarray:
        past = np.full((len(batch), self._context), np.nan)
        for row, context in enumerate(batch.contexts):
            tail = context[-self._context :]
            past[row, self._context - len(tail) :] = tail
        cov_past, cov_future = self._covariates(batch) if self._exog else (None, None)
        _, _, last, scale = scale_offsets(past)
        inputs = model_inputs(past, cov_past, cov_future, self._prediction_length)
        with torch.inference_mode():
            output = self._model(**inputs, return_loss=False).prediction_outputs[..., 0]
        forecast = output[:, : batch.horizon].to(torch.float64).numpy()
        return forecast * scale[:, None] + last[:, None]
