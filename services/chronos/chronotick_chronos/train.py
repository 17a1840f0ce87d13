"""Train micro Chronos-Bolt, Chronos-2 and TimesFM 2.5 models on synthetic clocks, in each library's own format.

No model hub is reachable here, so each family's real class is built with small dimensions, trained on the shared
synthetic clock generator and saved with the library's `save_pretrained`; the service loads it with the library's
real loader, exactly as it would load the hub checkpoint named in each model card.

    python -m chronotick_chronos.train [--model chronos-bolt|chronos-2|timesfm-2.5|all] [--out DIR]
                                       [--minutes N] [--seed S] [--steps N]

The loop, data, validation and model card are `chronotick.training`'s; each `ModelSpec` here says how to build,
score a batch (loss), save and forecast. Every window is made relative to its last observed context value, as the
service does before calling a model; Chronos-Bolt's and Chronos-2's windows are also in units of their context's mean
absolute step (`chronotick.kit.scaling`, written in their config), and their instance norm is bypassed
(`chronotick_chronos.scaling`), so what they learn is the motion of the next seconds, not the context's wander.
TimesFM normalises inside the network by running patch statistics that no config turns off, so it is given the
kit's first differences instead (the steps between samples, whose spread is then its unit) and answers steps, which
the kit sums back into offsets (its loss scores those sums).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from chronos import BaseChronosPipeline, Chronos2Pipeline, ChronosBoltPipeline
from chronos.chronos2 import Chronos2CoreConfig, Chronos2Model
from chronos.chronos_bolt import ChronosBoltModelForForecasting
from timesfm.timesfm_2p5.timesfm_2p5_base import (
    linear_interpolation,
    strip_leading_nans,
)
from timesfm.torch.util import revin, update_running_stats
from transformers import T5Config

from chronotick import training
from chronotick.contract import InputScaling
from chronotick.kit import ForecastModel, ModelBatch
from chronotick.kit.scaling import CONFIG_KEY, as_offsets, covariate_changes
from chronotick.training import Batch, ModelSpec, Windows, naive_weights, pinball, save_pretrained
from chronotick_chronos.pipelines import ChronosPipelineModel
from chronotick_chronos.scaling import adopt_input_scaling
from chronotick_chronos.timesfm_loader import (
    HUB_ID as TIMESFM_HUB_ID,
)
from chronotick_chronos.timesfm_loader import (
    QUANTILE_COLUMNS,
    MicroDims,
    MicroModule,
    build_micro,
)
from chronotick_chronos.timesfm_model import TimesFmModel

CONTEXT = 512
CHRONOS_HORIZON = 64  # Chronos-Bolt's and Chronos-2's one-shot horizon (4 patches of 16)
TIMESFM_HORIZON = 128  # TimesFM's output patch: every position predicts 128 steps
# One crop length serves all three models; Chronos-Bolt and Chronos-2 share the kit-scaled pool and validation set.
WINDOWS = Windows(context=CONTEXT, future=TIMESFM_HORIZON, batch_size=64, covariates=("temperature_c", "cpu_load"))
KIT_WINDOWS = dataclasses.replace(WINDOWS, scaling="last-value-mad")
COVARIATES = WINDOWS.covariates
BOLT_QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
# The 21-level grid of the released Chronos-2 checkpoints, so the service's quantile code is the same for both.
CHRONOS2_QUANTILES = [0.01, 0.05, *[round(0.1 + 0.05 * i, 2) for i in range(17)], 0.95, 0.99]


# ---------------------------------------------------------------- Chronos-Bolt


def build_bolt() -> ChronosBoltModelForForecasting:
    # from_dict: the Chronos keys are extra attributes that T5Config's typed signature does not declare.
    config = T5Config.from_dict(
        {
            "d_model": 128,
            "d_kv": 32,
            "d_ff": 256,
            "num_layers": 2,
            "num_decoder_layers": 2,
            "num_heads": 4,
            "dropout_rate": 0.0,
            "feed_forward_proj": "relu",
            "initializer_factor": 0.05,  # as released Bolt
            "vocab_size": 2,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "decoder_start_token_id": 0,
            "is_encoder_decoder": True,
            "architectures": ["ChronosBoltModelForForecasting"],
            "chronos_pipeline_class": "ChronosBoltPipeline",
            "chronos_config": {
                "context_length": CONTEXT,
                "prediction_length": CHRONOS_HORIZON,
                "input_patch_size": 16,
                "input_patch_stride": 16,
                "quantiles": BOLT_QUANTILES,
                "use_reg_token": True,
            },
            CONFIG_KEY: "last-value-mad",
        }
    )
    model = ChronosBoltModelForForecasting(config)
    adopt_input_scaling(model)
    return model


def bolt_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The library's quantile loss (twice the pinball loss, averaged over quantiles and steps), each step weighted as a
    ratio to "no change" (`naive_weights`; in the kit's units "no change" is 0), the instance norm being bypassed."""
    target = batch.future[:, :CHRONOS_HORIZON]
    preds = model(context=batch.past).quantile_preds.transpose(1, 2)  # (B, steps, quantiles)
    levels = torch.tensor(BOLT_QUANTILES)
    valid = ~torch.isnan(target)
    return 2 * pinball(preds, target, levels, valid, naive_weights(torch.nan_to_num(target).abs(), valid))


