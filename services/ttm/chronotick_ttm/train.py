"""Train micro TinyTimeMixer models (univariate and with exogenous covariates) on synthetic clocks.

No model hub is reachable here, so granite-tsfm's own `TinyTimeMixerForPrediction` is built with small dimensions,
trained on the shared synthetic clock generator and saved with `save_pretrained` (safetensors); the service loads it
with `from_pretrained`, exactly as it would load the hub checkpoint named in each model card.

    python -m chronotick_ttm.train [--model ttm|ttm-exog|all] [--out DIR] [--minutes N] [--seed S] [--steps N]

`ttm-exog` starts from the `ttm` checkpoint in --out when there is one (with `all`, the one just trained), and
trains on covariate clocks only.

The loop, data, validation and model card are `chronotick.training`'s. Crops stay raw (`Windows(relative=False)`)
and are scaled exactly as the service scales them (`chronotick_ttm.ttm_model.model_inputs`): relative to the last
observed context value, divided by the context's mean absolute first difference; the loss is the MAE of the point
forecast in those units (the NOTES' probe: this transferred to real clocks, std scaling and MSE did not).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from chronotick import training
from chronotick.kit import ModelBatch
from chronotick.training import Batch, ModelSpec, Windows, save_pretrained
from tsfm_public.models.tinytimemixer import TinyTimeMixerConfig, TinyTimeMixerForPrediction

from chronotick_ttm.settings import BUNDLED_CHECKPOINTS
from chronotick_ttm.ttm_model import CLIP, COVARIATES, TtmModel, model_inputs, scale_offsets

CONTEXT = 512
PREDICTION = 96
HUB_ID = "ibm-granite/granite-timeseries-ttm-r2"
# Raw crops (the loss scales them as the service does), no future clipping (the scaled target is clipped at CLIP),
# empty contexts kept; covariate crops hide their future covariates with p 0.5 and all of them with p 0.15; one
# covariate clock per training series.
WINDOWS = Windows(
    context=CONTEXT, future=PREDICTION, batch_size=64, covariates=COVARIATES, relative=False, future_clip=None,
    empty_context="keep", hide_covariates=(0.5, 0.15), covariate_share=1,
)
# The NOTES' probe that transferred to real clocks (patch 32, d_model 128, 3 layers), ~0.4M parameters.
MICRO_DIMS = {
    "context_length": CONTEXT, "prediction_length": PREDICTION, "patch_length": 32, "patch_stride": 32,
    "d_model": 128, "num_layers": 3, "decoder_d_model": 64, "decoder_num_layers": 2,
    "adaptive_patching_levels": 0, "dropout": 0.1, "head_dropout": 0.1,
    "scaling": None,  # the service scales (see ttm_model); the model must not re-scale by std
    "loss": "mae",
}
# IBM's exogenous recipe: the decoder mixes channels (so the covariates' past reaches the offset's forecast) and the
# forecast-channel-mixing head reads the covariates' known future.
EXOG_DIMS = {
    "num_input_channels": 1 + len(COVARIATES), "prediction_channel_indices": [0],
    "exogenous_channel_indices": list(range(1, 1 + len(COVARIATES))), "enable_forecast_channel_mixing": True,
    "decoder_mode": "mix_channel", "fcm_context_length": 1, "fcm_prepend_past": True,
}
_NEW_IN_EXOG = ("fcm_block", "channel_feature_mixer")  # weights a univariate checkpoint does not have


def build_ttm() -> TinyTimeMixerForPrediction:
    return TinyTimeMixerForPrediction(TinyTimeMixerConfig(**MICRO_DIMS))


def build_exog() -> TinyTimeMixerForPrediction:
    return TinyTimeMixerForPrediction(TinyTimeMixerConfig(**MICRO_DIMS, **EXOG_DIMS))


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.numpy().astype(np.float64)


def loss_on(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """MAE of the point forecast against the observed future, in the context's own scaled units."""
    past, future = batch.past.numpy().astype(np.float64), batch.future.numpy().astype(np.float64)
    _, _, last, scale = scale_offsets(past)
    target = np.clip((future - last[:, None]) / scale[:, None], -CLIP, CLIP)
    target_t = torch.tensor(target, dtype=torch.float32)
    valid = ~torch.isnan(target_t)
    inputs = model_inputs(past, _numpy(batch.cov_past), _numpy(batch.cov_future), PREDICTION)
    forecast = model(**inputs, return_loss=False).prediction_outputs[..., 0]
    error = torch.where(valid, forecast - torch.nan_to_num(target_t), 0.0).abs()
    return error.sum() / valid.sum().clamp(min=1)


def warm_start(model: torch.nn.Module, out_dir: Path) -> str | None:
    """Start an exogenous model from the univariate checkpoint in `out_dir`, if there is one (IBM's own recipe for
    exogenous TTM: fine-tune a univariate checkpoint). Every per-channel weight is shared across channels, so only
    the decoder's channel mixers and the forecast-channel-mixing head start from scratch."""
    univariate_dir = out_dir / BUNDLED_CHECKPOINTS["ttm"]
    if not (univariate_dir / "model.safetensors").exists():
        return None
    donor = TinyTimeMixerForPrediction.from_pretrained(str(univariate_dir), use_safetensors=True)
    missing, unexpected = model.load_state_dict(donor.state_dict(), strict=False)
    if unexpected or not all(any(part in key for part in _NEW_IN_EXOG) for key in missing):
        raise ValueError(f"{univariate_dir} does not fit: missing {missing}, unexpected {unexpected}")
    return (
        f"`{univariate_dir}` (every weight but the decoder's channel mixers and the channel-mixing head, which "
        "start from the seeded initialisation)."
    )


