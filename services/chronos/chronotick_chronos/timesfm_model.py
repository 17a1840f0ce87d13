"""TimesFM 2.5 behind the kit's model interface.

The library fills missing samples by linear interpolation (and drops leading ones) itself. Its
quantile head answers 0.1..0.9; its point forecast is the median. A checkpoint trained on
first differences (its config says so) answers steps; the kit sums them back into offsets.
"""

from __future__ import annotations

import numpy as np

from chronotick.contract import ModelInfo
from chronotick.kit import BatchForecast, ModelBatch, weights_version
from chronotick_chronos.timesfm_loader import QUANTILE_COLUMNS, checkpoint_input_scaling, load_timesfm_2p5

MAX_CONTEXT = 512
MAX_HORIZON = 128
MIN_CONTEXT = 8


class TimesFmModel:
    def __init__(self, name: str, model_id: str) -> None:
        self._model = load_timesfm_2p5(model_id, max_context=MAX_CONTEXT, max_horizon=MAX_HORIZON)
        self._levels = np.asarray(QUANTILE_COLUMNS, dtype=float)
        self._info = ModelInfo(
            name=name,
            model_id=model_id,
            model_version=weights_version(model_id),
            library="timesfm",
            min_context=MIN_CONTEXT,
            max_context=MAX_CONTEXT,
            max_horizon=MAX_HORIZON,
            native_quantile_levels=self._levels.tolist(),
            past_covariates=False,
            future_covariates=False,
            input_scaling=checkpoint_input_scaling(model_id),
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def forecast(self, batch: ModelBatch) -> BatchForecast:
        # `forecast` pads its input to a multiple of the batch size it was compiled with and runs it
        # in chunks of that size; the decode itself takes any batch. Setting it to this batch's size
        # runs the whole batch as one forward pass with no padding.
        self._model.global_batch_size = len(batch)
        point, quantiles = self._model.forecast(horizon=batch.horizon, inputs=list(batch.contexts))
        # Column 0 of the quantile output is the mean head; columns 1.. are QUANTILE_COLUMNS.
        native = np.asarray(quantiles, dtype=float)[:, :, 1:].transpose(0, 2, 1)
        return BatchForecast(levels=self._levels, quantiles=native, mean=np.asarray(point, dtype=float))
