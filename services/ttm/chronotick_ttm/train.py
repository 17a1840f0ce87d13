"""Train micro TinyTimeMixer models (univariate and with exogenous covariates) on synthetic clocks.

No model hub is reachable here, so granite-tsfm's own `TinyTimeMixerForPrediction` is built with small dimensions,
trained on the shared synthetic clock generator and saved with `save_pretrained` (safetensors); the service loads it
with `from_pretrained`, exactly as it would load the hub checkpoint named in each model card.

    python -m chronotick_ttm.train [--model ttm|ttm-exog|all] [--out DIR] [--minutes N] [--seed S] [--steps N]

`ttm-exog` starts from the `ttm` checkpoint in --out when there is one (with `all`, the one just trained), and
trains on covariate clocks only.

The loop, data, validation and model card are `chronotick.training`'s. Crops are scaled by the trainer exactly as
the kit scales every request for these checkpoints (`Windows(relative=True, scaling="last-value-mad")`,
`chronotick.kit.scaling`): relative to the last observed context value, divided by the context's mean absolute step;
the saved config says `chronotick_input_scaling: last-value-mad` so the service does the same, and the adapter
(`chronotick_ttm.ttm_model.model_inputs`) only fills gaps. The loss is the MAE of the point forecast in those units,
each step weighted by the inverse of "no change"'s mean error there (`training.naive_weights`) so the far steps do not
drown the next seconds (the NOTES' probe: this scaling transferred to real clocks, std scaling and MSE did not).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tsfm_public.models.tinytimemixer import TinyTimeMixerConfig, TinyTimeMixerForPrediction

from chronotick import training
from chronotick.kit import ModelBatch
from chronotick.kit.scaling import CONFIG_KEY, INPUT_CLIP
from chronotick.training import Batch, ModelSpec, Windows, save_pretrained
from chronotick_ttm.settings import BUNDLED_CHECKPOINTS
from chronotick_ttm.ttm_model import COVARIATES, TtmModel, model_inputs

CONTEXT = 512
PREDICTION = 96
HUB_ID = "ibm-granite/granite-timeseries-ttm-r2"
SCALING = "last-value-mad"  # what the kit hands these checkpoints (chronotick.kit.scaling), written in their config
# Crops relative and scaled as the kit scales a request, no future clipping (the scaled target is clipped at
# INPUT_CLIP in the loss), empty contexts kept; covariate crops hide their future covariates with p 0.5 and all of
# them with p 0.15; one covariate clock per training series.
WINDOWS = Windows(
    context=CONTEXT,
    future=PREDICTION,
    batch_size=64,
    covariates=COVARIATES,
    relative=True,
    scaling=SCALING,
    future_clip=None,
    empty_context="keep",
    hide_covariates=(0.5, 0.15),
    covariate_share=1,
)
# The NOTES' probe that transferred to real clocks (patch 32, d_model 128, 3 layers), ~0.4M parameters.
MICRO_DIMS = {
    "context_length": CONTEXT,
    "prediction_length": PREDICTION,
    "patch_length": 32,
    "patch_stride": 32,
    "d_model": 128,
    "num_layers": 3,
    "decoder_d_model": 64,
    "decoder_num_layers": 2,
    "adaptive_patching_levels": 0,
    "dropout": 0.1,
    "head_dropout": 0.1,
    "scaling": None,  # the kit scales (chronotick.kit.scaling); the model must not re-scale by std
    "loss": "mae",
    CONFIG_KEY: SCALING,  # the service reads it (ModelInfo.input_scaling) and scales every context so
}
# IBM's exogenous recipe: the decoder mixes channels (so the covariates' past reaches the offset's forecast) and the
# forecast-channel-mixing head reads the covariates' known future.
EXOG_DIMS = {
    "num_input_channels": 1 + len(COVARIATES),
    "prediction_channel_indices": [0],
    "exogenous_channel_indices": list(range(1, 1 + len(COVARIATES))),
    "enable_forecast_channel_mixing": True,
    "decoder_mode": "mix_channel",
    "fcm_context_length": 1,
    "fcm_prepend_past": True,
}
_NEW_IN_EXOG = ("fcm_block", "channel_feature_mixer")  # weights a univariate checkpoint does not have


def build_ttm() -> TinyTimeMixerForPrediction:
    return TinyTimeMixerForPrediction(TinyTimeMixerConfig(**MICRO_DIMS))


def build_exog() -> TinyTimeMixerForPrediction:
    return TinyTimeMixerForPrediction(TinyTimeMixerConfig(**MICRO_DIMS, **EXOG_DIMS))


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.numpy().astype(np.float64)


def loss_on(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Horizon-weighted MAE of the point forecast against the observed future, in the batch's scaled units (the
    kit's `last-value-mad`); missing targets are masked."""
    past = batch.past.numpy().astype(np.float64)
    target = batch.future.clamp(-INPUT_CLIP, INPUT_CLIP)  # NaN stay NaN
    valid = ~torch.isnan(target)
    inputs = model_inputs(past, _numpy(batch.cov_past), _numpy(batch.cov_future), PREDICTION)
    forecast = model(**inputs, return_loss=False).prediction_outputs[..., 0]
    weights = training.naive_weights(torch.nan_to_num(target).abs(), valid).expand_as(target)
    error = torch.where(valid, (forecast - torch.nan_to_num(target)).abs() * weights, 0.0)
    return error.sum() / torch.where(valid, weights, 0.0).sum().clamp(min=1e-6)


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
    """A checkpoint to fine-tune: it is tuned on `WINDOWS`' crops, so what it saves asks the kit for the same
    scaling (a released checkpoint keeps its own std scaler inside, which the kit's affine scaling does not
    disturb)."""
    model = TinyTimeMixerForPrediction.from_pretrained(model_id, use_safetensors=True)
    setattr(model.config, CONFIG_KEY, SCALING)
    return model


