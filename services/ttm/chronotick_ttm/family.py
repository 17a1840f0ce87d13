"""The ttm family: TinyTimeMixer, univariate (`ttm`) and with known-future covariates (`ttm-exog`).

TinyTimeMixer forecasts one value per step; the spread around it comes from its own residuals on
rolling origins of each context (`chronotick.kit.spread.ResidualSpread`).
"""

from __future__ import annotations

from importlib.metadata import version

from chronotick.kit import ForecastModel, refuse_unserved_models
from chronotick_ttm.settings import MODEL_NAMES, TtmSettings


class TtmFamily:
    name = "ttm"

    def __init__(self, settings: TtmSettings | None = None) -> None:
        self._settings = settings or TtmSettings()

    def load(self) -> dict[str, ForecastModel]:
        # Imported here so that importing the service (for its OpenAPI schema, say) stays cheap.
        from chronotick.kit.spread import ResidualSpread
        from chronotick_ttm.ttm_model import TtmModel

        refuse_unserved_models(self._settings.models, MODEL_NAMES)
        return {
            name: ResidualSpread(
                TtmModel(name, self._settings.checkpoint(name), revision=self._settings.model_revision)
            )
            for name in self._settings.models
        }

    def versions(self) -> dict[str, str]:
        packages = ("granite-tsfm", "transformers", "torch")
        return {package: version(package) for package in packages}
