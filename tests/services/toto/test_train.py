"""The training command writes a checkpoint that Toto's real loader accepts and that forecasts sanely."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("toto")

import torch
from toto.data.util.dataset import MaskedTimeseries
from toto.inference.forecaster import TotoForecaster
from toto.model.toto import Toto

from chronotick.contract import PredictRequest
from chronotick.kit import BatchForecast, ModelBatch
from chronotick.kit.scaling import CONFIG_KEY
from chronotick.kit.series import prepare_request, to_series_forecasts
from chronotick_toto import train
from chronotick_toto.toto_model import IdentityScaler, TotoModel, load_toto

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
    assert json.loads((trained / "config.json").read_text()) == {**train.CONFIG, CONFIG_KEY: "last-value-mad"}
    assert "last-value-mad" in card and "horizon_weights" in card


def test_the_library_loader_reads_it_and_forecasts(trained: Path) -> None:
    # Toto's constructor takes no unknown key: the library loader gets the weights file and the config less ours.
    config = json.loads((trained / "config.json").read_text())
    del config[CONFIG_KEY]
    model = Toto.load_from_checkpoint(str(trained / "model.safetensors"), map_location="cpu", **config)
    series = torch.tensor(np.nan_to_num(np.stack(_contexts())), dtype=torch.float32)[:, None, :]
    inputs = MaskedTimeseries(
        series=series,
        padding_mask=torch.ones_like(series, dtype=torch.bool),
        id_mask=torch.zeros_like(series, dtype=torch.int),
        timestamp_seconds=torch.arange(train.CONTEXT).expand(3, 1, -1),
        time_interval_seconds=torch.ones((3, 1), dtype=torch.int),
    )
    forecast = TotoForecaster(model.model).forecast(
        inputs, prediction_length=HORIZON, num_samples=8, samples_per_batch=8
    )
    assert forecast.samples is not None and forecast.samples.shape == (3, 1, HORIZON, 8)
    assert torch.isfinite(forecast.samples).all()


def test_the_service_adapter_forecasts_with_and_without_covariates(trained: Path) -> None:
    model = TotoModel("toto", str(trained), num_samples=16)
    contexts = _contexts()
    past = [{"cpu_load": np.linspace(0, 1, train.CONTEXT), "temperature_c": np.full(train.CONTEXT, 40.0)}] * 3
    future = [{"cpu_load": np.full(HORIZON, 0.5)}] * 3
    for batch in (
        ModelBatch(contexts=contexts, horizon=HORIZON, interval_s=[1.0] * 3),
        ModelBatch(
            contexts=contexts, horizon=HORIZON, interval_s=[1.0] * 3, past_covariates=past, future_covariates=future
        ),
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
    assert batch.scale_us is not None and train.WINDOWS.scaling == "last-value-mad"
    raw = train.variates(batch, "anchored")
    assert raw.shape == (64, 1 + len(train.COVARIATES), train.CONTEXT + train.PATCH)
    short = np.isnan(raw[:, 1:, 0]).all(axis=1)  # covariates are never missing on their own
    assert short.any() and np.isnan(raw[short, 0, 0]).all()
    # What a last-value-mad model sees: the scaled offset, covariates as changes since their last past value.
    values = train.variates(batch)
    np.testing.assert_allclose(batch.in_us(values[:, 0]), raw[:, 0], rtol=1e-5, atol=1e-6)
    assert not np.isnan(values[:, 1:, : train.CONTEXT]).any()
    np.testing.assert_array_equal(values[:, 1:, train.CONTEXT - 1], 0.0)


def test_horizon_weights_follow_each_target_steps_distance_from_its_patch() -> None:
    from chronotick import training

    assert train.STEP_WEIGHTS.shape == (train.CONTEXT,)
    torch.testing.assert_close(train.STEP_WEIGHTS[: train.PATCH], training.horizon_weights(train.PATCH))
    torch.testing.assert_close(train.STEP_WEIGHTS[train.PATCH :], train.STEP_WEIGHTS[: -train.PATCH])


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly built (untrained) model saved by the training command's own save: a last-value-mad checkpoint."""
    out = tmp_path_factory.mktemp("fresh")
    torch.manual_seed(0)
    model = train.build()
    assert isinstance(model.model.scaler, IdentityScaler)
    train.save(model, out)
    return out


