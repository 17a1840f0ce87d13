"""`python -m chronotick_chronos.finetune` tunes a checkpoint on the early part of a log; the service loads it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("chronos")

from chronotick_chronos import finetune
from chronotick_chronos.family import ChronosFamily
from chronotick_chronos.settings import ChronosSettings
from chronotick_chronos.train import SPECS
from support.clock_log import write_csv_log
from support.finetune_check import check_serves, finetune_and_check

pytestmark = pytest.mark.slow  # trains a few steps (~10 s per model on 2 cores)


@pytest.mark.parametrize("name", ["chronos-bolt", "chronos-2"])
def test_finetuned_checkpoint_is_served_through_its_model_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    env = finetune.MODEL_ID_ENV[name]
    out, _ = finetune_and_check(tmp_path, finetune.main, SPECS[name], env)
    monkeypatch.setenv(env, str(out))
    settings = ChronosSettings(models=[name])
    assert settings.checkpoint(name) == str(out)
    check_serves(ChronosFamily(settings).load()[name], out)


def test_a_log_too_short_for_a_crop_is_refused_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    log = write_csv_log(tmp_path / "short.csv", 600)
    with pytest.raises(SystemExit) as exit_info:
        finetune.main(["--model", "chronos-bolt", "--log", str(log), "--out", str(tmp_path / "tuned")])
    assert exit_info.value.code == 2
    assert "too few" in capsys.readouterr().err
    assert not (tmp_path / "tuned").exists()
