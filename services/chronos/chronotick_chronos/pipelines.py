"""Chronos-Bolt and Chronos-2 behind the kit's model interface, through ``BaseChronosPipeline``.

Both pipelines answer on their trained quantile grid; the median is the point forecast (the
library itself reports the median as the mean). Chronos-2 also takes covariates: past values of
each driver, and known future values where the client has them. A checkpoint trained on the kit's
``last-value-mad`` inputs (``chronotick_chronos.scaling``) gets its covariates the same way as the
trainers gave them: each as its change since its last past value, in physical units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from chronos import BaseChronosPipeline, Chronos2Pipeline

from chronotick.contract import ModelInfo
from chronotick.kit import BatchForecast, ModelBatch, weights_version
from chronotick.kit.scaling import covariate_changes_by_name
from chronotick_chronos.scaling import adopt_input_scaling

MIN_CONTEXT = 8


class ChronosPipelineModel:
    def __init__(self, name: str, model_id: str) -> None:
        self._pipeline = BaseChronosPipeline.from_pretrained(
            model_id, device_map="cpu", dtype=torch.float32, use_safetensors=True
        )
        self._levels = np.asarray(self._pipeline.quantiles, dtype=float)
        self._median_index = int(np.argmin(np.abs(self._levels - 0.5)))
        self._takes_covariates = isinstance(self._pipeline, Chronos2Pipeline)
        self._scaling = adopt_input_scaling(self._pipeline.model)
        self._info = ModelInfo(
            name=name,
            model_id=model_id,
            model_version=weights_version(model_id),
            library="chronos-forecasting",
            min_context=MIN_CONTEXT,
            max_context=int(self._pipeline.model_context_length),
            max_horizon=int(self._pipeline.model_prediction_length),
            native_quantile_levels=self._levels.tolist(),
            past_covariates=self._takes_covariates,
            future_covariates=self._takes_covariates,
            input_scaling=self._scaling,
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def _inputs(self, batch: ModelBatch) -> list[Any]:
        targets = [torch.as_tensor(c, dtype=torch.float32) for c in batch.contexts]
        if not batch.past_covariates:
            return targets
        futures = batch.future_covariates or [{} for _ in targets]
        return [
            {"target": target, **self._covariates(past, future, batch.horizon)}
            for target, past, future in zip(targets, batch.past_covariates, futures, strict=True)
        ]

    def _covariates(
        self, past: dict[str, np.ndarray], future: dict[str, np.ndarray], horizon: int
    ) -> dict[str, dict[str, np.ndarray]]:
        if self._scaling == "anchored":
            return {"past_covariates": past, "future_covariates": future}
        past_changes, future_changes = covariate_changes_by_name(past, future, horizon)
        # Chronos-2 takes known futures for a subset of the past covariates: the others stay past-only.
        return {"past_covariates": past_changes, "future_covariates": future_changes}

    def forecast(self, batch: ModelBatch) -> BatchForecast:
        with torch.inference_mode():
            predictions = self._pipeline.predict(self._inputs(batch), prediction_length=batch.horizon)
        if isinstance(predictions, list):  # Chronos-2: one (variates, levels, horizon) per series
            predictions = torch.stack([p[0] for p in predictions])
        quantiles = predictions.to(torch.float64).numpy()
        return BatchForecast(levels=self._levels, quantiles=quantiles, mean=quantiles[:, self._median_index, :].copy())
