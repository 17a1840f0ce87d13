"""The training command writes a checkpoint that Toto's real loader accepts and that forecasts sanely."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("toto")

import torch
from chronotick.kit import ModelBatch
from chronotick_toto import train
from chronotick_toto.toto_model import TotoModel
from toto.data.util.dataset import MaskedTimeseries
from toto.inference.forecaster import TotoForecaster
from toto.model.toto import Toto

pytestmark = pytest.mark.slow  # trains for a few steps and validates (~20 s on 2 cores)

HORIZON = 60
MAX_CHECKPOINT_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    train.main(["--out", str(out), "--steps", "3", "--series", "16", "--val-series", "2"])
    return out / train.DIR_NAME


def _contexts(n: int = 3) -> list[np.ndarray]:
    """Relative offsets with a missing sample inside one row and a run of leading NaN (short history) in another."""
    rng = np.random.default_rng(0)
    ctx = np.cumsum(rng.normal(0, 5, (n, train.CONTEXT)), axis=1)
    ctx -= ctx[:, -1:]
    ctx[0, 100] = np.nan
    ctx[1, :300] = np.nan
    return list(ctx)


def test_checkpoint_is_small_safetensors_with_card(trained: Path) -> None:
    files = {f.name for f in trained.iterdir()}
    assert files == {"config.json", "model.safetensors", "README.md"}
    assert sum(f.stat().st_size for f in trained.iterdir()) <= MAX_CHECKPOINT_BYTES
    card = (trained / "README.md").read_text()
    assert "Validation MAE" in card and train.HUB_ID in card
    assert json.loads((trained / "config.json").read_text()) == train.CONFIG


def test_the_library_loader_reads_it_and_forecasts(trained: Path) -> None:
    model = Toto.load_from_checkpoint(str(trained), map_location="cpu")
    series = torch.tensor(np.nan_to_num(np.stack(_contexts())), dtype=torch.float32)[:, None, :]
    inputs = MaskedTimeseries(
        series=series,
        padding_mask=torch.ones_like(series, dtype=torch.bool),
        id_mask=torch.zeros_like(series, dtype=torch.int),
        timestamp_seconds=torch.arange(train.CONTEXT).expand(3, 1, -1),
        time_interval_seconds=torch.ones((3, 1), dtype=torch.int),
    )
    forecast = TotoForecaster(model.model).forecast(inputs, prediction_length=HORIZON, num_samples=8, samples_per_batch=8)
    assert forecast.samples is not None and forecast.samples.shape == (3, 1, HORIZON, 8)
    assert torch.isfinite(forecast.samples).all()


def test_the_service_adapter_forecasts_with_and_without_covariates(trained: Path) -> None:
    model = TotoModel("toto", str(trained), num_samples=16)
    contexts = _contexts()
    past = [{"cpu_load": np.linspace(0, 1, train.CONTEXT), "temperature_c": np.full(train.CONTEXT, 40.0)}] * 3
    future = [{"cpu_load": np.full(HORIZON, 0.5)}] * 3
    for batch in (
        ModelBatch(contexts=contexts, horizon=HORIZON, interval_s=[1.0] * 3),
        ModelBatch(contexts=contexts, horizon=HORIZON, interval_s=[1.0] * 3, past_covariates=past,
                   future_covariates=future),
    ):
        result = model.forecast(batch)
        assert result.quantiles.shape == (3, result.levels.size, HORIZON) and result.mean.shape == (3, HORIZON)
        assert np.isfinite(result.quantiles).all() and np.all(np.diff(result.quantiles, axis=1) >= 0)


def test_training_is_seeded(tmp_path: Path) -> None:
    for run in ("a", "b"):
        train.main(["--out", str(tmp_path / run), "--steps", "2", "--series", "8", "--val-series", "1"])
    weights = [(tmp_path / run / train.DIR_NAME / "model.safetensors").read_bytes() for run in ("a", "b")]
    assert weights[0] == weights[1]


def test_spec_uses_the_shared_kit_with_toto_recipe() -> None:
    """Relative crops, no future clipping; a short history blanks the covariates' past too; full covariate batches."""
    from chronotick import training

    spec = train.SPECS["toto"]
    assert isinstance(spec, training.ModelSpec) and spec.covariate_batch_size == train.WINDOWS.batch_size
    pools = training.make_pools(0, 8, train.WINDOWS)
    batch = pools.covariate.sample(np.random.default_rng(0), 64, train.WINDOWS, augment=True)
    values = train.variates(batch)
    assert values.shape == (64, 1 + len(train.COVARIATES), train.CONTEXT + train.PATCH)
    short = np.isnan(values[:, 1:, 0]).all(axis=1)  # covariates are never missing on their own
    assert short.any() and np.isnan(values[short, 0, 0]).all()
