"""`python -m chronotick_toto.finetune` tunes a checkpoint on the early part of a log; the service loads it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("toto")

from chronotick_toto import finetune
from chronotick_toto.family import TotoFamily
from chronotick_toto.settings import TotoSettings
from chronotick_toto.train import SPECS
from support.finetune_check import check_serves, finetune_and_check

pytestmark = pytest.mark.slow  # trains a few steps on a small log


def test_finetuned_checkpoint_is_served_through_its_model_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = finetune.MODEL_ID_ENV["toto"]
    out, _ = finetune_and_check(tmp_path, finetune.main, SPECS["toto"], env)
    monkeypatch.setenv(env, str(out))
    check_serves(TotoFamily(TotoSettings(models=["toto"])).load()["toto"], out)
