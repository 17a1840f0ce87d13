"""The service kit: a model family adapter plus settings in, a forecasting service out."""

from chronotick.kit.adapter import BatchForecast, ForecastModel, ModelBatch, ModelFamily, refuse_unserved_models
from chronotick.kit.app import create_app
from chronotick.kit.settings import ServiceSettings
from chronotick.kit.versioning import weights_version

__all__ = [
    "BatchForecast",
    "ForecastModel",
    "ModelBatch",
    "ModelFamily",
    "ServiceSettings",
    "create_app",
    "refuse_unserved_models",
    "weights_version",
]
