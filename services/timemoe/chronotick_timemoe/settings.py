"""Where the timemoe service finds its weights (environment prefix ``CHRONOTICK_TIMEMOE_``).

``TIMEMOE_MODEL_ID`` takes a local checkpoint directory or a Hugging Face id, loaded by the
library's own loader (``TimeMoeForPrediction.from_pretrained``, safetensors, never remote code).
Left unset, it is the micro-checkpoint bundled under ``MODELS_DIR``, so the service runs offline
out of the box. With internet, ``CHRONOTICK_TIMEMOE_MODEL_ID=Maple728/TimeMoE-50M`` serves
the pretrained weights instead.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chronotick.families import family

# The checkpoints live beside the package in the source tree; images set MODELS_DIR explicitly.
_SOURCE_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

MODEL_NAMES = family("timemoe").models  # as shared/chronotick/families.toml declares them
BUNDLED_CHECKPOINTS = {"timemoe": "timemoe-micro"}


class TimeMoeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHRONOTICK_TIMEMOE_", extra="ignore")

    models_dir: Path = Field(default=_SOURCE_MODELS_DIR, description="Where bundled checkpoints are.")
    models: list[str] = Field(default=list(MODEL_NAMES), description="Models to serve, the first is the default.")
    model_id: str | None = None

    def checkpoint(self, name: str) -> str:
        chosen = {"timemoe": self.model_id}[name]
        return chosen or str(self.models_dir / BUNDLED_CHECKPOINTS[name])