def load_bolt(model_id: str) -> ChronosBoltModelForForecasting:
    pipe = BaseChronosPipeline.from_pretrained(model_id, device_map="cpu")
    assert isinstance(pipe, ChronosBoltPipeline)
    adopt_input_scaling(pipe.model)
    return pipe.model


def adapter_median(
    model: ForecastModel,
    val: Batch,
    horizon: int,
    pasts: list[dict[str, np.ndarray]] | None = None,
    futures: list[dict[str, np.ndarray]] | None = None,
) -> np.ndarray:
    """The median of a service's own adapter on the batch's contexts as the kit hands them over, as offsets in the
    batch's units (answered steps summed, as the kit does in service: `as_offsets`)."""
    contexts = [row.numpy().astype(np.float64) for row in val.past]
    answer = model.forecast(ModelBatch(contexts, horizon, [1.0] * len(contexts), pasts or [], futures or []))
    return as_offsets(answer, model.info.input_scaling).mean


def service_forecast(model_dir: Path, val: Batch, horizon: int, covariates: bool) -> np.ndarray:
    """The median through the Chronos adapter, with the batch's covariates when asked."""
    model = ChronosPipelineModel("validation", str(model_dir))
    if not (covariates and val.cov_past is not None and val.cov_future is not None):
        return adapter_median(model, val, horizon)
    cov_past, cov_future = val.cov_past.numpy(), val.cov_future.numpy()
    pasts = [{k: cov_past[i, j] for j, k in enumerate(COVARIATES)} for i in range(len(val.past))]
    futures = [{k: cov_future[i, j, :horizon] for j, k in enumerate(COVARIATES)} for i in range(len(val.past))]
    return adapter_median(model, val, horizon, pasts, futures)


# ---------------------------------------------------------------- Chronos-2


def build_chronos2() -> Chronos2Model:
    config = Chronos2CoreConfig(
        d_model=128,
        d_kv=32,
        d_ff=256,
        num_layers=3,
        num_heads=4,
        dropout_rate=0.0,
        architectures=["Chronos2Model"],
        chronos_pipeline_class="Chronos2Pipeline",
        chronos_config={
            "context_length": CONTEXT,
            "input_patch_size": 16,
            "input_patch_stride": 16,
            "output_patch_size": 16,
            "max_output_patches": CHRONOS_HORIZON // 16,
            "quantiles": CHRONOS2_QUANTILES,
            "use_reg_token": True,
            "use_arcsinh": True,
        },
        **{CONFIG_KEY: "last-value-mad"},
    )
    model = Chronos2Model(config)
    adopt_input_scaling(model)
    return model


