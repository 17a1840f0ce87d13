"""The training command writes checkpoints that the libraries' real loaders accept and that forecast sanely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("chronos")
pytest.importorskip("timesfm")

import torch
from chronos import BaseChronosPipeline

from chronotick import training
from chronotick.kit.scaling import scale_context, scale_windows
from chronotick_chronos import train
from chronotick_chronos.timesfm_loader import load_timesfm_2p5

slow = pytest.mark.slow  # trains three models for a few steps each (~30 s on 2 cores)

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


@slow
@pytest.mark.parametrize("name", list(train.SPECS))
def test_checkpoint_is_small_safetensors_with_card(trained: Path, name: str) -> None:
    model_dir = trained / train.SPECS[name].dir_name
    files = {f.name for f in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "README.md"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert sum(f.stat().st_size for f in model_dir.iterdir()) <= MAX_CHECKPOINT_BYTES
    card = (model_dir / "README.md").read_text()
    assert "Validation MAE" in card and train.SPECS[name].hub_id in card


@slow
def test_chronos_bolt_loads_and_forecasts(trained: Path) -> None:
    pipe = BaseChronosPipeline.from_pretrained(str(trained / "chronos-bolt-micro"), device_map="cpu")
    quantiles, mean = pipe.predict_quantiles(
        torch.tensor(_context(), dtype=torch.float32), prediction_length=HORIZON, quantile_levels=[0.1, 0.5, 0.9]
    )
    assert quantiles.shape == (3, HORIZON, 3) and mean.shape == (3, HORIZON)
    assert torch.isfinite(quantiles).all() and torch.isfinite(mean).all()


@slow
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


@slow
def test_timesfm_loads_and_forecasts(trained: Path) -> None:
    model = load_timesfm_2p5(str(trained / "timesfm-2.5-micro"), max_context=train.CONTEXT, max_horizon=HORIZON)
    steps = [scale_context(row, "first-differences")[0] for row in _context()]
    point, quantiles = model.forecast(horizon=HORIZON, inputs=steps)
    assert point.shape == (3, HORIZON) and quantiles.shape == (3, HORIZON, 10)
    assert np.isfinite(point).all() and np.isfinite(quantiles).all()
    np.testing.assert_allclose(point, quantiles[..., 5])  # the point forecast is the median column


@slow
def test_timesfm_answers_steps_that_the_kit_sums_into_offsets(trained: Path) -> None:
    """The checkpoint says it is trained on first differences; through the kit its answer follows any shift and
    positive scale of the clock's offsets (the kit scales and sums; TimesFM's own normalisation sees steps), and it
    is the running sum of the steps the library answers, in microseconds."""
    from chronotick.contract import PredictRequest
    from chronotick.kit.series import prepare_request, to_series_forecasts
    from chronotick_chronos.timesfm_model import TimesFmModel

    model = TimesFmModel("timesfm-2.5", str(trained / "timesfm-2.5-micro"))
    assert model.info.input_scaling == "first-differences"
    offsets = np.cumsum(np.random.default_rng(1).normal(0.2, 0.3, 300))

    def answer(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        request = PredictRequest.model_validate(
            {
                "series": [{"offsets_us": values.tolist(), "interval_s": 1.0}],
                "horizon": 20,
                "quantile_levels": [0.1, 0.5, 0.9],
            }
        )
        prepared = prepare_request(request, model.info)
        series = to_series_forecasts(request, prepared, model.forecast(prepared.batch))[0]
        return np.array(series.mean_us), np.array(series.quantiles_us)

    mean, quantiles = answer(offsets)
    scaled_mean, scaled_quantiles = answer(7.0 * offsets - 1234.5)
    np.testing.assert_allclose(scaled_mean, 7.0 * mean - 1234.5, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(scaled_quantiles, 7.0 * quantiles - 1234.5, rtol=1e-4, atol=1e-2)
    assert (np.diff(quantiles, axis=0) >= 0).all()  # summed quantile paths, sorted at every step
    steps, scale_us = scale_context(offsets - offsets[-1], "first-differences")
    library = load_timesfm_2p5(str(trained / "timesfm-2.5-micro"), max_context=train.CONTEXT, max_horizon=20)
    point, _ = library.forecast(horizon=20, inputs=[steps])
    np.testing.assert_allclose(mean, offsets[-1] + scale_us * np.cumsum(point[0]), rtol=1e-5, atol=1e-3)


# ---------------------------------------------------------------- the shared kit (chronotick.training), fast


def test_chronos_specs_use_the_shared_kit() -> None:
    assert all(isinstance(spec, training.ModelSpec) for spec in train.SPECS.values())
    # One crop length; the Chronos models share one pool and one validation set, TimesFM takes first differences.
    assert {name: spec.windows for name, spec in train.SPECS.items()} == {
        "chronos-bolt": train.KIT_WINDOWS,
        "chronos-2": train.KIT_WINDOWS,
        "timesfm-2.5": train.TIMESFM_WINDOWS,
    }
    assert train.KIT_WINDOWS.scaling == "last-value-mad" and train.KIT_WINDOWS.crop == train.WINDOWS.crop
    assert train.TIMESFM_WINDOWS.scaling == "first-differences" and train.TIMESFM_WINDOWS.crop == train.WINDOWS.crop
    assert train.WINDOWS.crop == train.CONTEXT + train.TIMESFM_HORIZON


def test_relative_subtracts_last_observed_value() -> None:
    past = np.array([[1.0, 2.0, np.nan], [np.nan, np.nan, np.nan]])
    future = np.array([[5.0], [7.0]])
    rel_past, rel_future = training.relative(past, future)
    np.testing.assert_array_equal(rel_past[0], [-1.0, 0.0, np.nan])
    np.testing.assert_array_equal(rel_future[:, 0], [3.0, 7.0])  # nothing observed: left as it is
    assert np.isnan(rel_past[1]).all()


def test_pool_sample_shapes_and_no_empty_contexts() -> None:
    windows = training.Windows(context=128, future=64, batch_size=8, series_len=256)
    pools = training.make_pools(0, 4, windows)
    rng = np.random.default_rng(0)
    uni = pools.univariate.sample(rng, 32, windows, augment=True)
    assert uni.past.shape[1] == 128 and uni.future.shape[1] == 64 and uni.cov_past is None
    assert not torch.isnan(uni.past).all(dim=1).any()
    assert (uni.past.nan_to_num(nan=1.0)[:, -1] == 0).all()  # relative to the last observed value
    cov = pools.covariate.sample(rng, 8, windows, augment=False)
    assert cov.cov_past is not None and cov.cov_future is not None
    assert cov.cov_past.shape == (len(cov.past), 2, 128) and cov.cov_future.shape == (len(cov.past), 2, 64)


def test_pinball_ignores_invalid_targets() -> None:
    levels = torch.tensor([0.1, 0.5, 0.9])
    target = torch.tensor([[1.0, 100.0]])
    pred = torch.ones(1, 2, 3)
    valid = torch.tensor([[True, False]])
    assert training.pinball(pred, target, levels, valid).item() == 0.0


def test_lr_schedule_warms_up_then_decays_to_zero() -> None:
    assert training.lr_at(0.0) == 0.0
    assert training.lr_at(0.03) == pytest.approx(1e-3)
    assert training.lr_at(1.0, peak=2e-3) == pytest.approx(0.0, abs=1e-12)


def test_windows_reject_crops_the_sampler_cannot_cut() -> None:
    with pytest.raises(ValueError):
        training.Windows(context=64, future=64)  # no room for a short history of >= 64 steps
    with pytest.raises(ValueError):
        training.Windows(context=512, future=30)  # validation scores up to h=60
    with pytest.raises(ValueError):
        training.Windows(context=512, future=128, series_len=600)


@slow
@pytest.mark.parametrize("name", ["chronos-bolt", "chronos-2"])
def test_kit_scaled_checkpoints_bypass_the_library_instance_norm(trained: Path, name: str) -> None:
    """A last-value-mad checkpoint says so, loads with the norm that keeps the kit's units, and its answer through the
    kit follows any shift and positive scale of the clock's offsets exactly (the kit scales, the model does not)."""
    from chronotick.contract import PredictRequest
    from chronotick.kit.series import prepare_request, to_series_forecasts
    from chronotick_chronos.pipelines import ChronosPipelineModel
    from chronotick_chronos.scaling import KitUnitsNorm

    model = ChronosPipelineModel(name, str(trained / train.SPECS[name].dir_name))
    assert model.info.input_scaling == "last-value-mad"
    assert isinstance(model._pipeline.model.instance_norm, KitUnitsNorm)
    offsets = np.cumsum(np.random.default_rng(1).normal(0, 0.3, 300))

    def answer(values: np.ndarray) -> np.ndarray:
        request = PredictRequest.model_validate(
            {"series": [{"offsets_us": values.tolist(), "interval_s": 1.0}], "horizon": 20}
        )
        prepared = prepare_request(request, model.info)
        return np.array(to_series_forecasts(request, prepared, model.forecast(prepared.batch))[0].mean_us)

    np.testing.assert_allclose(answer(7.0 * offsets - 1234.5), 7.0 * answer(offsets) - 1234.5, rtol=1e-5, atol=1e-3)
    # Handed to the network without the kit's scaling, the same weights are not scale-equivariant: the norm is gone.
    with torch.inference_mode():
        raw = [
            model._pipeline.predict([torch.tensor(v - v[-1], dtype=torch.float32)], prediction_length=20)
            for v in (offsets, 7.0 * offsets)
        ]
    median = [
        np.asarray(r[0] if isinstance(r, list) else r)[..., len(model.info.native_quantile_levels) // 2, :] for r in raw
    ]
    assert not np.allclose(median[1].ravel(), 7.0 * median[0].ravel(), rtol=1e-3, atol=1e-3)


def test_a_released_chronos_config_keeps_the_library_norm() -> None:
    from chronos.chronos_bolt import InstanceNorm

    from chronotick_chronos.scaling import KitUnitsNorm, adopt_input_scaling

    model = train.build_bolt()
    assert isinstance(model.instance_norm, KitUnitsNorm)
    model.config.chronotick_input_scaling = "anchored"
    released = type(model)(model.config)
    assert adopt_input_scaling(released) == "anchored"
    assert type(released.instance_norm) is InstanceNorm


def test_naive_weights_make_each_step_a_ratio_to_no_change() -> None:
    naive = torch.tensor([[0.1, 1.0, 2.0], [0.3, 1.0, 6.0]])
    weights = training.naive_weights(naive, torch.ones_like(naive, dtype=torch.bool))
    ratios = weights * naive.mean(0)
    assert torch.allclose(ratios, ratios[0].expand(3)) and torch.isclose(weights.mean(), torch.tensor(1.0))


def test_the_timesfm_loss_scores_summed_steps_against_the_offsets_they_lead_to() -> None:
    """A model whose every answered step is the context's mean step (its normalised 0: it carries the drift on)
    is scored as the sums of those steps miss the future offsets: a clock that keeps its drift exactly is forecast
    without error (loss 0), one that steps after it is missed at every later step."""
    torch.manual_seed(0)
    module = train.build_timesfm()
    drift = 0.7
    levels = drift * np.arange(-train.CONTEXT + 1, train.TIMESFM_HORIZON + 1, dtype=float)[None, :]
    past, future, _ = scale_windows(levels[:, : train.CONTEXT], levels[:, train.CONTEXT :], "first-differences")
    batch = training.Batch(torch.tensor(past, dtype=torch.float32), torch.tensor(future, dtype=torch.float32))

    def zero_answers(
        normed: torch.Tensor, masks: torch.Tensor
    ) -> tuple[tuple[None, None, torch.Tensor, torch.Tensor], None]:
        b, n = normed.shape[:2]
        return (None, None, torch.zeros(b, n, module.o * module.q), torch.zeros(b, n, module.os * module.q)), None

    module.forward = zero_answers  # type: ignore[method-assign]
    assert float(train.timesfm_loss(module, batch)) < 0.05
    future_off = batch.future.clone()
    future_off[:, 5:] += 50.0  # the clock steps 50 units: the same answers now miss it at every later step
    assert float(train.timesfm_loss(module, training.Batch(batch.past, future_off))) > 1.0
