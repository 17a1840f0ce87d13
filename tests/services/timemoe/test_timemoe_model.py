"""The adapter's inference pass gives what the library's own forward gives, only faster; it leaves the input
scaling to the kit (chronotick.kit.scaling) except for released checkpoints, which it z-scores as upstream does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sktime.libs.timemoe")

import torch
from sktime.libs.timemoe import TimeMoeForPrediction

from chronotick.kit import ModelBatch
from chronotick.kit.scaling import CONFIG_KEY, scale_context
from chronotick_timemoe.settings import TimeMoeSettings
from chronotick_timemoe.timemoe_model import TimeMoeModel, forecast_normalised, padded_inputs

HORIZON = 60


def _library_forecast(model: TimeMoeForPrediction, rows: list[np.ndarray]) -> torch.Tensor:
    inputs, attention, positions = padded_inputs(rows)
    out = model(
        input_ids=inputs,
        attention_mask=attention,
        position_ids=positions,
        use_cache=False,
        return_dict=True,
        max_horizon_length=max(model.config.horizon_lengths),
    )
    return out.logits[:, -1, :HORIZON]


def test_one_pass_matches_the_library_forward_with_padding() -> None:
    model = TimeMoeForPrediction.from_pretrained(
        TimeMoeSettings().checkpoint("timemoe"), torch_dtype=torch.float32, use_safetensors=True
    ).eval()
    rng = np.random.default_rng(3)
    # Different lengths in one pass, so the shorter rows are left-padded and masked.
    rows = [np.clip(np.cumsum(rng.normal(0, 1, n)) / 3.0, -50, 50) for n in (512, 452, 90, 16)]
    with torch.inference_mode():
        ours = forecast_normalised(model, rows, HORIZON)
        library = _library_forecast(model, rows)
    assert ours.shape == (4, HORIZON)
    torch.testing.assert_close(ours, library, rtol=1e-4, atol=1e-4)
    assert not torch.equal(ours[0], ours[1])  # rows really forecast differently


def _context(seed: int = 5) -> np.ndarray:
    context = np.cumsum(np.random.default_rng(seed).normal(0, 5, 300))
    return context - context[-1]


def _checkpoint_with(tmp_path: Path, **keys: object) -> Path:
    """The bundled checkpoint with its ChronoTick scaling keys replaced by ``keys``."""
    model_dir = tmp_path / "checkpoint"
    shutil.copytree(TimeMoeSettings().checkpoint("timemoe"), model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config = {k: v for k, v in config.items() if k != CONFIG_KEY} | keys
    (model_dir / "config.json").write_text(json.dumps(config))
    return model_dir


def test_the_bundled_checkpoint_asks_the_kit_for_last_value_mad() -> None:
    assert TimeMoeModel("timemoe", TimeMoeSettings().checkpoint("timemoe")).info.input_scaling == "last-value-mad"


def test_a_last_value_mad_checkpoint_gets_kit_scaled_contexts_through_unchanged(tmp_path: Path) -> None:
    model = TimeMoeModel("timemoe", str(_checkpoint_with(tmp_path, **{CONFIG_KEY: "last-value-mad"})))
    assert model.info.input_scaling == "last-value-mad"
    scaled, _ = scale_context(_context(), model.info.input_scaling)
    ours = model.point_forecast(ModelBatch(contexts=[scaled], horizon=HORIZON, interval_s=[1.0]))
    with torch.inference_mode():
        library = forecast_normalised(model._model, [scaled], HORIZON).to(torch.float64).numpy()
    np.testing.assert_allclose(ours, library, rtol=1e-6, atol=1e-9)  # no shift, no scale of its own


def test_a_released_style_checkpoint_stays_anchored_and_is_z_scored_by_the_adapter(tmp_path: Path) -> None:
    model = TimeMoeModel("released", str(_checkpoint_with(tmp_path)))
    assert model.info.input_scaling == "anchored"
    context = _context()
    ours = model.point_forecast(ModelBatch(contexts=[context], horizon=HORIZON, interval_s=[1.0]))
    mean, std = context.mean(), context.std()
    with torch.inference_mode():
        normalised = forecast_normalised(model._model, [(context - mean) / std], HORIZON).to(torch.float64).numpy()
    np.testing.assert_allclose(ours, normalised * std + mean, rtol=1e-5, atol=1e-6)