def load_ttm(model_id: str) -> TinyTimeMixerForPrediction:
    return TinyTimeMixerForPrediction.from_pretrained(model_id, use_safetensors=True)


def service_forecast(model_dir: Path, val: Batch, horizon: int, covariates: bool) -> np.ndarray:
    """The forecast the service would give: through `TtmModel`, on contexts made relative as the kit does."""
    model = TtmModel("validation", str(model_dir))
    past = val.past.numpy().astype(np.float64)
    last = scale_offsets(past)[2]
    contexts = list(past - last[:, None])
    pasts, futures = [], []
    if covariates and val.cov_past is not None and val.cov_future is not None:
        cov_past, cov_future = val.cov_past.numpy(), val.cov_future.numpy()
        pasts = [{k: cov_past[i, j] for j, k in enumerate(COVARIATES)} for i in range(len(contexts))]
        futures = [{k: cov_future[i, j, :horizon] for j, k in enumerate(COVARIATES)} for i in range(len(contexts))]
    batch = ModelBatch(contexts, horizon, [1.0] * len(contexts), pasts, futures)
    return model.point_forecast(batch) + last[:, None]


_LOAD = "TinyTimeMixerForPrediction.from_pretrained(dir_or_hub_id, use_safetensors=True)"
_ABOUT = (
    "It is a point forecaster: the service adds a spread from its residuals on rolling origins of each context "
    "(`chronotick.kit.spread.ResidualSpread`); its inputs and scaling are in `chronotick_ttm.ttm_model`."
)
_INPUTS = (
    "- Inputs: each context (512 steps, NaN where missing) is filled forward (leading gaps and short histories take "
    "the first observation, marked unobserved), made relative to its last observed value and divided by its mean "
    f"absolute first difference (floor 1e-3 us), clipped at +-{CLIP:g}; the config has `scaling: null` so the model "
    "sees exactly that. The forecast is multiplied back and the last value added.",
    f"- Exogenous channels (ttm-exog): {', '.join(COVARIATES)}, each as its change since its last past value in fixed "
    "physical units (1 degC, 0.25 load); a future that is not known holds 0.",
)
_LOSS = (
    f"MAE of the point forecast over the 96 steps, in the context's scaled units (targets clipped at +-{CLIP:g}), "
    "missing targets masked."
)

TTM = ModelSpec(
    name="ttm",
    dir_name=BUNDLED_CHECKPOINTS["ttm"],
    hub_id=HUB_ID,
    windows=WINDOWS,
    build=build_ttm,
    loss=loss_on,
    save=save_pretrained,
    forecast=service_forecast,
    load=load_ttm,
    load_call=_LOAD,
    loss_description=_LOSS,
    forecast_kind="point",
    peak_lr=2e-3,
    about=_ABOUT + " Service call: `TtmModel('ttm', dir).point_forecast(ModelBatch(contexts, 60, intervals))`.",
    real_weights=f"set `CHRONOTICK_TTM_MODEL_ID={HUB_ID}` (its `main` revision is the 512-96 model; "
    "`CHRONOTICK_TTM_MODEL_REVISION` picks another branch). Needs the Hugging Face hub.",
    card_notes=_INPUTS,
)
# The same recipe, on covariate clocks only (full batches), warm-started from the univariate checkpoint.
TTM_EXOG = dataclasses.replace(
    TTM,
    name="ttm-exog",
    dir_name=BUNDLED_CHECKPOINTS["ttm-exog"],
    build=build_exog,
    uses_covariates=True,
    covariate_schedule="always",
    covariate_batch_size=WINDOWS.batch_size,
    covariate_note="every batch is covariate tasks.",
    covariate_label="covariates (past and future)",
    warm_start=warm_start,
    load=None,  # its loss needs covariate crops, and a clock log's columns are not the synthetic covariates
    about=_ABOUT + " Service call: `TtmModel('ttm-exog', dir).point_forecast(ModelBatch(contexts, 60, intervals, "
    "past_covariates, future_covariates))`.",
    real_weights=f"TTM has no released exogenous checkpoint: load `{HUB_ID}` with "
    "`num_input_channels=3, prediction_channel_indices=[0], exogenous_channel_indices=[1, 2], "
    'enable_forecast_channel_mixing=True, decoder_mode="mix_channel"` (as here: only the decoder\'s channel '
    "mixers and the channel-mixing head are new), fine-tune it, and point `CHRONOTICK_TTM_EXOG_MODEL_ID` at "
    "the saved directory.",
)
SPECS: dict[str, ModelSpec] = {"ttm": TTM, "ttm-exog": TTM_EXOG}


def main(argv: Sequence[str] | None = None) -> None:
    training.main(
        SPECS,
        argv,
        default_out=Path("services/ttm/models"),
        description=__doc__ or "",
        command_prefix="PYTHONPATH=shared:services/ttm python -m chronotick_ttm.train",
        default_minutes=3.0,
        default_series=512,
        default_val_series=48,
    )


if __name__ == "__main__":
    main()
