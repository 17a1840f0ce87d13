"""Where the chronos service finds its weights (environment prefix ``CHRONOTICK_CHRONOS_``).

Each ``*_MODEL_ID`` takes a local checkpoint directory or a Hugging Face id, loaded by the
library's own loader. Left unset, it is the micro-checkpoint bundled under ``MODELS_DIR``, so the
service runs offline out of the box. With internet, ``CHRONOTICK_CHRONOS_BOLT_MODEL_ID=
amazon/chronos-bolt-small`` (say) serves the pretrained weights instead.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chronotick.families import family

# The checkpoints live beside the package in the source tree; images set MODELS_DIR explicitly.
_SOURCE_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

MODEL_NAMES = family("chronos").models  # as shared/chronotick/families.toml declares them
BUNDLED_CHECKPOINTS = {
    "chronos-bolt": "chronos-bolt-micro",
    "chronos-2": "chronos-2-micro",
    "timesfm-2.5": "timesfm-2.5-micro",
}


class ChronosSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHRONOTICK_CHRONOS_", extra="ignore")

    models_dir: Path = Field(default=_SOURCE_MODELS_DIR, description="Where bundled checkpoints are.")
    models: list[str] = Field(default=list(MODEL_NAMES), description="Models to serve, the first is the default.")
    bolt_model_id: str | None = None
    chronos2_model_id: str | None = None
    timesfm_model_id: str | None = None

    def checkpoint(self, name: str) -> str:
        chosen = {
            "chronos-bolt": self.bolt_model_id,
            "chronos-2": self.chronos2_model_id,
            "timesfm-2.5": self.timesfm_model_id,
        }[name]
        return chosen or str(self.models_dir / BUNDLED_CHECKPOINTS[name])
