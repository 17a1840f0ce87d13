"""Train a micro Toto on synthetic clocks, saved in the format ``Toto.load_from_checkpoint`` reads.

No model hub is reachable here, so the library's own ``Toto`` class is built with small dimensions,
trained on the shared synthetic clock generator with the library's own training loss, and saved as
``model.safetensors`` + ``config.json`` (``Toto.save_pretrained`` raises NotImplementedError); the
service loads it with the library's real loader, as it would load the hub checkpoint in the card.

    python -m chronotick_toto.train [--out DIR] [--minutes N] [--seed S] [--steps N]

Toto is a decoder-only model: every position predicts the value one patch (64 steps) later, so one
crop of 512 + 64 steps scores every patch of the context at once, like the library's fine-tuning.
The loop, data, validation and model card are `chronotick.training`'s. Every window is made relative
to its last observed context value and divided by its context's mean absolute step
(`chronotick.kit.scaling`, ``last-value-mad``), exactly as the service hands a context to a checkpoint
whose config says so; the library's causal std/mean scaler, which would re-standardise it, is
replaced by the identity (`toto_model.IdentityScaler`, in `build` and in the service's loader), and
covariates are given as their changes since their last past value. The saved config.json carries
``"chronotick_input_scaling": "last-value-mad"``.

Fine-tuning (`chronotick_toto.finetune`) keeps a checkpoint's own scaling: a released or bundled
``anchored`` checkpoint keeps its scaler and is tuned on the same crops mapped back to microseconds
(`Batch.in_us`), and is saved without the key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_model
from toto.model.losses import CombinedLoss
from toto.model.toto import Toto

from chronotick import training
from chronotick.contract import InputScaling
from chronotick.kit import ModelBatch
from chronotick.kit.scaling import CONFIG_KEY, covariate_changes
from chronotick.training import Batch, ModelSpec, Windows
from chronotick_toto.toto_model import MAX_CONTEXT, TotoModel, load_toto, model_input_scaling, use_input_scaling

CONTEXT = MAX_CONTEXT
PATCH = 64
COVARIATES = ("temperature_c", "cpu_load")
SCALING: InputScaling = "last-value-mad"  # what `build` makes and `save` writes for a new checkpoint
# Crops in the kit's last-value-mad units; no future clipping (the NLL and the robust loss, log-like, bound what a
# spike can do); a context with nothing observed dropped (it has no last value nor steps to scale by, and the
# service refuses it); short histories blank the covariates' past too (they are variates of the same group).
WINDOWS = Windows(
    context=CONTEXT,
    future=PATCH,
    batch_size=32,
    covariates=COVARIATES,
    future_clip=None,
    empty_context="drop",
    short_history_covariates=True,
    scaling=SCALING,
)
DIR_NAME = "toto-micro"
HUB_ID = "Datadog/Toto-Open-Base-1.0"

# The released checkpoint's keys, with small dimensions: Toto's constructor arguments (`save` adds CONFIG_KEY). The
# class-name strings are the library's own lookup keys (they name the upstream module paths, not this package's);
# the scaler named here is built, then replaced by the identity (`use_input_scaling`).
CONFIG: dict[str, object] = {
    "patch_size": PATCH,
    "stride": PATCH,
    "embed_dim": 64,
    "num_layers": 4,
    "num_heads": 4,
    "mlp_hidden_dim": 128,
    "dropout": 0.0,
    "spacewise_every_n_layers": 2,
    "spacewise_first": True,
    "scaler_cls": "<class 'model.scaler.CausalPatchStdMeanScaler'>",
    "output_distribution_classes": ["<class 'model.distribution.MixtureOfStudentTsOutput'>"],
    "output_distribution_kwargs": {"k_components": 4},
    "use_memory_efficient_attention": False,
    "stabilize_with_global": True,
    "scale_factor_exponent": 10.0,
}
CRITERION = CombinedLoss()  # stateless: the library's NLL + robust loss weights


def build() -> Toto:
    return use_input_scaling(Toto(**CONFIG), SCALING)  # type: ignore[arg-type]


def variates(batch: Batch, scaling: InputScaling = SCALING) -> np.ndarray:
    """(B, V, context + future) crops as a checkpoint of ``scaling`` sees them: variate 0 the offset, then the
    covariates if the batch has them.

    ``last-value-mad``: the batch as the Pool scaled it, covariates as changes since their last past value (what the
    service adapter passes). ``anchored``: the offset back in microseconds relative to the last value (a clipped
    context sample stays clipped), raw covariates.
    """
    past, future = batch.past.numpy().astype(np.float64), batch.future.numpy().astype(np.float64)
    if scaling == "anchored":
        past, future = batch.in_us(past), batch.in_us(future)
    values = np.concatenate([past, future], axis=1)[:, None]
    if batch.cov_past is not None and batch.cov_future is not None:
        cov_past, cov_future = batch.cov_past.numpy().astype(np.float64), batch.cov_future.numpy().astype(np.float64)
        if scaling == "last-value-mad":
            cov_past, changes = covariate_changes(list(WINDOWS.covariates), cov_past, cov_future)
            assert changes is not None
            cov_future = changes
        values = np.concatenate([values, np.concatenate([cov_past, cov_future], axis=2)], axis=1)
    return values


def _model_inputs(values: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """What the service feeds the model: leading NaN as padding, interior NaN interpolated, both masked."""
    observed = ~np.isnan(values)
    filled = np.zeros_like(values)
    for index in np.ndindex(values.shape[:-1]):
        known = np.flatnonzero(observed[index])
        if known.size:
            filled[index] = np.interp(np.arange(values.shape[-1]), known, values[index][known])
            filled[index][: known[0]] = 0.0
    return torch.tensor(filled, dtype=torch.float32), torch.tensor(observed)


# Target position t is predicted from the patch holding t - PATCH, whose last input is PATCH - t % PATCH - 1 steps
# earlier than that: its horizon is t % PATCH + 1.
STEP_WEIGHTS = training.horizon_weights(PATCH).repeat(CONTEXT // PATCH)


def loss_fn(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The library's fine-tuning loss per target step, weighted by its horizon (`training.horizon_weights`).

    Inputs are the first CONTEXT steps, targets the same positions one patch later, in the space of the model's
    scaler (the identity for last-value-mad: the kit's units); only the offset variate is scored (covariates are
    inputs, as exogenous variates are in the library's fine-tuning). Position t's horizon is t % PATCH + 1 steps
    after the last input it sees, so each step gets 1/sqrt(horizon) (mean 1 over a patch): a weighted mean.
    """
    assert isinstance(model, Toto)
    values, observed = _model_inputs(variates(batch, model_input_scaling(model)))
    inputs, input_mask = values[..., :-PATCH], observed[..., :-PATCH]
    targets, target_mask = values[..., PATCH:], observed[..., PATCH:]
    out = model.model(inputs, input_mask, torch.zeros_like(inputs, dtype=torch.int))
    scaled = (targets - out.loc) / (out.scale + torch.finfo(targets.dtype).eps)
    mask = target_mask.clone()
    mask[:, 1:] = False
    weights = mask * STEP_WEIGHTS
    loss = CRITERION(out.distribution, scaled)
    return (loss * weights).sum() / weights.sum().clamp(min=1e-6)


