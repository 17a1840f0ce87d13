"""`python -m chronotick_ttm.finetune` tunes a checkpoint on the early part of a log; the service loads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tsfm_public")

from chronotick.kit.scaling import CONFIG_KEY
from chronotick_ttm import finetune
from chronotick_ttm.family import TtmFamily
from chronotick_ttm.settings import TtmSettings
from chronotick_ttm.train import SPECS
from support.finetune_check import check_serves, finetune_and_check

pytestmark = pytest.mark.slow  # trains a few steps on a small log


def test_finetuned_checkpoint_is_served_through_its_model_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = finetune.MODEL_ID_ENV["ttm"]
    out, _ = finetune_and_check(tmp_path, finetune.main, SPECS["ttm"], env)
    # Tuned on the kit's last-value-mad crops, it asks the service for them.
    assert json.loads((out / "config.json").read_text())[CONFIG_KEY] == "last-value-mad"
    monkeypatch.setenv(env, str(out))
    check_serves(TtmFamily(TtmSettings(models=["ttm"])).load()["ttm"], out)