def chronos2_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Rows laid out as the library's training dataset does: each task is a group [target, covariates...].

    Covariate rows carry their changes since their last past value (`covariate_changes`, as the service sends
    them), their future ones as `future_covariates` (NaN = not known ahead, i.e. past-only) and NaN
    `future_target`; the library's loss masks them, so only target rows are scored. The loss is the library's, in
    its arcsinh-squashed space, which already keeps the far steps' large errors from dominating.
    """
    h = CHRONOS_HORIZON
    if batch.cov_past is None or batch.cov_future is None:
        return model(context=batch.past, future_target=batch.future[:, :h], num_output_patches=h // 16).loss
    b, k = batch.past.shape[0], batch.cov_past.shape[1]
    past_changes, future_changes = covariate_changes(
        list(COVARIATES), batch.cov_past.numpy().astype(np.float64), batch.cov_future[..., :h].numpy()
    )
    assert future_changes is not None
    cov_past = torch.tensor(past_changes, dtype=torch.float32)
    cov_future = torch.tensor(future_changes, dtype=torch.float32)
    # Half the tasks know the covariates ahead (e.g. a planned load), half see them as past-only.
    cov_future[torch.rand(b) < 0.5] = torch.nan
    nan_rows = torch.full((b, 1, h), torch.nan)
    context = torch.cat([batch.past[:, None], cov_past], dim=1).reshape(b * (k + 1), CONTEXT)
    future_covariates = torch.cat([nan_rows, cov_future], dim=1).reshape(b * (k + 1), h)
    future_target = torch.cat([batch.future[:, None, :h], nan_rows.expand(b, k, h)], dim=1).reshape(b * (k + 1), h)
    group_ids = torch.arange(b).repeat_interleave(k + 1)
    return model(
        context=context,
        group_ids=group_ids,
        future_covariates=future_covariates,
        future_target=future_target,
        num_output_patches=h // 16,
    ).loss


def load_chronos2(model_id: str) -> Chronos2Model:
    pipe = BaseChronosPipeline.from_pretrained(model_id, device_map="cpu")
    assert isinstance(pipe, Chronos2Pipeline)
    adopt_input_scaling(pipe.model)
    return pipe.model


# ---------------------------------------------------------------- TimesFM 2.5

# Column 0 is the library's "mean" slot; it is trained as a median too (MAE beat MSE in the earlier probe).
TIMESFM_LEVELS = torch.tensor([0.5, *QUANTILE_COLUMNS])
TIMESFM_MIN_HISTORY = 64  # positions with fewer observed points have a near-meaningless running sigma
# Targets in the model's normalised space (summed steps in units of their running spread); a random walk reaches
# about 11 after 128 steps, a clock step far more: clipped, one step cannot dominate the loss.
TIMESFM_TARGET_CLIP = 100.0
TIMESFM_SCALING: InputScaling = "first-differences"  # what `build_timesfm` makes and its config.json says
# The kit's scaled crops, which `timesfm_loss` hands to the model as `steps_between` does in service.
TIMESFM_WINDOWS = dataclasses.replace(WINDOWS, scaling=TIMESFM_SCALING)


def build_timesfm() -> torch.nn.Module:
    return build_micro(MicroDims(), TIMESFM_SCALING).model


def timesfm_loss(module: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Replicates the library's prefill (`decode`) in training mode, and scores every patch position.

    The crops are the kit's `first-differences` (`batch.past`: steps, leading NaN; `batch.future`: offsets relative
    to the last value, in the same unit). Like a decoder-only LM, position i sees patches 0..i (causal attention)
    and answers the next 128 steps in its own running-stats (revin) space, whose unit is the spread of the steps.
    Its answers are summed before they are scored against the offsets they lead to, as the kit sums them in
    service (`as_offsets`): so the sums of its quantile outputs are what is trained to be quantiles of the path.
    Context NaN are preprocessed with the library's own functions, as `forecast` does: leading NaN become masked
    padding (interior ones cannot occur: `steps_between` bridges gaps).
    """
    assert isinstance(module, MicroModule)
    p, o, q = module.p, module.o, module.q
    values, masks = [], []
    for row in batch.past.numpy():
        v = linear_interpolation(strip_leading_nans(row.astype(np.float64)))
        values.append(np.pad(v, (CONTEXT - len(v), 0)))
        masks.append(np.arange(CONTEXT) < CONTEXT - len(v))
    steps = torch.tensor(np.stack(values), dtype=torch.float32)
    x = steps.reshape(len(values), -1, p)
    m = torch.tensor(np.stack(masks)).reshape(len(values), -1, p)
    stats = [(torch.zeros(x.shape[0]),) * 3]
    for i in range(x.shape[1]):
        stats.append(update_running_stats(*stats[-1], x[:, i], m[:, i])[0])
    n, mu, sigma = (torch.stack(s, 1) for s in zip(*stats[1:], strict=True))
    normed = torch.where(m, 0.0, revin(x, mu, sigma))
    (_, _, point, spread), _ = module(normed, m)

    # The path the steps trace (0 at the context's end; padding takes no step), then the future's offsets.
    path = steps.cumsum(dim=1)
    full = torch.cat([path - path[:, -1:], batch.future], dim=1)
    ends = full[:, p - 1 : CONTEXT : p]  # (B, N): where patch i ends
    ahead = full[:, p:].unfold(1, o, p)[:, : x.shape[1]] - ends[..., None]  # (B, N, o): offsets from there
    # The sum of h normalised steps is (offset - h mu) / sigma; "no change" sums to -h mu / sigma.
    h = torch.arange(1, o + 1, dtype=torch.float32)
    drift = mu[..., None] * h
    target = revin(ahead, drift, sigma[..., None]).clamp(-TIMESFM_TARGET_CLIP, TIMESFM_TARGET_CLIP)
    valid = (n >= TIMESFM_MIN_HISTORY)[..., None] & ~torch.isnan(target)
    point = point.reshape(*target.shape, q).cumsum(dim=2)
    spread = spread.reshape(*target.shape[:2], -1, q)[:, :, :o].cumsum(dim=2)
    # In this space one step's motion is of order one and far steps wander: weigh each as a ratio to "no change".
    no_change = revin(torch.zeros_like(ahead), drift, sigma[..., None])
    weights = naive_weights((torch.nan_to_num(target) - no_change).abs(), valid)
    return pinball(point, target, TIMESFM_LEVELS, valid, weights) + pinball(
        spread, target, TIMESFM_LEVELS, valid, weights
    )


