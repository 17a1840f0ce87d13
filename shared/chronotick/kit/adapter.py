"""What a model family implements to become a service: load its models, forecast a batch.

Everything else (HTTP, validation, batching, quantile levels, health, metrics) is the kit's job, so
a family adapter stays a thin layer over its library.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from chronotick.contract import ModelInfo


@dataclass(frozen=True)
class ModelBatch:
    """Inputs for one model call, already cleaned by the kit.

    ``contexts`` are float64 arrays, oldest first, NaN where a sample is missing, truncated to the
    model's ``max_context`` and shifted so that the last observed value is 0 (the kit adds it back):
    models then see small numbers whatever the clock's absolute offset, which keeps float32
    precision where it matters. A model whose ``info.input_scaling`` is ``last-value-mad`` gets each
    context also divided by its mean absolute step (``chronotick.kit.scaling``) and answers in those
    units; the kit maps the answer back. Covariates are aligned with the contexts (past) and the horizon
    (future); families that do not use covariates never receive any.
    """

    contexts: list[np.ndarray]
    horizon: int
    interval_s: list[float]
    past_covariates: list[dict[str, np.ndarray]] = field(default_factory=list)
    future_covariates: list[dict[str, np.ndarray]] = field(default_factory=list)
    # The request's ``skip_spread_backtests``: a point forecaster's spread without extra model calls.
    skip_spread_backtests: bool = False

    def __len__(self) -> int:
        return len(self.contexts)


@dataclass(frozen=True)
class BatchForecast:
    """A model's answer for a batch, on its native quantile grid.

    ``quantiles`` is (batch, levels, horizon), ``mean`` is (batch, horizon); ``levels`` are the
    model's own quantile levels, increasing. The kit derives requested levels and the standard
    deviation from these.
    """

    levels: np.ndarray
    quantiles: np.ndarray
    mean: np.ndarray


class ForecastModel(Protocol):
    """One loaded model. ``forecast`` runs on a worker thread, one call at a time."""

    @property
    def info(self) -> ModelInfo: ...

    def forecast(self, batch: ModelBatch) -> BatchForecast: ...


class ModelFamily(Protocol):
    """A family of models that share one environment (one container)."""

    name: str

    def load(self) -> dict[str, ForecastModel]:
        """Load every model of the family; the first one is the default."""
        ...

    def versions(self) -> dict[str, str]:
        """Versions of the libraries the models run on, for ``/info``."""
        ...


def refuse_unserved_models(requested: Iterable[str], served: Collection[str]) -> None:
    """Stop a family's ``load`` on a model it does not serve (a typo in ``CHRONOTICK_<FAMILY>_MODELS``):
    a service that started without it would answer "no such model" for as long as it runs."""
    unknown = sorted(set(requested) - set(served))
    if unknown:
        raise ValueError(f"unknown models {unknown}; this family serves {sorted(served)}")
