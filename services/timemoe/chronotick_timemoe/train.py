"""Train a micro Time-MoE on synthetic clocks and save it in the library's own format.

No model hub is reachable here, so the library's real class (``sktime.libs.timemoe.TimeMoeForPrediction``)
is built with small dimensions, trained on the shared synthetic clock generator and saved with
``save_pretrained`` (safetensors); the service loads it with ``from_pretrained``, exactly as it would load
``Maple728/TimeMoE-50M``.

    python -m chronotick_timemoe.train [--out DIR] [--minutes N] [--seed S] [--steps N]

The loop, data, validation and model card are `chronotick.training`'s.

Crops are scaled by the trainer exactly as the kit scales every request for this checkpoint
(``Windows(relative=True, scaling="last-value-mad")``, ``chronotick.kit.scaling``: relative to the last observed
context value, divided by the context's mean absolute step); the saved config says
``chronotick_input_scaling: last-value-mad`` so the service does the same and the adapter passes contexts through.
The loss is MAE in those units. Time-MoE is decoder-only, so each of the last 64 positions of a window is trained
to forecast the next 1/8/32/64 steps (as the library trains every position), and the last one, the one the service
reads, counts once more; each head's step h is weighted 1/sqrt(h) (``training.horizon_weights``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sktime.libs.timemoe import TimeMoeConfig, TimeMoeForPrediction

from chronotick import training
from chronotick.kit import ModelBatch
from chronotick.kit.scaling import CONFIG_KEY, INPUT_CLIP
from chronotick.synthetic import SCENARIOS, generate_clock
from chronotick.training import Batch, ModelSpec, Pool, Windows
from chronotick_timemoe.timemoe_model import MAX_CONTEXT, TimeMoeModel, fill_missing, padded_inputs

CONTEXT = MAX_CONTEXT
HORIZONS = [1, 8, 32, 64]  # the released checkpoints' output heads
FUTURE = max(HORIZONS)
SCALING = "last-value-mad"  # what the kit hands this checkpoint (chronotick.kit.scaling), written in its config
# Crops relative and scaled as the kit scales a request, no future clipping (the scaled target is clipped at
# INPUT_CLIP in the loss), and a context left with nothing observed gets 0 as its last value rather than dropped.
WINDOWS = Windows(
    context=CONTEXT,
    future=FUTURE,
    batch_size=8,
    relative=True,
    scaling=SCALING,
    future_clip=None,
    empty_context="zero_last",
)
MIN_HISTORY = 16  # positions with fewer real samples before them are not scored (scale barely known)
# Only the last positions are scored. The window is relative to its LAST value (as the kit hands a context), so a
# position far from the end would have to copy a large input value into its output and would see a level that leaks
# where the window ends; near the end both are small. (Scoring every position: about
# 8x the targets per step, but validation MAE at h=60 was barely better than last-value after 5 minutes.)
SCORED_TAIL = 64
HUB_ID = "Maple728/TimeMoE-50M"


def build_model() -> TimeMoeForPrediction:
    config = TimeMoeConfig(
        input_size=1,
        horizon_lengths=HORIZONS,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=CONTEXT + FUTURE,
        **{CONFIG_KEY: SCALING},  # the service reads it (ModelInfo.input_scaling) and scales every context so
    )
    return TimeMoeForPrediction(config)


def prepare(win: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows already in the kit's units -> model inputs (left-padded, interpolated, passed through as the adapter
    passes a `last-value-mad` context) and (B, CONTEXT + FUTURE) targets clipped at INPUT_CLIP (NaN kept)."""
    rows = [fill_missing(row[:CONTEXT])[0] for row in win]
    inputs, attention, positions = padded_inputs(rows)
    targets = np.clip(win, -INPUT_CLIP, INPUT_CLIP)
    return inputs, attention, positions, torch.tensor(targets, dtype=torch.float32)


def mae_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Horizon-weighted MAE of every head at the last SCORED_TAIL positions, plus the last position's again."""
    assert isinstance(model, TimeMoeForPrediction)
    win = torch.cat([batch.past, batch.future], dim=1).numpy().astype(np.float64)
    inputs, attention, positions, target = prepare(win)
    hidden = model.model(
        input_ids=inputs, attention_mask=attention, position_ids=positions, use_cache=False, return_dict=True
    ).last_hidden_state
    scored = (attention.cumsum(-1) >= MIN_HISTORY).float()  # (B, CONTEXT)
    scored[:, : CONTEXT - SCORED_TAIL] = 0.0
    total, last = 0.0, 0.0
    for head, h in zip(model.lm_heads, model.config.horizon_lengths, strict=True):
        pred = head(hidden)  # (B, CONTEXT, h): position t forecasts t+1 .. t+h
        truth = target[:, 1:].unfold(1, h, 1)[:, :CONTEXT]
        valid = ~torch.isnan(truth) & (scored[..., None] > 0)
        weights = torch.where(valid, training.horizon_weights(h), 0.0)  # step j of the head: 1/sqrt(j), masked
        err = torch.where(valid, (pred - torch.nan_to_num(truth)).abs(), 0.0) * weights
        total = total + err.sum() / weights.sum().clamp(min=1e-6)
        last = last + err[:, -1].sum() / weights[:, -1].sum().clamp(min=1e-6)
    return (total + last) / len(model.lm_heads)