def load(model_id: str) -> Toto:
    """The service's loader (scaler included), for checkpoints in this micro config only: `save` writes CONFIG, plus
    CONFIG_KEY for a last-value-mad model, as their config."""
    config_path = Path(model_id) / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else None
    if config is None or {k: v for k, v in config.items() if k != CONFIG_KEY} != json.loads(json.dumps(CONFIG)):
        raise ValueError(f"{model_id}: fine-tuning saves the micro config, so it only takes a checkpoint in it")
    return load_toto(model_id)


def save(model: torch.nn.Module, out_dir: Path) -> None:
    """``model.safetensors`` + ``config.json`` (CONFIG, and ``chronotick_input_scaling`` for a last-value-mad model:
    a fine-tuned anchored checkpoint stays anchored), what `toto_model.load_toto` reads."""
    assert isinstance(model, Toto)
    save_model(model, str(out_dir / "model.safetensors"))
    scaling = model_input_scaling(model)
    config = CONFIG if scaling == "anchored" else {**CONFIG, CONFIG_KEY: scaling}
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def forecast_median(model_dir: Path, val: Batch, horizon: int, covariates: bool) -> np.ndarray:
    """Through the service's own adapter, in chunks (the sampled batch is num_samples times larger), fed what the
    service would feed it: the Pool's scaled contexts for a last-value-mad checkpoint (the kit scales each request
    the same way), contexts back in microseconds for an anchored one, raw covariates (the adapter converts them).
    Returns the medians in the batch's units (`training.evaluate` maps them back)."""
    model = TotoModel("toto", str(model_dir))
    past = val.past.numpy().astype(np.float64)
    anchored = model.info.input_scaling == "anchored"
    if anchored:
        past = val.in_us(past)
    cov_past = None if val.cov_past is None else val.cov_past.numpy().astype(np.float64)
    medians = []
    for start in range(0, len(past), 32):
        rows = range(start, min(start + 32, len(past)))
        batch = ModelBatch(
            contexts=[past[i] for i in rows],
            horizon=horizon,
            interval_s=[1.0] * len(rows),
            past_covariates=[{k: cov_past[i, j] for j, k in enumerate(COVARIATES)} for i in rows]
            if covariates and cov_past is not None
            else [],
        )
        result = model.forecast(batch)
        medians.append(result.quantiles[:, int(np.argmin(np.abs(result.levels - 0.5)))])
    median = np.concatenate(medians)
    if anchored and val.scale_us is not None:
        median = median / val.scale_us.numpy().astype(np.float64)[:, None]
    return median


