"""The ttm adapter leaves the input scaling to the kit (chronotick.kit.scaling) and fills only what the model needs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tsfm_public")

from tsfm_public.models.tinytimemixer import TinyTimeMixerConfig, TinyTimeMixerForPrediction

from chronotick.kit import ModelBatch
from chronotick.kit.scaling import CONFIG_KEY, covariate_changes, fill_forward, scale_context
from chronotick_ttm.settings import TtmSettings
from chronotick_ttm.ttm_model import COVARIATES, TtmModel, model_inputs

nan = np.nan


def test_gaps_carry_the_last_observation_and_leading_gaps_take_the_first() -> None:
    filled, observed = fill_forward(np.array([[nan, nan, 3.0, nan, 5.0, nan], [nan] * 6]))
    np.testing.assert_array_equal(filled, [[3.0, 3.0, 3.0, 3.0, 5.0, 5.0], [0.0] * 6])
    np.testing.assert_array_equal(observed[0], [False, False, True, False, True, False])


def test_contexts_reach_the_model_as_the_kit_hands_them_only_filled() -> None:
    context = np.array([nan, -4.0, -3.0, nan, -1.0, 0.0])  # kit-scaled: relative, in mean absolute steps
    inputs = model_inputs(context[None, :], None, None, 4)
    np.testing.assert_array_equal(inputs["past_values"][0, :, 0].numpy(), [-4.0, -4.0, -3.0, -3.0, -1.0, 0.0])
    np.testing.assert_array_equal(inputs["past_observed_mask"][0, :, 0].numpy(), ~np.isnan(context))


def test_covariates_are_the_kits_changes_and_an_unknown_future_holds() -> None:
    past = np.array([[[20.0, 21.0, 22.0], [0.1, nan, 0.5]]])
    future = np.array([[[23.0, nan, nan, nan], [nan, nan, nan, nan]]])
    inputs = model_inputs(np.array([[1.0, nan, 0.0]]), past, future, 4)
    changes, _ = covariate_changes(list(COVARIATES), past, future)
    np.testing.assert_allclose(inputs["past_values"][0, :, 1:].numpy().T, changes[0], rtol=1e-6)
    np.testing.assert_allclose(changes[0], [[-2.0, -1.0, 0.0], [-1.6, -1.6, 0.0]])
    np.testing.assert_allclose(inputs["future_values"][0].numpy().T, [[0.0] * 4, [1.0, 0, 0, 0], [0.0] * 4])


@pytest.mark.parametrize("name", ["ttm", "ttm-exog"])
def test_bundled_checkpoints_ask_the_kit_for_last_value_mad(name: str) -> None:
    assert TtmModel(name, TtmSettings().checkpoint(name)).info.input_scaling == "last-value-mad"


def _tiny_checkpoint(path: Path, **config: object) -> Path:
    dims = {
        "context_length": 64,
        "prediction_length": 16,
        "patch_length": 8,
        "patch_stride": 8,
        "d_model": 16,
        "num_layers": 1,
        "decoder_d_model": 16,
        "decoder_num_layers": 1,
        "adaptive_patching_levels": 0,
    }
    TinyTimeMixerForPrediction(TinyTimeMixerConfig(**dims, **config)).save_pretrained(str(path))
    return path


def test_a_released_style_checkpoint_stays_anchored_and_scales_itself(tmp_path: Path) -> None:
    model = TtmModel("released", str(_tiny_checkpoint(tmp_path / "released", scaling="std")))
    assert model.info.input_scaling == "anchored"
    context = np.cumsum(np.random.default_rng(0).normal(0, 5, 64))
    context -= context[-1]
    # Its std scaler inside: the same context in other units gives the same forecast in those units.
    small = model.point_forecast(ModelBatch([context], 10, [1.0]))
    large = model.point_forecast(ModelBatch([context * 100.0], 10, [1.0]))
    np.testing.assert_allclose(large, small * 100.0, rtol=1e-3, atol=1e-3)


def test_a_last_value_mad_checkpoint_gets_kit_scaled_contexts_through_unchanged(tmp_path: Path) -> None:
    model_dir = _tiny_checkpoint(tmp_path / "ours", scaling=None, **{CONFIG_KEY: "last-value-mad"})
    assert json.loads((model_dir / "config.json").read_text())[CONFIG_KEY] == "last-value-mad"
    model = TtmModel("ours", str(model_dir))
    assert model.info.input_scaling == "last-value-mad"
    rng = np.random.default_rng(1)
    context = np.cumsum(rng.normal(0, 5, 64))
    context -= context[-1]
    scaled, _ = scale_context(context, model.info.input_scaling)
    # The adapter neither re-anchors nor re-scales: its answer is the library's own on exactly that input.
    library = TinyTimeMixerForPrediction.from_pretrained(str(model_dir), use_safetensors=True).eval()
    inputs = model_inputs(scaled[None, :], None, None, 16)
    expected = library(**inputs, return_loss=False).prediction_outputs[0, :10, 0].detach().numpy()
    np.testing.assert_allclose(model.point_forecast(ModelBatch([scaled], 10, [1.0]))[0], expected, rtol=1e-5)
    assert np.abs(inputs["past_values"].numpy()).max() == pytest.approx(np.abs(scaled).max(), rel=1e-6)
