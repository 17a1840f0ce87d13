"""TinyTimeMixer behind the kit's point-forecaster interface.

TinyTimeMixer takes no missing values and forecasts a fixed 96 steps from a fixed 512-step context.
The kit hands each context relative to its last observed value and, for a checkpoint trained so
(``ModelInfo.input_scaling == "last-value-mad"``, from ``chronotick_input_scaling`` in its
``config.json``), also divided by its mean absolute step (``chronotick.kit.scaling``); it maps the
answer back. This adapter only fills what the model cannot take: interior gaps carry the last
observation forward, a short or leading-gap history is padded with its first observation and marked
unobserved (``past_observed_mask``). The forecast comes back in the units it was given.

ChronoTick's checkpoints are built with ``scaling=None``, so the model sees exactly the kit's
``last-value-mad`` context (scaling by the standard deviation did not transfer from synthetic to
real clocks). Released checkpoints (``scaling: "std"``, no ``chronotick_input_scaling``) stay
``anchored`` and keep their own std scaler.

``ttm-exog`` reads covariates through TinyTimeMixer's exogenous channels: channel 0 is the offset,
then one channel per name in ``COVARIATES``, each as its change since its last past value in
physical units (``chronotick.kit.scaling.covariate_changes``). Past values go in ``past_values``
(the checkpoint's decoder mixes channels); known future values in ``future_values`` (forecast
channel mixing). A covariate that is not sent, or whose future is not known, holds its last value
(0 change). ``ModelInfo`` lists ``COVARIATES`` as the names it knows: the kit refuses any other with
a 422 naming the model, and the gateway sends it no other.
"""

from __future__ import annotations

import numpy as np
import torch
from tsfm_public.models.tinytimemixer import TinyTimeMixerForPrediction

from chronotick.contract import ModelInfo
from chronotick.kit import ModelBatch, weights_version
from chronotick.kit.scaling import covariate_changes, fill_forward, input_scaling
from chronotick.kit.spread import SPREAD_LEVELS

MIN_CONTEXT = 16
COVARIATES = ("temperature_c", "cpu_load")


def model_inputs(
    past: np.ndarray, cov_past: np.ndarray | None, cov_future: np.ndarray | None, prediction_length: int
) -> dict[str, torch.Tensor]:
    """The forward arguments for (B, T) contexts as the kit hands them (relative, scaled if the checkpoint asks,
    NaN where missing), and (B, K, T) / (B, K, P) raw covariates for an exog model (NaN = not sent / not known)."""
    filled, observed = fill_forward(past)
    channels, masks = [filled[:, :, None]], [observed[:, :, None]]
    inputs: dict[str, torch.Tensor] = {}
    if cov_past is not None and cov_future is not None:
        cov_changes, future_changes = covariate_changes(list(COVARIATES), cov_past, cov_future)
        assert future_changes is not None  # a future was given
        channels.append(cov_changes.transpose(0, 2, 1))
        masks.append(np.ones(cov_changes.transpose(0, 2, 1).shape, dtype=bool))
        # The offset channel's future is what is forecast: a dummy 0, as the library asks. An unknown covariate
        # future holds its last value: 0 change.
        future = np.concatenate(
            [np.zeros((len(past), 1, prediction_length)), np.nan_to_num(future_changes, nan=0.0)], axis=1
        )
        inputs["future_values"] = torch.tensor(future.transpose(0, 2, 1), dtype=torch.float32)
    inputs["past_values"] = torch.tensor(np.concatenate(channels, axis=-1), dtype=torch.float32)
    inputs["past_observed_mask"] = torch.tensor(np.concatenate(masks, axis=-1))
    return inputs


def uses_covariates(model: TinyTimeMixerForPrediction) -> bool:
    return bool(model.config.exogenous_channel_indices)


class TtmModel:
    """One TinyTimeMixer checkpoint; ``point_forecast`` gives (batch, horizon) forecasts in the contexts' units
    (relative to each context's last value, and scaled as ``info.input_scaling`` says)."""

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
            input_scaling=input_scaling(config.to_dict()),
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
        inputs = model_inputs(past, cov_past, cov_future, self._prediction_length)
        with torch.inference_mode():
            output = self._model(**inputs, return_loss=False).prediction_outputs[..., 0]
        return output[:, : batch.horizon].to(torch.float64).numpy()
