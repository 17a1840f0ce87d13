"""The training command writes checkpoints that granite-tsfm's real loader accepts and that forecast sanely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tsfm_public")

from tsfm_public.models.tinytimemixer import TinyTimeMixerForPrediction

from chronotick.kit import ModelBatch
from chronotick.kit.scaling import CONFIG_KEY
from chronotick_ttm import train
from chronotick_ttm.ttm_model import COVARIATES, TtmModel

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
    """Relative offsets with a missing sample inside, and a short history in one row (the kit would also scale
    them; the adapter takes any units)."""
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
    assert all(name in card for name in ("last-value", "chrony-fit", "kalman"))


@pytest.mark.parametrize("name", list(train.SPECS))
def test_checkpoint_loads_with_the_library_loader_and_the_service_scaling(trained: Path, name: str) -> None:
    model_dir = trained / train.SPECS[name].dir_name
    library = TinyTimeMixerForPrediction.from_pretrained(str(model_dir), use_safetensors=True)
    assert library.config.scaling is None  # the kit scales; see chronotick.kit.scaling
    assert getattr(library.config, CONFIG_KEY) == "last-value-mad"
    assert (library.config.context_length, library.config.prediction_length) == (train.CONTEXT, train.PREDICTION)
    model = TtmModel(name, str(model_dir))
    assert model.info.input_scaling == "last-value-mad"
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
        train.main(
            ["--model", "ttm", "--out", str(tmp_path / run), "--steps", "2", "--series", "8", "--val-series", "6"]
        )
    weights = [(tmp_path / run / "ttm-micro" / "model.safetensors").read_bytes() for run in ("a", "b")]
    assert weights[0] == weights[1]


def test_specs_use_the_shared_kit_with_ttm_recipe() -> None:
    """Crops scaled as the kit scales a request (last-value-mad); ttm-exog trains on covariate crops only, some of
    which hide their future covariates or all of them."""
    from chronotick import training

    assert all(isinstance(spec, training.ModelSpec) for spec in train.SPECS.values())
    assert train.WINDOWS.relative and train.WINDOWS.scaling == "last-value-mad" and train.WINDOWS.future_clip is None
    exog = train.SPECS["ttm-exog"]
    assert exog.covariate_schedule == "always" and exog.covariate_batch_size == train.WINDOWS.batch_size
    pools = training.make_pools(0, 8, train.WINDOWS)
    batch = pools.covariate.sample(np.random.default_rng(0), 64, train.WINDOWS, augment=True)
    assert len(batch.past) == 64 and batch.cov_future is not None and batch.cov_past is not None
    assert batch.scale_us is not None and bool((batch.scale_us > 0).all())
    hidden_future = batch.cov_future.isnan().flatten(1).all(dim=1)
    hidden_past = batch.cov_past.isnan().flatten(1).all(dim=1)
    assert 0 < int(hidden_future.sum()) < 64 and 0 < int(hidden_past.sum()) < int(hidden_future.sum())


def test_loss_weights_near_steps_more_and_masks_missing_targets() -> None:
    """The loss is the MAE in the batch's units, each step weighted by the inverse of "no change"'s error there: on
    a clock that wanders away from its last value, an error at step 1 costs more than the same error at step 96,
    and a missing target costs nothing."""
    import torch

    from chronotick.training import Batch

    class Constant(torch.nn.Module):
        def __init__(self, forecast: torch.Tensor) -> None:
            super().__init__()
            self.forecast = forecast

        def forward(self, **_: object) -> object:
            return type("Out", (), {"prediction_outputs": self.forecast[..., None]})()

    past = torch.zeros(1, train.CONTEXT)
    future = torch.arange(1, train.PREDICTION + 1, dtype=torch.float32).sqrt()[None]  # drifts off its last value
    near, far = future.clone(), future.clone()
    near[0, 0] += 1.0
    far[0, -1] += 1.0
    batch = Batch(past, future, scale_us=torch.ones(1))
    assert train.loss_on(Constant(near), batch) > train.loss_on(Constant(far), batch) > 0
    masked = Batch(past, torch.where(near != future, torch.nan, future), scale_us=torch.ones(1))
    assert float(train.loss_on(Constant(near), masked)) == 0.0