def save_timesfm(module: torch.nn.Module, out_dir: Path) -> None:
    assert isinstance(module, MicroModule)
    wrapper = build_micro(MicroDims(), TIMESFM_SCALING)
    wrapper.model = module
    wrapper.save_pretrained(str(out_dir))


def timesfm_forecast(model_dir: Path, val: Batch, horizon: int, covariates: bool) -> np.ndarray:
    return adapter_median(TimesFmModel("validation", str(model_dir)), val, horizon)


# ---------------------------------------------------------------- specs


SPECS: dict[str, ModelSpec] = {
    "chronos-bolt": ModelSpec(
        name="chronos-bolt",
        dir_name="chronos-bolt-micro",
        hub_id="amazon/chronos-bolt-small",
        windows=KIT_WINDOWS,
        build=build_bolt,
        loss=bolt_loss,
        save=save_pretrained,
        forecast=service_forecast,
        load=load_bolt,
        load_call='pipe = BaseChronosPipeline.from_pretrained(dir_or_hub_id, device_map="cpu"); '
        "chronotick_chronos.scaling.adopt_input_scaling(pipe.model); pipe.predict_quantiles(context (B, T) tensor "
        "in the kit's units (`chronotick.kit.scaling.scale_context`), NaN for missing, prediction_length=60, "
        "quantile_levels=[...]), answers in the same units",
        loss_description="the library's quantile loss (twice the pinball loss over the 9 quantiles) in the kit's "
        "units (its instance norm bypassed), each of the 64 steps weighted by the inverse of the batch's mean error "
        'of "no change" there (mean weight 1).',
        about="Its inputs are the kit's `last-value-mad` units (`chronotick_input_scaling` in its config): the "
        "service divides each context by its mean absolute step and `chronotick_chronos.scaling` replaces the "
        "library's instance norm by one that keeps them.",
    ),
    "chronos-2": ModelSpec(
        name="chronos-2",
        dir_name="chronos-2-micro",
        hub_id="amazon/chronos-2",
        windows=KIT_WINDOWS,
        build=build_chronos2,
        loss=chronos2_loss,
        save=save_pretrained,
        forecast=service_forecast,
        load=load_chronos2,
        load_call='pipe = BaseChronosPipeline.from_pretrained(dir_or_hub_id, device_map="cpu"); '
        "chronotick_chronos.scaling.adopt_input_scaling(pipe.model); pipe.predict_quantiles("
        '[{"target": ctx, "past_covariates": {"temperature_c": ..., "cpu_load": ...}, "future_covariates": '
        "{...60 values...}}], prediction_length=60, quantile_levels=[...]), the target in the kit's units and the "
        "covariates as `chronotick.kit.scaling.covariate_changes` (as `chronotick_chronos.pipelines` does)",
        loss_description="the library's `forward(..., future_target=...).loss`: quantile loss in its arcsinh-"
        "squashed space of the kit's units (instance norm bypassed), summed over the 21 quantiles and averaged over "
        "the 64 steps; covariate rows masked.",
        about="Its inputs are the kit's `last-value-mad` units (`chronotick_input_scaling` in its config): the "
        "service divides each context by its mean absolute step, gives each covariate as its change since its last "
        "past value in physical units (1 degC, 0.25 load), and `chronotick_chronos.scaling` replaces the "
        "library's instance norm by one that keeps them.",
        uses_covariates=True,
        covariate_note="every other batch is covariate tasks, half with future covariates known.",
    ),
    "timesfm-2.5": ModelSpec(
        name="timesfm-2.5",
        dir_name="timesfm-2.5-micro",
        hub_id=TIMESFM_HUB_ID,
        windows=TIMESFM_WINDOWS,
        build=build_timesfm,
        loss=timesfm_loss,
        save=save_timesfm,
        forecast=timesfm_forecast,
        load_call="load_timesfm_2p5(dir_or_hub_id, max_context=512, max_horizon=60).forecast(horizon=60, "
        "inputs=[scale_context(ctx, 'first-differences')[0] for ctx in contexts]), answering steps whose running "
        "sums are the offsets (chronotick.kit.scaling.as_offsets)",
        loss_description="pinball loss on the point and continuous-quantile heads in the model's running-stats "
        "normalised space (the unit is the spread of the context's steps), every patch position answering the "
        "next 128 steps, summed before they are scored against the offsets they lead to (targets clipped at "
        '+-100), each step weighted by the inverse of the batch\'s mean error of "no change" at that step (mean '
        "weight 1).",
        about="It sees the kit's `first-differences` (`chronotick_input_scaling` in its config): the steps between "
        "consecutive samples, in units of the context's mean absolute step. TimesFM normalises every patch by "
        "running statistics of its input inside its decode, which no option turns off: given offsets, that unit "
        "would be the context's slow wander; given steps, it is the clock's short-term motion. It answers the steps "
        "ahead; the kit sums them (`chronotick.kit.scaling.as_offsets`), which is what its loss scores.",
    ),
}


def main(argv: Sequence[str] | None = None) -> None:
    training.main(
        SPECS,
        argv,
        default_out=Path("services/chronos/models"),
        description=__doc__ or "",
        command_prefix="PYTHONPATH=shared:services/chronos python -m chronotick_chronos.train",
    )


if __name__ == "__main__":
    main()
