"""The toto family: Datadog's Toto in its own environment (toto-ts pins its own torch and transformers)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from chronotick.kit import ForecastModel, refuse_unserved_models
from chronotick_toto.settings import MODEL_NAMES, TotoSettings


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


class TotoFamily:
    name = "toto"

    def __init__(self, settings: TotoSettings | None = None) -> None:
        self._settings = settings or TotoSettings()

    def load(self) -> dict[str, ForecastModel]:
        # Imported here so that importing the service (for its OpenAPI schema, say) stays cheap.
        from chronotick_toto.toto_model import TotoModel

        refuse_unserved_models(self._settings.models, MODEL_NAMES)
        return {
            name: TotoModel(
                name, self._settings.checkpoint(name), num_samples=self._settings.num_samples, seed=self._settings.seed
            )
            for name in self._settings.models
        }

    def versions(self) -> dict[str, str]:
        # toto-ts declares transformers==4.52.1 but never imports it, so this environment leaves it out:
        # /info says "not installed" rather than naming a version nothing runs on.
        packages = ("toto-ts", "gluonts", "transformers", "torch")
        return {package: _version(package) for package in packages}