def load(model_id: str) -> TimeMoeForPrediction:
    """A checkpoint to fine-tune: it is tuned on `WINDOWS`' crops (the loss passes them through, as the adapter
    passes a `last-value-mad` context), so what it saves asks the kit for the same scaling, whatever it said."""
    model = TimeMoeForPrediction.from_pretrained(model_id, torch_dtype=torch.float32, use_safetensors=True)
    setattr(model.config, CONFIG_KEY, SCALING)
    return model


def save(model: torch.nn.Module, out_dir: Path) -> None:
    assert isinstance(model, TimeMoeForPrediction)
    model.save_pretrained(str(out_dir), safe_serialization=True)


def validation_windows(seed: int, n_series: int, windows: Windows) -> Batch:
    """Crops of held-back clocks `generate_clock(scenario, L, seed=seed + EVAL_SEED_OFFSET + i)`, every scenario
    equally, no covariates (this family's own validation set, kept so its card's numbers reproduce)."""
    clocks = [
        generate_clock(SCENARIOS[i % len(SCENARIOS)], windows.series_len, seed=seed + training.EVAL_SEED_OFFSET + i)
        for i in range(n_series)
    ]
    pool = Pool(np.stack([c.observed_offset_us for c in clocks]))
    return training.sample_validation(pool, seed, n_series, windows)


def micro_forecast(model_dir: Path, val: Batch, horizon: int, covariates: bool) -> np.ndarray:
    """The service's own path, in the batch's units: the saved checkpoint, loaded by the library, through the
    adapter, on the contexts the kit would hand it. The batch is already in the kit's `last-value-mad` units; an
    `anchored` checkpoint (a released one before fine-tuning) gets them back in microseconds."""
    model = TimeMoeModel("timemoe", str(model_dir))
    past = val.past.numpy().astype(np.float64)
    to_batch_units = np.ones((len(past), 1))
    if model.info.input_scaling != "last-value-mad":
        past, to_batch_units = val.in_us(past), 1.0 / val.in_us(to_batch_units)
    contexts = list(past)
    forecast = model.point_forecast(ModelBatch(contexts=contexts, horizon=horizon, interval_s=[1.0] * len(contexts)))
    return forecast * to_batch_units


SPECS: dict[str, ModelSpec] = {
    "timemoe": ModelSpec(
        name="timemoe",
        dir_name="timemoe-micro",
        hub_id=HUB_ID,
        windows=WINDOWS,
        build=build_model,
        loss=mae_loss,
        save=save,
        load=load,
        forecast=micro_forecast,
        load_call="sktime.libs.timemoe.TimeMoeForPrediction.from_pretrained(dir_or_hub_id, use_safetensors=True)`; "
        "one forward pass on a (B, T, 1) float tensor with `max_horizon_length=64` gives `logits[:, -1, :60]`, "
        "the next 60 steps in the input's units (`generate(x.clone(), max_new_tokens=60)` works too, on "
        "transformers 4.40.1, and is slower). Never `trust_remote_code",
        loss_description="MAE in the scaled units (`last-value-mad`, targets clipped at "
        f"+-{INPUT_CLIP:g}) of all four heads (1, 8, 32, 64 steps) at each of the last "
        f"{SCORED_TAIL} positions with at least {MIN_HISTORY} real samples (decoder-only: each position "
        "forecasts what follows it), plus the last position's MAE once more (the one the service reads); each "
        "head's step h weighted 1/sqrt(h) (mean 1, `training.horizon_weights`), missing targets masked. "
        "Earlier positions are not scored: their inputs, relative to the window's last value, would leak "
        "where the window ends. The library's Huber loss and router auxiliary loss are not used.",
        forecast_kind="point",
        peak_lr=2e-3,
        log_every=10,
        validation=validation_windows,
        about=f"Its config says `{CONFIG_KEY}: {SCALING}`: the service (`chronotick.kit.scaling`) hands it each "
        "context relative to its last observed value and divided by its mean absolute step (floored at 1e-3 us, "
        f"clipped at +-{INPUT_CLIP:g}) and maps the forecast back the same way; the adapter passes the context "
        "through.",
        real_weights=f"set `CHRONOTICK_TIMEMOE_MODEL_ID={HUB_ID}` (needs the Hugging Face hub; same "
        f"class and parameter names). Released checkpoints have no `{CONFIG_KEY}`: they stay `anchored` and the "
        "adapter z-normalises each series, as upstream does.",
        card_notes=(
            "- Inputs: crops scaled by their context as above; leading NaN (short history) fed as masked left "
            "padding; interior NaN linearly interpolated in the input, never scored as targets.",
            f"- Validation clocks: `generate_clock(scenario, {WINDOWS.series_len}, seed=seed+"
            f"{training.EVAL_SEED_OFFSET}+i)`, no covariates.",
        ),
    ),
}


def main(argv: Sequence[str] | None = None) -> None:
    training.main(
        SPECS,
        argv,
        default_out=Path("services/timemoe/models"),
        description=__doc__ or "",
        command_prefix="PYTHONPATH=shared:services/timemoe python -m chronotick_timemoe.train",
        default_minutes=5.0,
        default_series=512,
        default_val_series=48,
    )


if __name__ == "__main__":
    main()
