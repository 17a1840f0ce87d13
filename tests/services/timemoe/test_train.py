"""The training command writes a checkpoint that the library's real loader accepts and that forecasts sanely."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sktime.libs.timemoe")

import torch
from sktime.libs.timemoe import TimeMoeForPrediction

from chronotick.kit import ModelBatch
from chronotick.kit.scaling import CONFIG_KEY
from chronotick_timemoe import train
from chronotick_timemoe.timemoe_model import TimeMoeModel

pytestmark = pytest.mark.slow  # trains for a few steps (~30 s on 2 cores)

HORIZON = 60
MAX_CHECKPOINT_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    train.main(["--out", str(out), "--steps", "3", "--series", "8", "--val-series", "6"])
    return out / "timemoe-micro"


def _contexts() -> list[np.ndarray]:
    """Relative offsets of different lengths, one with a missing sample inside, one with a short history."""
    rng = np.random.default_rng(0)
    rows = [np.cumsum(rng.normal(0, 5, n)) for n in (512, 300, 512, 90)]
    rows = [row - row[-1] for row in rows]
    rows[0][100] = np.nan
    rows[2][:300] = np.nan
    return rows


def test_checkpoint_is_small_safetensors_with_card(trained: Path) -> None:
    files = {f.name for f in trained.iterdir()}
    assert {"config.json", "model.safetensors", "README.md"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert sum(f.stat().st_size for f in trained.iterdir()) <= MAX_CHECKPOINT_BYTES
    card = (trained / "README.md").read_text()
    assert "Validation MAE" in card and train.HUB_ID in card
    config = json.loads((trained / "config.json").read_text())
    assert config["model_type"] == "time_moe" and config[CONFIG_KEY] == train.SCALING == "last-value-mad"
    assert TimeMoeModel("timemoe", str(trained)).info.input_scaling == "last-value-mad"


def test_library_loader_reads_it_and_generate_works(trained: Path) -> None:
    model = TimeMoeForPrediction.from_pretrained(str(trained), use_safetensors=True).eval()
    context = torch.randn(2, 128)
    with torch.inference_mode():
        out = model.generate(context.clone(), max_new_tokens=HORIZON)
    assert out.shape == (2, 128 + HORIZON) and torch.isfinite(out).all()


def test_adapter_forecasts_and_padding_never_changes_an_answer(trained: Path) -> None:
    model = TimeMoeModel("timemoe", str(trained))
    contexts = _contexts()
    together = model.point_forecast(ModelBatch(contexts=contexts, horizon=HORIZON, interval_s=[1.0] * 4))
    assert together.shape == (4, HORIZON) and np.isfinite(together).all()
    for row, context in zip(together, contexts, strict=True):
        alone = model.point_forecast(ModelBatch(contexts=[context], horizon=HORIZON, interval_s=[1.0]))
        np.testing.assert_allclose(row, alone[0], rtol=1e-4, atol=1e-4)


def test_spec_uses_the_shared_kit_with_scaled_crops_and_its_own_validation_clocks() -> None:
    from chronotick import training

    spec = train.SPECS["timemoe"]
    assert isinstance(spec, training.ModelSpec) and not spec.uses_covariates
    assert train.WINDOWS.relative and train.WINDOWS.scaling == "last-value-mad"
    assert train.WINDOWS.empty_context == "zero_last"
    val = train.validation_windows(0, 2, train.WINDOWS)
    assert val.past.shape == (2 * training.VAL_CROPS_PER_SERIES, train.CONTEXT) and val.cov_past is None
    assert not val.past.isnan().all(dim=1).any()
    assert val.scale_us is not None and bool((val.scale_us > 0).all())


def test_loss_reads_a_scaled_batch_as_it_is_and_masks_missing_targets() -> None:
    """The loss reads the batch as the kit's units (no scaling of its own) and masks missing targets."""
    from chronotick import training

    torch.manual_seed(0)
    model = train.build_model()
    pools = training.make_pools(0, 4, train.WINDOWS, covariates=False)
    batch = pools.univariate.sample(np.random.default_rng(0), 4, train.WINDOWS, augment=True)
    loss = train.mae_loss(model, batch).detach()
    assert torch.isfinite(loss) and float(loss) > 0
    hidden = training.Batch(batch.past, torch.full_like(batch.future, torch.nan), scale_us=batch.scale_us)
    # Only the context's own tail is scored then (its positions forecast context samples): still finite.
    assert torch.isfinite(train.mae_loss(model, hidden).detach())