SPECS: dict[str, ModelSpec] = {
    "toto": ModelSpec(
        name="toto",
        dir_name=DIR_NAME,
        hub_id=HUB_ID,
        windows=WINDOWS,
        build=build,
        loss=loss_fn,
        save=save,
        forecast=forecast_median,
        load=load,
        load_call="chronotick_toto.toto_model.load_toto(dir)` (the library's `Toto.load_from_checkpoint(dir + "
        "'/model.safetensors', map_location='cpu', **config)` with config.json less `chronotick_input_scaling`, then "
        "`model.model.scaler = IdentityScaler()`), then `TotoForecaster(model.model).forecast(MaskedTimeseries(...), "
        "prediction_length=60, num_samples=64, samples_per_batch=64)` on a context scaled by "
        "`chronotick.kit.scaling.scale_context(context, 'last-value-mad')`; the service does all this through the "
        "kit in `chronotick_toto.toto_model.TotoModel",
        loss_description="the library's `CombinedLoss` (0.575 x NLL of the mixture of Student-t + 0.425 x robust "
        "loss of its mean) in the kit's last-value-mad units (the identity scaler: loc 0, scale 1); every context "
        "position predicts the value one patch later (decoder-only), offset variate only; a weighted mean over "
        "target steps with `chronotick.training.horizon_weights` (1/sqrt(h), mean 1), h = 1..64 being a position's "
        "steps after the last input its patch sees.",
        uses_covariates=True,
        covariate_batch_size=WINDOWS.batch_size,
        covariate_note=f"every other batch carries {', '.join(COVARIATES)} as extra variates of the same group, "
        "each as its change since its last past value in physical units (`chronotick.kit.scaling.covariate_changes`"
        ", as the service passes them; inputs only: not scored).",
        covariate_label="past covariates",
        forecast_kind="median of 64 samples",
        about="Its context is also divided by the context's mean absolute step (config.json "
        "`chronotick_input_scaling: last-value-mad`, `chronotick.kit.scaling`): its forecast is in those units, "
        "multiply by the scale before adding the last value back. Toto's causal std/mean scaler (still named in "
        "`scaler_cls`) is replaced by an identity scaler on loading, so the model works in these units. It samples "
        "paths, 64 steps per decoding step.",
        real_weights=f"set `CHRONOTICK_TOTO_MODEL_ID={HUB_ID}` (needs the Hugging Face hub; loaded with "
        "`Toto.from_pretrained`, which needs huggingface_hub < 1.0; released weights keep their own scaler and the "
        "anchored scaling).",
        card_notes=(
            "- Missing samples: leading NaN are padding (value 0, `padding_mask` False); interior NaN are linearly "
            "interpolated and masked (Toto's mask only weights its scaler, here the identity, so the model does not "
            "tell padding from a value of 0; the patch embedding reads the value).",
            "- Known future covariates: Toto decodes 64 steps per pass and injects known future values after each "
            "pass, so they steer only the steps after the first 64 (horizons up to 64 use past covariates only).",
            "- Validation forecasts: the median of 64 sample paths (service seed 0).",
        ),
    ),
}


def main(argv: Sequence[str] | None = None) -> None:
    training.main(
        SPECS,
        argv,
        default_out=Path("services/toto/models"),
        description=__doc__ or "",
        command_prefix="PYTHONPATH=shared:services/toto python -m chronotick_toto.train",
        default_minutes=5.0,
        default_series=512,
        default_val_series=32,
    )


if __name__ == "__main__":
    main()