def kit_contexts(val: Batch, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """(contexts as the kit hands them to a model with `scaling`, (B, 1) factor from its answers to the batch's
    units). The batch is already in the kit's `last-value-mad` units; an `anchored` model (a released checkpoint
    before fine-tuning) gets them back in microseconds."""
    past = val.past.numpy().astype(np.float64)
    if scaling == "last-value-mad":
        return past, np.ones((len(past), 1))
    return val.in_us(past), 1.0 / val.in_us(np.ones((len(past), 1)))


def service_forecast(model_dir: Path, val: Batch, horizon: int, covariates: bool) -> np.ndarray:
    """The forecast the service would give, in the batch's units: through `TtmModel`, on the contexts the kit would
    hand it."""
    model = TtmModel("validation", str(model_dir))
    past, to_batch_units = kit_contexts(val, model.info.input_scaling)
    contexts = list(past)
    pasts, futures = [], []
    if covariates and val.cov_past is not None and val.cov_future is not None:
        cov_past, cov_future = val.cov_past.numpy(), val.cov_future.numpy()
        pasts = [{k: cov_past[i, j] for j, k in enumerate(COVARIATES)} for i in range(len(contexts))]
        futures = [{k: cov_future[i, j, :horizon] for j, k in enumerate(COVARIATES)} for i in range(len(contexts))]
    batch = ModelBatch(contexts, horizon, [1.0] * len(contexts), pasts, futures)
    return model.point_forecast(batch) * to_batch_units


_LOAD = "TinyTimeMixerForPrediction.from_pretrained(dir_or_hub_id, use_safetensors=True)"
_ABOUT = (
    "It is a point forecaster: the service adds a spread from its residuals on rolling origins of each context "
    "(`chronotick.kit.spread.ResidualSpread`). The kit scales its inputs (`chronotick.kit.scaling`, `last-value-mad`) "
    "and maps its answers back; the adapter's filling is in `chronotick_ttm.ttm_model`."
)
_INPUTS = (
    "- Inputs: the config says `chronotick_input_scaling: last-value-mad`, so the service (`chronotick.kit.scaling`) "
    "hands each context (512 steps, NaN where missing) relative to its last observed value and divided by its mean "
    f"absolute step (floor 1e-3 us), clipped at +-{INPUT_CLIP:g}, and maps the forecast back; training crops were "
    "scaled by the same function. The adapter fills it forward (leading gaps and short histories take the first "
    "observation, marked unobserved); the config has `scaling: null` so the model sees exactly that.",
    f"- Exogenous channels (ttm-exog): {', '.join(COVARIATES)}, each as its change since its last past value in fixed "
    "physical units (1 degC, 0.25 load); a future that is not known holds 0.",
)
_LOSS = (
    f"MAE of the point forecast over the 96 steps, in the context's scaled units (targets clipped at "
    f'+-{INPUT_CLIP:g}), each step weighted by the inverse of the batch\'s mean error of "no change" there (mean 1, '
    "`training.naive_weights`), missing targets masked."
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
    about=_ABOUT + " Service call: `TtmModel('ttm', dir).point_forecast(ModelBatch(contexts, 60, intervals))`, "
    "contexts scaled as above (the kit does it).",
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
    "past_covariates, future_covariates))`, contexts scaled as above (the kit does it), covariates raw.",
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
