"""The chronos family: Chronos-Bolt, Chronos-2 and TimesFM 2.5 in one environment."""

from __future__ import annotations

from importlib.metadata import version

from chronotick.kit import ForecastModel, refuse_unserved_models
from chronotick_chronos.settings import MODEL_NAMES, ChronosSettings


class ChronosFamily:
    name = "chronos"

    def __init__(self, settings: ChronosSettings | None = None) -> None:
        self._settings = settings or ChronosSettings()

    def load(self) -> dict[str, ForecastModel]:
        # Imported here so that importing the service (for its OpenAPI schema, say) stays cheap.
        from chronotick_chronos.pipelines import ChronosPipelineModel
        from chronotick_chronos.timesfm_model import TimesFmModel

        builders = {
            "chronos-bolt": ChronosPipelineModel,
            "chronos-2": ChronosPipelineModel,
            "timesfm-2.5": TimesFmModel,
        }
        refuse_unserved_models(self._settings.models, MODEL_NAMES)
        return {name: builders[name](name, self._settings.checkpoint(name)) for name in self._settings.models}

    def versions(self) -> dict[str, str]:
        packages = ("chronos-forecasting", "timesfm", "transformers", "torch")
        return {package: version(package) for package in packages}
