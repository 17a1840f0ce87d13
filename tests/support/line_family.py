"""A small numpy model family: the kit and the gateway are tested with it where no model library is.

It is a real forecaster (a least-squares line with a spread that grows with the horizon), so kit
behaviour such as anchoring, quantile levels and batching is checked against known numbers.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from chronotick.contract import ModelInfo
from chronotick.kit import BatchForecast, ModelBatch

NATIVE_LEVELS = np.array([0.1, 0.5, 0.9])
Z90 = 1.2815515655446004


class LineModel:
    """Least-squares line through the observed context; sigma = 1 us per step ahead."""

    def __init__(
        self,
        name: str,
        *,
        covariates: bool = False,
        covariate_names: list[str] | None = None,
        call_delay_s: float = 0.0,
    ) -> None:
        self.calls: list[int] = []
        self._lock = threading.Lock()
        self._call_delay_s = call_delay_s
        self._info = ModelInfo(
            name=name,
            model_id=f"test/{name}",
            model_version="sha256:test",
            library="numpy",
            min_context=4,
            max_context=32,
            max_horizon=16,
            native_quantile_levels=NATIVE_LEVELS.tolist(),
            past_covariates=covariates,
            future_covariates=covariates,
            covariate_names=covariate_names,
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def forecast(self, batch: ModelBatch) -> BatchForecast:
        with self._lock:
            self.calls.append(len(batch))
        time.sleep(self._call_delay_s)  # stands in for a model's fixed per-call cost
        steps = np.arange(1, batch.horizon + 1, dtype=float)
        means = []
        for context in batch.contexts:
            index = np.flatnonzero(~np.isnan(context))
            slope, intercept = np.polyfit(index.astype(float), context[index], 1)
            means.append(intercept + slope * (len(context) - 1 + steps))
        mean = np.array(means)
        spread = Z90 * steps
        quantiles = np.stack([mean - spread, mean, mean + spread], axis=1)
        return BatchForecast(levels=NATIVE_LEVELS, quantiles=quantiles, mean=mean)


class LineFamily:
    name = "line"

    def __init__(self, *, call_delay_s: float = 0.0) -> None:
        self.models = {
            "line": LineModel("line", call_delay_s=call_delay_s),
            "line-cov": LineModel("line-cov", covariates=True, call_delay_s=call_delay_s),
        }

    def load(self) -> dict[str, LineModel]:
        return self.models

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}
