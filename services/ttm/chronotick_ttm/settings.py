"""Where the ttm service finds its weights (environment prefix ``CHRONOTICK_TTM_``).

Each ``*_MODEL_ID`` takes a local checkpoint directory or a Hugging Face id, loaded by
``TinyTimeMixerForPrediction.from_pretrained`` (safetensors only). Left unset, it is the
micro-checkpoint bundled under ``MODELS_DIR``, so the service runs offline out of the box. With
internet, ``CHRONOTICK_TTM_MODEL_ID=ibm-granite/granite-timeseries-ttm-r2`` serves the pretrained
512-96 weights instead (its ``main`` revision; ``CHRONOTICK_TTM_MODEL_REVISION`` picks another).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chronotick.families import family

# The checkpoints live beside the package in the source tree; images set MODELS_DIR explicitly.
_SOURCE_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

MODEL_NAMES = family("ttm").models  # as shared/chronotick/families.toml declares them
BUNDLED_CHECKPOINTS = {"ttm": "ttm-micro", "ttm-exog": "ttm-exog-micro"}


class TtmSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHRONOTICK_TTM_", extra="ignore")

    models_dir: Path = Field(default=_SOURCE_MODELS_DIR, description="Where bundled checkpoints are.")
    models: list[str] = Field(default=list(MODEL_NAMES), description="Models to serve, the first is the default.")
    model_id: str | None = Field(default=None, description="Weights of `ttm` (univariate).")
    exog_model_id: str | None = Field(default=None, description="Weights of `ttm-exog` (with covariates).")
    model_revision: str | None = Field(default=None, description="Hub revision (branch) for hub ids.")

    def checkpoint(self, name: str) -> str:
        chosen = {"ttm": self.model_id, "ttm-exog": self.exog_model_id}[name]
        return chosen or str(self.models_dir / BUNDLED_CHECKPOINTS[name])
