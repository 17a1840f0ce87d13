"""The timemoe family: Time-MoE, a decoder-only mixture-of-experts point forecaster."""

from __future__ import annotations

from importlib.metadata import version

from chronotick.kit import ForecastModel, refuse_unserved_models
from chronotick_timemoe.settings import MODEL_NAMES, TimeMoeSettings

TIMEMOE_RESIDUAL_ORIGINS = 3


class TimeMoeFamily:
    name = "timemoe"

    def __init__(self, settings: TimeMoeSettings | None = None) -> None:
        self._settings = settings or TimeMoeSettings()

    def load(self) -> dict[str, ForecastModel]:
        # Imported here so that importing the service (for its OpenAPI schema, say) stays cheap.
        from chronotick.kit.spread import ResidualSpread
        from chronotick_timemoe.timemoe_model import TimeMoeModel

        refuse_unserved_models(self._settings.models, MODEL_NAMES)
        # Time-MoE gives point forecasts: the spread comes from its own residuals on the context's tail.
        # Three origins, not the kit's default: it reads one token per sample, so every extra context
        # costs a full 512-token pass, and the real context plus three backtests share one pass
        # (see TimeMoeModel); the gateway recalibrates every member on its own backtests anyway.
        return {
            name: ResidualSpread(TimeMoeModel(name, self._settings.checkpoint(name)), origins=TIMEMOE_RESIDUAL_ORIGINS)
            for name in self._settings.models
        }

    def versions(self) -> dict[str, str]:
        packages = ("sktime", "transformers", "torch")
        return {package: version(package) for package in packages}
