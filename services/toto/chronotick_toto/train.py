"""Train a micro Toto on synthetic clocks, saved in the format ``Toto.load_from_checkpoint`` reads.

No model hub is reachable here, so the library's own ``Toto`` class is built with small dimensions,
trained on the shared synthetic clock generator with the library's own training loss, and saved as
``model.safetensors`` + ``config.json`` (``Toto.save_pretrained`` raises NotImplementedError); the
service loads it with the library's real loader, as it would load the hub checkpoint in the card.

    python -m chronotick_toto.train [--out DIR] [--minutes N] [--seed S] [--steps N]

Toto is a decoder-only model: every position predicts the value one patch (64 steps) later, so one
crop of 512 + 64 steps scores every patch of the context at once, like the library's fine-tuning.
The loop, data, validation and model card are `chronotick.training`'s: every window is made relative
to its last observed context value, as the service does before calling the model; Toto's own causal
scaler does the rest of the normalisation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from chronotick import training
from chronotick.kit import ModelBatch
from chronotick.training import Batch, ModelSpec, Windows
from safetensors.torch import save_model
from toto.model.losses import CombinedLoss
from toto.model.toto import Toto

from chronotick_toto.toto_model import MAX_CONTEXT, TotoModel, load_toto

CONTEXT = MAX_CONTEXT
PATCH = 64
COVARIATES = ("temperature_c", "cpu_load")
# No future clipping (Toto scores in its own causal scaler's space), empty contexts kept, and short histories
# blank the covariates' past too (they are variates of the same group).
WINDOWS = Windows(
    context=CONTEXT, future=PATCH, batch_size=32, covariates=COVARIATES, future_clip=None, empty_context="keep",
    short_history_covariates=True,
)
DIR_NAME = "toto-micro"
HUB_ID = "Datadog/Toto-Open-Base-1.0"

# The released checkpoint's keys, with small dimensions. The class-name strings are the library's own
# lookup keys (they name the upstream module paths, not this package's).
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
    return Toto(**CONFIG)  # type: ignore[arg-type]


def variates(batch: Batch) -> np.ndarray:
    """(B, V, context + future) crops: variate 0 the relative offset, then the covariates if the batch has them."""
    values = torch.cat([batch.past, batch.future], dim=1)[:, None]
    if batch.cov_past is not None and batch.cov_future is not None:
        values = torch.cat([values, torch.cat([batch.cov_past, batch.cov_future], dim=2)], dim=1)
    return values.numpy().astype(np.float64)


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


def loss_fn(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The library's fine-tuning loss: NLL + robust loss of the next-patch distribution in the scaler's space.

    Inputs are the first CONTEXT steps, targets the same positions one patch later; only the offset
    variate is scored (covariates are inputs, as exogenous variates are in the library's fine-tuning).
    """
    assert isinstance(model, Toto)
    values, observed = _model_inputs(variates(batch))
    inputs, input_mask = values[..., :-PATCH], observed[..., :-PATCH]
    targets, target_mask = values[..., PATCH:], observed[..., PATCH:]
    out = model.model(inputs, input_mask, torch.zeros_like(inputs, dtype=torch.int))
    scaled = (targets - out.loc) / (out.scale + torch.finfo(targets.dtype).eps)
    mask = target_mask.clone()
    mask[:, 1:] = False
    loss = CRITERION(out.distribution, scaled)
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def load(model_id: str) -> Toto:
    """The service's loader, for checkpoints in this micro config only: `save` writes CONFIG as their config."""
    config_path = Path(model_id) / "config.json"
    if not config_path.is_file() or json.loads(config_path.read_text()) != json.loads(json.dumps(CONFIG)):
        raise ValueError(f"{model_id}: fine-tuning saves the micro config, so it only takes a checkpoint in it")
    return load_toto(model_id)


def save(model: torch.nn.Module, out_dir: Path) -> None:
    """``model.safetensors`` + ``config.json``: exactly what ``Toto.load_from_checkpoint(dir)`` reads."""
    save_model(model, str(out_dir / "model.safetensors"))
    (out_dir / "config.json").write_text(json.dumps(CONFIG, indent=2, sort_keys=True) + "\n")


def forecast_median(model_dir: Path, val: Batch, horizon: int, covariates: bool) -> np.ndarray:
    """Through the service's own adapter, in chunks (the sampled batch is num_samples times larger)."""
    model = TotoModel("toto", str(model_dir))
    past = val.past.numpy().astype(np.float64)
    cov_past = None if val.cov_past is None else val.cov_past.numpy().astype(np.float64)
    medians = []
    for start in range(0, len(past), 32):
        rows = range(start, min(start + 32, len(past)))
        batch = ModelBatch(
            contexts=[past[i] for i in rows],
            horizon=horizon,
            interval_s=[1.0] * len(rows),
            past_covariates=[{k: cov_past[i, j] for j, k in enumerate(COVARIATES)} for i in rows]
            if covariates and cov_past is not None else [],
        )
        result = model.forecast(batch)
        medians.append(result.quantiles[:, int(np.argmin(np.abs(result.levels - 0.5)))])
    return np.concatenate(medians)


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
        load_call='Toto.load_from_checkpoint(dir, map_location="cpu", use_memory_efficient_attention=False)`, then '
        "`TotoForecaster(model.model).forecast(MaskedTimeseries(...), prediction_length=60, num_samples=64, "
        "samples_per_batch=64)`; the service wraps this in `chronotick_toto.toto_model.TotoModel",
        loss_description="the library's `CombinedLoss` (0.575 x NLL of the mixture of Student-t + 0.425 x robust "
        "loss of its mean) on targets scaled by the model's causal loc/scale; every context position predicts the "
        "value one patch later (decoder-only), offset variate only.",
        uses_covariates=True,
        covariate_batch_size=WINDOWS.batch_size,
        covariate_note=f"every other batch carries {', '.join(COVARIATES)} as extra variates of the same group "
        "(inputs only: not scored).",
        covariate_label="past covariates",
        forecast_kind="median of 64 samples",
        about="It samples paths, 64 steps per decoding step.",
        real_weights=f"set `CHRONOTICK_TOTO_MODEL_ID={HUB_ID}` (needs the Hugging Face hub; loaded with "
        "`Toto.from_pretrained`, which needs huggingface_hub < 1.0).",
        card_notes=(
            "- Missing samples: leading NaN are padding (value 0, `padding_mask` False); interior NaN are linearly "
            "interpolated and masked (Toto's mask only weights its scaler; the patch embedding reads the value).",
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
