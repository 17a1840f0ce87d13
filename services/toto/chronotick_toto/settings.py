"""Where the toto service finds its weights and how it samples (environment prefix ``CHRONOTICK_TOTO_``).

``TOTO_MODEL_ID`` takes a local checkpoint directory (``model.safetensors`` + ``config.json``, read by
``Toto.load_from_checkpoint``) or a Hugging Face id (read by ``Toto.from_pretrained``). Left unset, it
is the micro-checkpoint bundled under ``MODELS_DIR``, so the service runs offline out of the box. With
internet, ``CHRONOTICK_TOTO_MODEL_ID=Datadog/Toto-Open-Base-1.0`` serves the released weights.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chronotick.families import family

# The checkpoints live beside the package in the source tree; images set MODELS_DIR explicitly.
_SOURCE_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

MODEL_NAMES = family("toto").models  # as shared/chronotick/families.toml declares them
BUNDLED_CHECKPOINTS = {"toto": "toto-micro"}


class TotoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHRONOTICK_TOTO_", extra="ignore")

    models_dir: Path = Field(default=_SOURCE_MODELS_DIR, description="Where bundled checkpoints are.")
    models: list[str] = Field(default=list(MODEL_NAMES), description="Models to serve, the first is the default.")
    model_id: str | None = None
    num_samples: int = Field(
        default=64,
        ge=8,
        le=1024,
        description="Sample paths per series; quantiles and mean are theirs. More is smoother and slower.",
    )
    seed: int = Field(default=0, ge=0, description="Sampling seed: the same request gets the same answer.")

    def checkpoint(self, name: str) -> str:
        chosen = {"toto": self.model_id}[name]
        return chosen or str(self.models_dir / BUNDLED_CHECKPOINTS[name])
