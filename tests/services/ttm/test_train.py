"""The training command writes checkpoints that granite-tsfm's real loader accepts and that forecast sanely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tsfm_public")

from chronotick.kit import ModelBatch
from chronotick_ttm import train
from chronotick_ttm.ttm_model import COVARIATES, TtmModel
from tsfm_public.models.tinytimemixer import TinyTimeMixerForPrediction

pytestmark = pytest.mark.slow  # trains both models for a few steps each (~30 s on 2 cores)

HORIZON = 60
MAX_CHECKPOINT_BYTES = 8 * 1024 * 1024
FEW_STEPS = ["--steps", "3", "--series", "16", "--val-series", "6"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    train.main(["--model", "all", "--out", str(out), *FEW_STEPS])
    return out


def _contexts(n: int = 3) -> list[np.ndarray]:
    """Relative offsets with a missing sample inside, and a short history in one row."""
    rng = np.random.default_rng(0)
    ctx = np.cumsum(rng.normal(0, 5, (n, train.CONTEXT)), axis=1)
    ctx -= ctx[:, -1:]
    ctx[0, 100] = np.nan
    return [ctx[0], ctx[1, 300:], ctx[2]]


@pytest.mark.parametrize("name", list(train.SPECS))
def test_checkpoint_is_small_safetensors_with_card(trained: Path, name: str) -> None:
    model_dir = trained / train.SPECS[name].dir_name
    files = {f.name for f in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "README.md"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert sum(f.stat().st_size for f in model_dir.iterdir()) <= MAX_CHECKPOINT_BYTES
    card = (model_dir / "README.md").read_text()
    assert "Validation MAE" in card and train.HUB_ID in card
    assert "last_value_forecast" in card and "linear_fit_forecast" in card


@pytest.mark.parametrize("name", list(train.SPECS))
def test_checkpoint_loads_with_the_library_loader_and_the_service_scaling(trained: Path, name: str) -> None:
    model_dir = trained / train.SPECS[name].dir_name
    library = TinyTimeMixerForPrediction.from_pretrained(str(model_dir), use_safetensors=True)
    assert library.config.scaling is None  # the service scales; see chronotick_ttm.ttm_model
    assert (library.config.context_length, library.config.prediction_length) == (train.CONTEXT, train.PREDICTION)
    model = TtmModel(name, str(model_dir))
    point = model.point_forecast(ModelBatch(_contexts(), HORIZON, [1.0] * 3))
    assert point.shape == (3, HORIZON) and np.isfinite(point).all()


def test_exog_checkpoint_forecasts_with_covariates_and_starts_from_the_univariate_one(trained: Path) -> None:
    model_dir = trained / train.SPECS["ttm-exog"].dir_name
    assert "Started from" in (model_dir / "README.md").read_text()
    contexts = _contexts()
    pasts = [{k: np.linspace(0, 1, len(c)) for k in COVARIATES} for c in contexts]
    futures = [{k: np.full(HORIZON, 0.5) for k in COVARIATES} for _ in contexts]
    point = TtmModel("ttm-exog", str(model_dir)).point_forecast(
        ModelBatch(contexts, HORIZON, [1.0] * 3, pasts, futures)
    )
    assert point.shape == (3, HORIZON) and np.isfinite(point).all()


def test_training_is_seeded(tmp_path: Path) -> None:
    for run in ("a", "b"):
        train.main(["--model", "ttm", "--out", str(tmp_path / run), "--steps", "2", "--series", "8", "--val-series", "6"])
    weights = [(tmp_path / run / "ttm-micro" / "model.safetensors").read_bytes() for run in ("a", "b")]
    assert weights[0] == weights[1]


def test_specs_use_the_shared_kit_with_ttm_recipe() -> None:
    """Raw crops (the loss scales them as the service does); ttm-exog trains on covariate crops only, some of
    which hide their future covariates or all of them."""
    from chronotick import training

    assert all(isinstance(spec, training.ModelSpec) for spec in train.SPECS.values())
    assert train.WINDOWS.relative is False and train.WINDOWS.future_clip is None
    exog = train.SPECS["ttm-exog"]
    assert exog.covariate_schedule == "always" and exog.covariate_batch_size == train.WINDOWS.batch_size
    pools = training.make_pools(0, 8, train.WINDOWS)
    batch = pools.covariate.sample(np.random.default_rng(0), 64, train.WINDOWS, augment=True)
    assert len(batch.past) == 64 and batch.cov_future is not None and batch.cov_past is not None
    hidden_future = batch.cov_future.isnan().flatten(1).all(dim=1)
    hidden_past = batch.cov_past.isnan().flatten(1).all(dim=1)
    assert 0 < int(hidden_future.sum()) < 64 and 0 < int(hidden_past.sum()) < int(hidden_future.sum())