@pytest.fixture(scope="module")
def fresh_anchored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights with the library's own scaler: `save` writes no key (as for a tuned released checkpoint)."""
    out = tmp_path_factory.mktemp("anchored")
    torch.manual_seed(0)
    train.save(Toto(**train.CONFIG), out)  # type: ignore[arg-type]
    assert json.loads((out / "config.json").read_text()) == train.CONFIG
    return out


def _request(offsets: np.ndarray, horizon: int, warmer: float = 0.0) -> PredictRequest:
    temperature = 40 + warmer + np.sin(np.arange(offsets.size) / 40)
    covariates = {
        "temperature_c": {"past": list(temperature), "future": [41.0 + warmer] * horizon},
        "cpu_load": {"past": list(np.linspace(0.2, 0.6, offsets.size))},
    }
    return PredictRequest.model_validate(
        {"series": [{"offsets_us": list(offsets), "interval_s": 1.0, "covariates": covariates}], "horizon": horizon}
    )


def test_a_last_value_mad_checkpoint_bypasses_the_library_scaler(fresh: Path, fresh_anchored: Path) -> None:
    assert json.loads((fresh / "config.json").read_text())[CONFIG_KEY] == "last-value-mad"
    model = TotoModel("toto", str(fresh), num_samples=16)
    assert model.info.input_scaling == "last-value-mad"
    assert isinstance(load_toto(str(fresh)).model.scaler, IdentityScaler)
    # The backbone de-normalises with the identity: loc 0, scale 1 wherever the inputs are.
    inputs = torch.tensor(np.stack(_contexts()), dtype=torch.float32)[:, None].nan_to_num()
    out = load_toto(str(fresh)).model(
        inputs, torch.ones_like(inputs, dtype=torch.bool), torch.zeros_like(inputs, dtype=torch.int)
    )
    assert torch.equal(out.loc, torch.zeros_like(inputs)) and torch.equal(out.scale, torch.ones_like(inputs))
    # Through the kit, a context shifted by a constant and scaled reaches the model unchanged (two horizons: one
    # patch, and autoregressive with a known future covariate), so the forecast maps exactly; covariates reach it as
    # changes, so a warmer room throughout changes nothing either.
    context = np.cumsum(np.random.default_rng(1).normal(0, 0.3, train.CONTEXT))
    for horizon in (20, 100):
        means = []
        for a, b, warmer in ((1.0, 0.0, 0.0), (7.0, -1234.5, 0.0), (1.0, 0.0, 5.0)):
            request = _request(a * context + b, horizon, warmer)
            prepared = prepare_request(request, model.info)
            (forecast,) = to_series_forecasts(request, prepared, model.forecast(prepared.batch))
            means.append((np.asarray(forecast.mean_us) - b) / a)
        np.testing.assert_allclose(means[1], means[0], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(means[2], means[0], rtol=1e-6, atol=1e-9)
    # Handed to the model directly, the same context in other units gets another answer (no scaler standardises it
    # away), while the same weights under the library's causal scaler answer scale-equivariantly (a context of some
    # tens of us: its minimum scale, 0.1, no longer counts).
    anchored = TotoModel("toto", str(fresh_anchored), num_samples=16)
    assert anchored.info.input_scaling == "anchored"
    relative = context - context[-1]
    errors = []
    for candidate in (model, anchored):
        one, three = (
            _median(candidate.forecast(ModelBatch(contexts=[k * 10 * relative], horizon=20, interval_s=[1.0])))
            for k in (1.0, 3.0)
        )
        errors.append(np.abs(three - 3 * one).max() / np.abs(3 * one).max())
    assert errors[1] < 1e-3 and errors[0] > 0.1  # measured: 7e-5 and 0.6


def _median(forecast: BatchForecast) -> np.ndarray:
    return forecast.quantiles[:, int(np.argmin(np.abs(forecast.levels - 0.5)))]
