"""The training command writes checkpoints that the libraries' real loaders accept and that forecast sanely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("chronos")
pytest.importorskip("timesfm")

import torch
from chronos import BaseChronosPipeline
from chronotick_chronos import train
from chronotick_chronos.timesfm_loader import load_timesfm_2p5

pytestmark = pytest.mark.slow  # trains three models for a few steps each (~30 s on 2 cores)

HORIZON = 60
MAX_CHECKPOINT_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    train.main(["--model", "all", "--out", str(out), "--steps", "3", "--series", "16", "--val-series", "6"])
    return out


def _context(n: int = 3) -> np.ndarray:
    """Relative offsets with a missing sample inside and a run of leading NaN (short history) in one row."""
    rng = np.random.default_rng(0)
    ctx = np.cumsum(rng.normal(0, 5, (n, train.CONTEXT)), axis=1)
    ctx -= ctx[:, -1:]
    ctx[0, 100] = np.nan
    ctx[1, :300] = np.nan
    return ctx


@pytest.mark.parametrize("name", list(train.SPECS))
def test_checkpoint_is_small_safetensors_with_card(trained: Path, name: str) -> None:
    model_dir = trained / train.SPECS[name].dir_name
    files = {f.name for f in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "README.md"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert sum(f.stat().st_size for f in model_dir.iterdir()) <= MAX_CHECKPOINT_BYTES
    card = (model_dir / "README.md").read_text()
    assert "Validation MAE" in card and train.SPECS[name].hub_id in card


def test_chronos_bolt_loads_and_forecasts(trained: Path) -> None:
    pipe = BaseChronosPipeline.from_pretrained(str(trained / "chronos-bolt-micro"), device_map="cpu")
    quantiles, mean = pipe.predict_quantiles(
        torch.tensor(_context(), dtype=torch.float32), prediction_length=HORIZON, quantile_levels=[0.1, 0.5, 0.9]
    )
    assert quantiles.shape == (3, HORIZON, 3) and mean.shape == (3, HORIZON)
    assert torch.isfinite(quantiles).all() and torch.isfinite(mean).all()


def test_chronos_2_loads_and_forecasts_with_covariates(trained: Path) -> None:
    pipe = BaseChronosPipeline.from_pretrained(str(trained / "chronos-2-micro"), device_map="cpu")
    ctx = _context()
    inputs = [
        {
            "target": row,
            "past_covariates": {"temperature_c": np.full(len(row), 40.0), "cpu_load": np.linspace(0, 1, len(row))},
            "future_covariates": {"temperature_c": np.full(HORIZON, 41.0), "cpu_load": np.full(HORIZON, 0.5)},
        }
        for row in ctx
    ]
    for batch in (inputs, [{"target": row} for row in ctx]):
        quantiles, mean = pipe.predict_quantiles(batch, prediction_length=HORIZON, quantile_levels=[0.1, 0.5, 0.9])
        assert len(quantiles) == len(mean) == 3
        assert all(q.shape == (1, HORIZON, 3) and torch.isfinite(q).all() for q in quantiles)
        assert all(m.shape == (1, HORIZON) and torch.isfinite(m).all() for m in mean)


def test_timesfm_loads_and_forecasts(trained: Path) -> None:
    model = load_timesfm_2p5(str(trained / "timesfm-2.5-micro"), max_context=train.CONTEXT, max_horizon=HORIZON)
    point, quantiles = model.forecast(horizon=HORIZON, inputs=list(_context()))
    assert point.shape == (3, HORIZON) and quantiles.shape == (3, HORIZON, 10)
    assert np.isfinite(point).all() and np.isfinite(quantiles).all()
    np.testing.assert_allclose(point, quantiles[..., 5])  # the point forecast is the median column
