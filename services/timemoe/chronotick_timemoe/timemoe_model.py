"""Time-MoE behind the kit's point-forecaster interface, through ``sktime.libs.timemoe``.

Time-MoE is decoder-only and reads one token per sample; each position has output heads for the
next 1, 8, 32 and 64 steps (``horizon_lengths``). A forecast here is ONE forward pass whose last
position answers with the longest head, cut to the horizon: for 60 steps that took 0.7x the time of
the library's ``generate`` (36 vs 52 ms at batch 1, context 512; generate chains the 32-step
head) and never feeds a prediction back as input. Horizons beyond the longest head are refused
by the kit (``max_horizon``).

Preprocessing (the model has no mask for missing samples):

* leading missing samples (a short history) become left padding, masked out of attention, with
  position ids that start at the first real sample, so a context padded inside a batch gives what
  it gives alone;
* interior missing samples are linearly interpolated, trailing ones hold the last observed value;
* each context is normalised by the scaling its checkpoint was trained with, written in its
  ``config.json`` as ``chronotick_scaling``: ``last_value_mad`` (ChronoTick's micro-checkpoints:
  subtract the last value, divide by the mean absolute first difference, floored) or, when absent,
  ``zscore`` (the released Time-MoE checkpoints: subtract the mean, divide by the std).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sktime.libs.timemoe import TimeMoeForPrediction

from chronotick.contract import ModelInfo
from chronotick.kit import ModelBatch, weights_version
from chronotick.kit.spread import SPREAD_LEVELS

MAX_CONTEXT = 512
MIN_CONTEXT = 8
SCALE_FLOOR_US = 0.01  # 10 ns: below any clock's measurement noise; keeps a flat context finite
INPUT_CLIP = 1000.0  # normalised units: a servo step or spike cannot saturate the embedding
SCALINGS = ("last_value_mad", "zscore")
# Rows per forward pass. Attention is eager and per sample (a 512-token context is a 4 MB score
# matrix per head and layer), so large batches run out of cache: measured on a busy 2-core machine
# at context 512, one thread, the cost per row was 118 ms alone, 89 ms in pairs, 74 ms by 4 and
# 93 ms by 8 (all 9 contexts of a request in one padded pass: 94 ms per row).
ROWS_PER_PASS = 4


def fill_missing(context: np.ndarray) -> tuple[np.ndarray, int]:
    """(values without leading NaN, interior interpolated and trailing held; count of leading NaN)."""
    observed = np.flatnonzero(~np.isnan(context))
    if observed.size == 0:
        raise ValueError("context has no observed value")
    values = context[observed[0] :]
    index = np.arange(values.size)
    known = ~np.isnan(values)
    filled = np.interp(index, index[known], values[known])  # holds the end values beyond the last point
    return filled, int(observed[0])


@dataclass(frozen=True)
class Scaled:
    """Normalised values and how to undo it: ``original = normalised * scale + shift``."""

    values: np.ndarray
    shift: float
    scale: float


def normalise(values: np.ndarray, scaling: str) -> Scaled:
    if scaling == "last_value_mad":
        shift = float(values[-1])
        scale = float(np.mean(np.abs(np.diff(values)))) if values.size > 1 else 0.0
    elif scaling == "zscore":
        shift, scale = float(values.mean()), float(values.std())
    else:
        raise ValueError(f"unknown scaling {scaling!r}; known: {', '.join(SCALINGS)}")
    scale = max(scale, SCALE_FLOOR_US)
    return Scaled(np.clip((values - shift) / scale, -INPUT_CLIP, INPUT_CLIP), shift, scale)


def padded_inputs(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded (B, T, 1) inputs, their (B, T) attention mask and position ids."""
    length = max(row.size for row in rows)
    inputs = np.zeros((len(rows), length), dtype=np.float32)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        inputs[i, length - row.size :] = row
        mask[i, length - row.size :] = 1
    attention = torch.from_numpy(mask)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    return torch.from_numpy(inputs)[..., None], attention, positions


def forecast_normalised(model: TimeMoeForPrediction, rows: list[np.ndarray], horizon: int) -> torch.Tensor:
    """(B, horizon) forecasts in each row's normalised units, from one forward pass.

    Inputs are 3-D: the library's forward unsqueezes a 2-D input in place, mutating the caller's
    tensor (and ``generate`` relies on that); a fresh 3-D tensor is never touched.
    """
    inputs, attention, positions = padded_inputs(rows)
    longest = max(model.config.horizon_lengths)
    out = model(
        input_ids=inputs,
        attention_mask=attention,
        position_ids=positions,
        use_cache=False,
        return_dict=True,
        max_horizon_length=longest,
    )
    return out.logits[:, -1, :horizon]


class TimeMoeModel:
    """One Time-MoE checkpoint as a point forecaster (``chronotick.kit.spread.PointForecaster``)."""

    def __init__(self, name: str, model_id: str) -> None:
        # The library's own loader: a local directory or a hub id, safetensors, no remote code.
        self._model = TimeMoeForPrediction.from_pretrained(
            model_id, torch_dtype=torch.float32, use_safetensors=True
        ).eval()
        self._scaling = str(getattr(self._model.config, "chronotick_scaling", "zscore"))
        if self._scaling not in SCALINGS:
            raise ValueError(f"{model_id}: unknown chronotick_scaling {self._scaling!r}")
        self._info = ModelInfo(
            name=name,
            model_id=model_id,
            model_version=weights_version(model_id),
            library="sktime.libs.timemoe",
            min_context=MIN_CONTEXT,
            max_context=MAX_CONTEXT,
            max_horizon=max(self._model.config.horizon_lengths),
            native_quantile_levels=SPREAD_LEVELS.tolist(),  # what ResidualSpread answers on
            past_covariates=False,
            future_covariates=False,
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def point_forecast(self, batch: ModelBatch) -> np.ndarray:
        scaled = [normalise(fill_missing(c)[0], self._scaling) for c in batch.contexts]
        # Rows of similar length share a pass (ResidualSpread's backtests are shorter than the real
        # contexts), so little compute goes to padding; padding never changes a row's answer.
        order = sorted(range(len(scaled)), key=lambda i: scaled[i].values.size)
        points = np.empty((len(scaled), batch.horizon))
        with torch.inference_mode():
            for start in range(0, len(order), ROWS_PER_PASS):
                chunk = order[start : start + ROWS_PER_PASS]
                rows = [scaled[i].values for i in chunk]
                points[chunk] = forecast_normalised(self._model, rows, batch.horizon).to(torch.float64).numpy()
        scale = np.array([s.scale for s in scaled])[:, None]
        shift = np.array([s.shift for s in scaled])[:, None]
        return points * scale + shift
