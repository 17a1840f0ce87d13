"""Time-MoE behind the kit's point-forecaster interface, through ``sktime.libs.timemoe``.

Time-MoE is decoder-only and reads one token per sample; each position has output heads for the
next 1, 8, 32 and 64 steps (``horizon_lengths``). A forecast here is ONE forward pass whose last
position answers with the longest head, cut to the horizon: for 60 steps that took 0.7x the time of
the library's ``generate`` (36 vs 52 ms at batch 1, context 512; generate chains the 32-step
head) and never feeds a prediction back as input. Horizons beyond the longest head are refused
by the kit (``max_horizon``).

The pass runs the library's own modules and weights (embedding, norms, projections, rotary
embedding, experts, heads) in the library's order, with two inference shortcuts that do not change
the answer (it matches the library's ``forward`` to ~1e-6 in normalised units, a test checks):

* attention is torch's fused ``scaled_dot_product_attention`` instead of the library's eager
  attention, which materialises every (T x T) score matrix and was 3/4 of the time; its mask is
  boolean (causal and padding), built in 0.5 ms where the library's additive one took 13;
* the last layer is computed at the last position only, the only one the forecast reads (its keys
  and values still come from every position).

Measured on the request path (context 512 plus the three 452-392 sample backtests of
``ResidualSpread``, one pass, one thread, a 2-core machine shared with others, load 2): 162 ms
through the library's ``forward``, 27 ms here.

Preprocessing (the model has no mask for missing samples):

* leading missing samples (a short history) become left padding, masked out of attention, with
  position ids that start at the first real sample, so a context padded inside a batch gives what
  it gives alone;
* interior missing samples are linearly interpolated, trailing ones hold the last observed value;
* the scaling is the one the checkpoint was trained with (``chronotick_input_scaling`` in its config).
  ChronoTick's checkpoints say ``chronotick_input_scaling: last-value-mad`` in their ``config.json``:
  the kit (``chronotick.kit.scaling``) hands each context relative to its last observed value and
  divided by its mean absolute step, maps the answer back, and this adapter passes the context
  through as it is. A released checkpoint (no key) is ``anchored``: the kit hands it the context
  relative to its last value in microseconds and, as upstream does (the model has no normalisation
  of its own), this adapter z-scores it (subtract the mean, divide by the std) and undoes that on
  the forecast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sktime.libs.timemoe import TimeMoeForPrediction
from sktime.libs.timemoe.timemoe import TimeMoeDecoderLayer, repeat_kv, rotate_half

from chronotick.contract import InputScaling, ModelInfo
from chronotick.kit import ModelBatch, weights_version
from chronotick.kit.scaling import INPUT_CLIP, SCALE_FLOOR_US, input_scaling
from chronotick.kit.spread import SPREAD_LEVELS

MAX_CONTEXT = 512
MIN_CONTEXT = 8
# Rows per forward pass: larger passes share the weights' cache traffic until the activations outgrow
# the cache. Measured over 32 contexts of 392-512 samples, one thread, on a 2-core machine shared
# with others (load 4.6): 29 ms per row alone, 22 in pairs, 19 by 4, 17 by 8, 22 by 16, 27 by 32.
ROWS_PER_PASS = 8


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
    """What the model reads and how to undo it: ``given = values * scale + shift``."""

    values: np.ndarray
    shift: float
    scale: float


def model_values(context: np.ndarray, scaling: InputScaling) -> Scaled:
    """A filled context as the kit handed it -> the model's input. ``last-value-mad``: the kit scaled it, as it is;
    ``anchored`` (released checkpoints): z-scored here, as upstream does (std floored at the kit's floor, clipped at
    its clip)."""
    if scaling == "last-value-mad":
        return Scaled(context, 0.0, 1.0)
    shift, scale = float(context.mean()), max(float(context.std()), SCALE_FLOOR_US)
    return Scaled(np.clip((context - shift) / scale, -INPUT_CLIP, INPUT_CLIP), shift, scale)


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


def attention_mask_4d(attention: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) boolean mask from (B, T) padding flags: each position sees itself and the real
    samples before it. A padding position sees only itself, so its (unused) output stays finite:
    a row with nothing to attend to would be NaN, and NaN times a zero weight is still NaN."""
    length = attention.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    return (causal & attention.bool()[:, None, None, :]) | torch.eye(length, dtype=torch.bool)


def _decoder_layer(
    layer: TimeMoeDecoderLayer, hidden: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, queries: int
) -> torch.Tensor:
    """The library's decoder layer (pre-norm attention, then experts) for the last ``queries`` positions.

    Keys and values come from every position; ``mask`` is ``attention_mask_4d``'s.
    """
    attn = layer.self_attn
    batch, length, _ = hidden.shape
    normed = layer.input_layernorm(hidden)

    def heads(values: torch.Tensor, count: int) -> torch.Tensor:
        return values.view(batch, values.shape[1], count, attn.head_dim).transpose(1, 2)

    query = heads(attn.q_proj(normed[:, -queries:]), attn.num_heads)
    key = heads(attn.k_proj(normed), attn.num_key_value_heads)
    value = heads(attn.v_proj(normed), attn.num_key_value_heads)
    cos, sin = attn.rotary_emb(value, seq_len=length)
    cos_q, sin_q = cos[positions[:, -queries:]].unsqueeze(1), sin[positions[:, -queries:]].unsqueeze(1)
    cos_k, sin_k = cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)
    query = query * cos_q + rotate_half(query) * sin_q
    key = key * cos_k + rotate_half(key) * sin_k
    attended = F.scaled_dot_product_attention(
        query,
        repeat_kv(key, attn.num_key_value_groups),
        repeat_kv(value, attn.num_key_value_groups),
        attn_mask=mask[..., -queries:, :],
    )
    hidden = hidden[:, -queries:] + attn.o_proj(attended.transpose(1, 2).reshape(batch, queries, attn.hidden_size))
    mixed, _ = layer.ffn_layer(layer.post_attention_layernorm(hidden))
    return hidden + mixed


def forecast_normalised(model: TimeMoeForPrediction, rows: list[np.ndarray], horizon: int) -> torch.Tensor:
    """(B, horizon) forecasts in each row's normalised units from one pass (see the module's docstring)."""
    inputs, attention, positions = padded_inputs(rows)
    length = attention.shape[-1]
    mask = attention_mask_4d(attention)
    hidden = model.model.embed_layer(inputs)
    layers = model.model.layers
    for index, layer in enumerate(layers):
        hidden = _decoder_layer(layer, hidden, mask, positions, queries=1 if index == len(layers) - 1 else length)
    longest = model.lm_heads[model.horizon_length_map[max(model.config.horizon_lengths)]]
    return longest(model.model.norm(hidden))[:, -1, :horizon]


class TimeMoeModel:
    """One Time-MoE checkpoint as a point forecaster (``chronotick.kit.spread.PointForecaster``)."""

    def __init__(self, name: str, model_id: str) -> None:
        # The library's own loader: a local directory or a hub id, safetensors, no remote code.
        self._model = TimeMoeForPrediction.from_pretrained(
            model_id, torch_dtype=torch.float32, use_safetensors=True
        ).eval()
        try:
            self._scaling = input_scaling(self._model.config.to_dict())
        except ValueError as error:
            raise ValueError(f"{model_id}: {error}") from None
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
            input_scaling=self._scaling,
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def point_forecast(self, batch: ModelBatch) -> np.ndarray:
        scaled = [model_values(fill_missing(c)[0], self._scaling) for c in batch.contexts]
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
