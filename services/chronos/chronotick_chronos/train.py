"""Train micro Chronos-Bolt, Chronos-2 and TimesFM 2.5 models on synthetic clocks, in each library's own format.

No model hub is reachable here, so each family's real class is built with small dimensions, trained on the shared
synthetic clock generator and saved with the library's `save_pretrained`; the service loads it with the library's
real loader, exactly as it would load the hub checkpoint named in each model card.

    python -m chronotick_chronos.train [--model chronos-bolt|chronos-2|timesfm-2.5|all] [--out DIR]
                                       [--minutes N] [--seed S] [--steps N]

One loop serves the three models; each `ModelSpec` says how to build, score a batch (loss), save and forecast.
Every window is made relative to its last observed context value, as the service does before calling a model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from chronos import BaseChronosPipeline, Chronos2Pipeline, ChronosBoltPipeline
from chronos.chronos2 import Chronos2CoreConfig, Chronos2Model
from chronos.chronos_bolt import ChronosBoltModelForForecasting
from chronotick.baselines import last_value_forecast, linear_fit_forecast
from chronotick.synthetic import SCENARIOS, generate_clock, training_windows
from timesfm.timesfm_2p5.timesfm_2p5_base import (
    linear_interpolation,
    strip_leading_nans,
)
from timesfm.torch.util import revin, update_running_stats
from tqdm import tqdm
from transformers import PreTrainedModel, T5Config

from chronotick_chronos.timesfm_loader import (
    HUB_ID as TIMESFM_HUB_ID,
)
from chronotick_chronos.timesfm_loader import (
    QUANTILE_COLUMNS,
    MicroDims,
    MicroModule,
    build_micro,
    load_timesfm_2p5,
)

CONTEXT = 512
CHRONOS_HORIZON = 64  # Chronos-Bolt's and Chronos-2's one-shot horizon (4 patches of 16)
TIMESFM_HORIZON = 128  # TimesFM's output patch: every position predicts 128 steps
SERIES_LEN = 2048  # each generated series yields many random crops, so the pool stays cheap to generate
CROP = CONTEXT + TIMESFM_HORIZON  # one crop length serves all three models
BATCH = 64
COVARIATES = ("temperature_c", "cpu_load")
EVAL_HORIZONS = (1, 10, 30, 60)
FUTURE_CLIP = 20.0  # training targets, in context standard deviations (clips about 2 % of windows)
EVAL_SEED_OFFSET = 10_000  # validation clocks never share a seed with training data
BOLT_QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
# The 21-level grid of the released Chronos-2 checkpoints, so the service's quantile code is the same for both.
CHRONOS2_QUANTILES = [0.01, 0.05, *[round(0.1 + 0.05 * i, 2) for i in range(17)], 0.95, 0.99]


@dataclasses.dataclass
class Batch:
    """Relative windows: `past` (B, CONTEXT) and `future` (B, CROP - CONTEXT), NaN where missing.

    `cov_past` (B, 2, CONTEXT) / `cov_future` (B, 2, CROP - CONTEXT) are the raw covariates, or None.
    """

    past: torch.Tensor
    future: torch.Tensor
    cov_past: torch.Tensor | None = None
    cov_future: torch.Tensor | None = None


@dataclasses.dataclass
class Pool:
    """Generated series to crop from: offsets (N, T) and, for covariate clocks, covariates (N, 2, T)."""

    offsets: np.ndarray
    covariates: np.ndarray | None = None

    def sample(self, rng: np.random.Generator, n: int, *, augment: bool) -> Batch:
        rows = rng.integers(0, len(self.offsets), n)
        starts = rng.integers(0, self.offsets.shape[1] - CROP + 1, n)
        idx = starts[:, None] + np.arange(CROP)
        win = self.offsets[rows[:, None], idx].astype(np.float64)
        past, future = relative(win[:, :CONTEXT], win[:, CONTEXT:])
        cov = None
        if self.covariates is not None:
            cov = self.covariates[rows[:, None, None], np.arange(len(COVARIATES))[:, None], idx[:, None]]
        if augment:
            if cov is None:
                # Clocks drift either way, and TimesFM's flip invariance averages f(x) with -f(-x) at inference.
                sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)[:, None]
                past, future = past * sign, future * sign
            # Short histories (service start-up) arrive as leading NaN.
            short = rng.random(n) < 0.2
            for i in np.flatnonzero(short):
                past[i, : rng.integers(1, CONTEXT - 64)] = np.nan
            # Spikes and servo steps can put a future value thousands of context standard deviations away; clipped,
            # they cannot dominate a quantile loss in any of the models' normalised spaces.
            bound = FUTURE_CLIP * np.maximum(np.nanstd(past, axis=1, keepdims=True), 1.0)
            future = np.clip(future, -bound, bound)
        # A context with nothing observed (a long outage) teaches nothing, and TimesFM's own NaN filling and the
        # baselines raise on it.
        keep = ~np.isnan(past).all(axis=1)
        return Batch(
            _tensor(past[keep]),
            _tensor(future[keep]),
            None if cov is None else _tensor(cov[keep, :, :CONTEXT]),
            None if cov is None else _tensor(cov[keep, :, CONTEXT:]),
        )


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32)


def relative(past: np.ndarray, future: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subtract each row's last observed context value (what the service does around every model call)."""
    observed = ~np.isnan(past)
    last_idx = CONTEXT - 1 - np.argmax(observed[:, ::-1], axis=1)
    last = np.where(observed.any(axis=1), past[np.arange(len(past)), last_idx], 0.0)[:, None]
    return past - last, future - last


def make_pools(seed: int, n_series: int) -> tuple[Pool, Pool]:
    """Univariate pool from `training_windows`; a covariate pool from `generate_clock` (for Chronos-2)."""
    uni = Pool(training_windows(n_series, SERIES_LEN, seed=seed))
    cov = covariate_pool(seed + 1, max(len(SCENARIOS), n_series // 4))
    return uni, cov


def covariate_pool(seed: int, n_series: int) -> Pool:
    clocks = [generate_clock(SCENARIOS[i % len(SCENARIOS)], SERIES_LEN, seed=seed * 1000 + i) for i in range(n_series)]
    return Pool(
        np.stack([c.observed_offset_us for c in clocks]).astype(np.float32),
        np.stack([[c.covariates[k] for k in COVARIATES] for c in clocks]).astype(np.float32),
    )


def pinball(pred: torch.Tensor, target: torch.Tensor, levels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean quantile loss over valid targets; `levels` broadcasts against the trailing quantile axis of `pred`."""
    err = torch.where(valid, target, 0.0).unsqueeze(-1) - pred
    loss = torch.maximum(levels * err, (levels - 1) * err) * valid.unsqueeze(-1)
    return loss.sum() / (valid.sum() * pred.shape[-1]).clamp(min=1)


# ---------------------------------------------------------------- Chronos-Bolt


def build_bolt() -> ChronosBoltModelForForecasting:
    # from_dict: the Chronos keys are extra attributes that T5Config's typed signature does not declare.
    config = T5Config.from_dict(
        {
            "d_model": 128, "d_kv": 32, "d_ff": 256, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4,
            "dropout_rate": 0.0, "feed_forward_proj": "relu", "initializer_factor": 0.05,  # as released Bolt
            "vocab_size": 2, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
            "is_encoder_decoder": True,
            "architectures": ["ChronosBoltModelForForecasting"], "chronos_pipeline_class": "ChronosBoltPipeline",
            "chronos_config": {
                "context_length": CONTEXT, "prediction_length": CHRONOS_HORIZON, "input_patch_size": 16,
                "input_patch_stride": 16, "quantiles": BOLT_QUANTILES, "use_reg_token": True,
            },
        }
    )
    return ChronosBoltModelForForecasting(config)


def bolt_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    # The library's own training loss: quantile loss in its instance-normalised space.
    return model(context=batch.past, target=batch.future[:, :CHRONOS_HORIZON]).loss


def bolt_forecast(model_dir: Path, val: Batch, horizon: int, covariates: bool) -> np.ndarray:
    pipe = BaseChronosPipeline.from_pretrained(str(model_dir), device_map="cpu")
    assert isinstance(pipe, ChronosBoltPipeline)
    quantiles, _ = pipe.predict_quantiles(val.past, prediction_length=horizon, quantile_levels=[0.5])
    return quantiles[..., 0].numpy()


# ---------------------------------------------------------------- Chronos-2


def build_chronos2() -> Chronos2Model:
    config = Chronos2CoreConfig(
        d_model=128, d_kv=32, d_ff=256, num_layers=3, num_heads=4, dropout_rate=0.0,
        architectures=["Chronos2Model"], chronos_pipeline_class="Chronos2Pipeline",
        chronos_config={
            "context_length": CONTEXT, "input_patch_size": 16, "input_patch_stride": 16, "output_patch_size": 16,
            "max_output_patches": CHRONOS_HORIZON // 16, "quantiles": CHRONOS2_QUANTILES,
            "use_reg_token": True, "use_arcsinh": True,
        },
    )
    return Chronos2Model(config)


def chronos2_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Rows laid out as the library's training dataset does: each task is a group [target, covariates...].

    Covariate rows carry their future values as `future_covariates` (NaN = not known ahead, i.e. past-only) and
    NaN `future_target`; the library's loss masks them, so only target rows are scored.
    """
    h = CHRONOS_HORIZON
    if batch.cov_past is None or batch.cov_future is None:
        return model(context=batch.past, future_target=batch.future[:, :h], num_output_patches=h // 16).loss
    b, k = batch.past.shape[0], batch.cov_past.shape[1]
    cov_future = batch.cov_future[..., :h].clone()
    # Half the tasks know the covariates ahead (e.g. a planned load), half see them as past-only.
    cov_future[torch.rand(b) < 0.5] = torch.nan
    nan_rows = torch.full((b, 1, h), torch.nan)
    context = torch.cat([batch.past[:, None], batch.cov_past], dim=1).reshape(b * (k + 1), CONTEXT)
    future_covariates = torch.cat([nan_rows, cov_future], dim=1).reshape(b * (k + 1), h)
    future_target = torch.cat([batch.future[:, None, :h], nan_rows.expand(b, k, h)], dim=1).reshape(b * (k + 1), h)
    group_ids = torch.arange(b).repeat_interleave(k + 1)
    return model(
        context=context, group_ids=group_ids, future_covariates=future_covariates,
        future_target=future_target, num_output_patches=h // 16,
    ).loss


def chronos2_inputs(val: Batch, horizon: int, covariates: bool) -> list[dict]:
    """The pipeline's documented dict input; this is the format the service uses with covariates."""
    if not covariates or val.cov_past is None or val.cov_future is None:
        return [{"target": row.numpy()} for row in val.past]
    return [
        {
            "target": val.past[i].numpy(),
            "past_covariates": {name: val.cov_past[i, j].numpy() for j, name in enumerate(COVARIATES)},
            "future_covariates": {name: val.cov_future[i, j, :horizon].numpy() for j, name in enumerate(COVARIATES)},
        }
        for i in range(len(val.past))
    ]


def chronos2_forecast(model_dir: Path, val: Batch, horizon: int, covariates: bool) -> np.ndarray:
    pipe = BaseChronosPipeline.from_pretrained(str(model_dir), device_map="cpu")
    assert isinstance(pipe, Chronos2Pipeline)
    quantiles, _ = pipe.predict_quantiles(
        chronos2_inputs(val, horizon, covariates), prediction_length=horizon, quantile_levels=[0.5]
    )
    return torch.stack([q[0, :, 0] for q in quantiles]).numpy()


# ---------------------------------------------------------------- TimesFM 2.5

# Column 0 is the library's "mean" slot; it is trained as a median too (MAE beat MSE in the earlier probe).
TIMESFM_LEVELS = torch.tensor([0.5, *QUANTILE_COLUMNS])
TIMESFM_MIN_HISTORY = 64  # positions with fewer observed points have a near-meaningless running sigma
TIMESFM_TARGET_CLIP = 50.0  # normalised units; a few near-constant contexts would otherwise dominate the loss


def build_timesfm() -> torch.nn.Module:
    return build_micro(MicroDims()).model


def timesfm_loss(module: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Replicates the library's prefill (`decode`) in training mode, and scores every patch position.

    Like a decoder-only LM, position i sees patches 0..i (causal attention) and predicts the next 128 steps in
    its own running-stats (revin) space. Context NaN are preprocessed with the library's own functions, as
    `forecast` does: leading NaN become masked padding, interior NaN are linearly interpolated.
    """
    assert isinstance(module, MicroModule)
    p, o, q = module.p, module.o, module.q
    values, masks = [], []
    for row in batch.past.numpy():
        v = linear_interpolation(strip_leading_nans(row.astype(np.float64)))
        values.append(np.pad(v, (CONTEXT - len(v), 0)))
        masks.append(np.arange(CONTEXT) < CONTEXT - len(v))
    x = torch.tensor(np.stack(values), dtype=torch.float32).reshape(len(values), -1, p)
    m = torch.tensor(np.stack(masks)).reshape(len(values), -1, p)
    stats = [(torch.zeros(x.shape[0]),) * 3]
    for i in range(x.shape[1]):
        stats.append(update_running_stats(*stats[-1], x[:, i], m[:, i])[0])
    n, mu, sigma = (torch.stack(s, 1) for s in zip(*stats[1:]))
    normed = torch.where(m, 0.0, revin(x, mu, sigma))
    (_, _, point, spread), _ = module(normed, m)

    # Targets of position i: the raw window from the end of patch i on (NaN stays missing).
    full = torch.cat([batch.past, batch.future], dim=1)
    target = full[:, p:].unfold(1, o, p)[:, : x.shape[1]]  # (B, N, o)
    target = revin(target, mu, sigma).clamp(-TIMESFM_TARGET_CLIP, TIMESFM_TARGET_CLIP)
    valid = (n >= TIMESFM_MIN_HISTORY)[..., None] & ~torch.isnan(target)
    point = point.reshape(*target.shape, q)
    spread = spread.reshape(*target.shape[:2], -1, q)[:, :, :o]
    return pinball(point, target, TIMESFM_LEVELS, valid) + pinball(spread, target, TIMESFM_LEVELS, valid)


def save_timesfm(module: torch.nn.Module, out_dir: Path) -> None:
    assert isinstance(module, MicroModule)
    wrapper = build_micro(MicroDims())
    wrapper.model = module
    wrapper.save_pretrained(str(out_dir))


def timesfm_forecast(model_dir: Path, val: Batch, horizon: int, covariates: bool) -> np.ndarray:
    model = load_timesfm_2p5(str(model_dir), max_context=CONTEXT, max_horizon=horizon, batch_size=len(val.past))
    point, _ = model.forecast(horizon=horizon, inputs=[row.numpy() for row in val.past])
    return point


# ---------------------------------------------------------------- shared loop


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    dir_name: str
    hub_id: str
    build: Callable[[], torch.nn.Module]
    loss: Callable[[torch.nn.Module, Batch], torch.Tensor]
    save: Callable[[torch.nn.Module, Path], None]
    forecast: Callable[[Path, Batch, int, bool], np.ndarray]
    load_call: str  # for the model card
    uses_covariates: bool = False


def _save_hf(model: torch.nn.Module, out_dir: Path) -> None:
    assert isinstance(model, PreTrainedModel)
    model.save_pretrained(str(out_dir))  # transformers >= 5 writes safetensors only


SPECS: dict[str, ModelSpec] = {
    "chronos-bolt": ModelSpec(
        "chronos-bolt", "chronos-bolt-micro", "amazon/chronos-bolt-small", build_bolt, bolt_loss, _save_hf,
        bolt_forecast,
        'BaseChronosPipeline.from_pretrained(dir_or_hub_id, device_map="cpu").predict_quantiles('
        "context (B, T) tensor with NaN for missing, prediction_length=60, quantile_levels=[...])",
    ),
    "chronos-2": ModelSpec(
        "chronos-2", "chronos-2-micro", "amazon/chronos-2", build_chronos2, chronos2_loss, _save_hf,
        chronos2_forecast,
        'BaseChronosPipeline.from_pretrained(dir_or_hub_id, device_map="cpu").predict_quantiles('
        '[{"target": ctx, "past_covariates": {"temperature_c": ..., "cpu_load": ...}, "future_covariates": '
        '{...60 values...}}], prediction_length=60, quantile_levels=[...])',
        uses_covariates=True,
    ),
    "timesfm-2.5": ModelSpec(
        "timesfm-2.5", "timesfm-2.5-micro", TIMESFM_HUB_ID, build_timesfm, timesfm_loss, save_timesfm,
        timesfm_forecast,
        "load_timesfm_2p5(dir_or_hub_id, max_context=512, max_horizon=60).forecast(horizon=60, "
        "inputs=[np arrays])",
    ),
}


def lr_at(progress: float, peak: float = 1e-3, warmup: float = 0.03) -> float:
    """Linear warm-up then cosine decay over the run (progress in [0, 1], by steps or by wall time)."""
    if progress < warmup:
        return peak * progress / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / (1 - warmup))))


def train_one(
    spec: ModelSpec, pools: tuple[Pool, Pool], *, seed: int, minutes: float, steps: int | None
) -> tuple[torch.nn.Module, list[tuple[int, float]], int, float]:
    """Train until `steps` (if given) or `minutes` of wall time; returns model, loss curve, steps, seconds."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = spec.build()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    uni, cov = pools
    curve: list[tuple[int, float]] = []
    recent: list[float] = []
    start, step = time.monotonic(), 0
    bar = tqdm(total=steps, desc=spec.name, unit="step")
    while True:
        elapsed = time.monotonic() - start
        progress = step / steps if steps else elapsed / (60 * minutes)
        if progress >= 1:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(progress)
        # Chronos-2 alternates plain and covariate batches so both input paths are trained.
        use_cov = spec.uses_covariates and step % 2 == 1
        batch = (cov if use_cov else uni).sample(rng, BATCH // 2 if use_cov else BATCH, augment=True)
        loss = spec.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        step += 1
        bar.update()
        if step % 25 == 0 or (steps and step == steps):
            curve.append((step, float(np.mean(recent))))
            bar.set_postfix(loss=f"{curve[-1][1]:.4f}")
            recent = []
    bar.close()
    model.eval()
    return model, curve, step, time.monotonic() - start


def validation_set(seed: int, n_series: int, per_series: int) -> Batch:
    """Held-back clocks (different seeds), every scenario, with covariates so Chronos-2 can use them."""
    pool = covariate_pool(seed + EVAL_SEED_OFFSET, n_series)
    return pool.sample(np.random.default_rng(seed + EVAL_SEED_OFFSET), n_series * per_series, augment=False)


def mae_by_horizon(pred: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    return {h: float(np.nanmean(np.abs(pred[:, h - 1] - truth[:, h - 1]))) for h in EVAL_HORIZONS}


def evaluate(spec: ModelSpec, model_dir: Path, val: Batch) -> dict[str, dict[int, float]]:
    horizon = max(EVAL_HORIZONS)
    truth = val.future[:, :horizon].numpy()
    ctx = val.past.numpy()
    rows = {
        f"{spec.dir_name} (median)": mae_by_horizon(spec.forecast(model_dir, val, horizon, False), truth),
        "last_value_forecast": mae_by_horizon(np.stack([last_value_forecast(c, horizon) for c in ctx]), truth),
        "linear_fit_forecast": mae_by_horizon(np.stack([linear_fit_forecast(c, horizon) for c in ctx]), truth),
    }
    if spec.uses_covariates:
        rows[f"{spec.dir_name} + covariates"] = mae_by_horizon(spec.forecast(model_dir, val, horizon, True), truth)
    return rows


def model_card(
    spec: ModelSpec, model_dir: Path, *, seed: int, n_series: int, curve: Sequence[tuple[int, float]],
    n_steps: int, seconds: float, maes: dict[str, dict[int, float]], val_size: int, command: str,
) -> str:
    config = json.loads((model_dir / "config.json").read_text())
    picks = sorted({curve[round(i * (len(curve) - 1) / 9)] for i in range(10)}) if curve else []
    size_kb = sum(f.stat().st_size for f in model_dir.iterdir() if f.suffix == ".safetensors") / 1024
    lines = [
        f"# {spec.dir_name}",
        "",
        (
            f"A micro {spec.name} model (the library's own class with small dimensions, float32, {size_kb:.0f} KiB "
            "of safetensors) trained by ChronoTick on synthetic clock offsets only. It forecasts a clock's offset "
            "relative to its last observed value (subtract it from the context, add it back to the forecast)."
        ),
        "",
        f"- Load: `{spec.load_call}`",
        f"- Real weights: set the model id to `{spec.hub_id}` (needs the Hugging Face hub).",
        f"- Reproduce: `{command}`",
        "",
        "## Data",
        (
            f"- Training: `chronotick.synthetic.training_windows({n_series}, {SERIES_LEN}, seed={seed})`, scenarios "
            f"{', '.join(SCENARIOS)}; random crops of {CONTEXT} context + {CROP - CONTEXT} future steps, each made "
            "relative to its last observed context value; 20 % get a random run of leading NaN (short history); "
            f"univariate crops flip sign with probability 0.5; future values clipped at {FUTURE_CLIP:g} context "
            "standard deviations (spikes, servo steps)."
        ),
        f"- Covariate clocks: `generate_clock(scenario, {SERIES_LEN}, seed={seed + 1}*1000+i)` for "
        f"i < {max(len(SCENARIOS), n_series // 4)} (covariates {', '.join(COVARIATES)})"
        + ("; every other batch is covariate tasks, half with future covariates known." if spec.uses_covariates
           else "; not used by this model."),
        (
            f"- Validation: {val_size} crops from `generate_clock` clocks seeded from {seed + EVAL_SEED_OFFSET} "
            "(never seen in training), every scenario equally; truth = future observed offsets (not clipped), NaN "
            "ignored; the model's median forecast vs the baselines on the same relative contexts."
        ),
        "",
        "## Training",
        (
            f"- Seed {seed}, {n_steps} steps of batch {BATCH}, {seconds:.0f} s with {torch.get_num_threads()} torch "
            "thread(s) (a shared machine: steps per second varied); AdamW, peak lr 1e-3, warm-up + cosine, "
            "grad-norm clip 1.0."
        ),
        "- Loss: " + {
            "chronos-bolt": "the library's `forward(context, target).loss`: quantile loss in its instance-"
            "normalised space, averaged over the 9 quantiles and summed over the 64 steps (the library's reduction).",
            "chronos-2": "the library's `forward(..., future_target=...).loss`: quantile loss in its instance-"
            "normalised space, summed over the 21 quantiles and averaged over the 64 steps; covariate rows masked.",
            "timesfm-2.5": "pinball loss on the point and continuous-quantile heads in the model's running-stats "
            "normalised space, every patch position predicting the next 128 steps (targets clipped at +-50).",
        }[spec.name],
        "",
        "| step | loss |",
        "|---:|---:|",
        *[f"| {s} | {v:.4f} |" for s, v in picks],
        "",
        "## Validation MAE (us)",
        "",
        "| forecaster | " + " | ".join(f"h={h}" for h in EVAL_HORIZONS) + " |",
        "|---|" + "---:|" * len(EVAL_HORIZONS),
        *[f"| {name} | " + " | ".join(f"{m[h]:.2f}" for h in EVAL_HORIZONS) + " |" for name, m in maes.items()],
        "",
        "## Config",
        "```json",
        json.dumps(config, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=[*SPECS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=Path("services/chronos/models"))
    parser.add_argument("--minutes", type=float, default=5.0, help="wall-time budget per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="fixed step count instead of --minutes")
    parser.add_argument("--series", type=int, default=1024, help="generated training series of 2048 steps")
    parser.add_argument("--val-series", type=int, default=48, help="held-back clocks (8 crops each)")
    args = parser.parse_args(argv)

    # One thread: these models are too small for intra-op parallelism to pay, and on a busy 2-core machine a
    # second thread makes every op wait at a barrier (Chronos-2: 0.28 s/step with 1 thread, 1.3 s with 2).
    torch.set_num_threads(1)
    names = list(SPECS) if args.model == "all" else [args.model]
    pools = make_pools(args.seed, args.series)
    val = validation_set(args.seed, args.val_series, 8)
    for name in names:
        spec = SPECS[name]
        model, curve, n_steps, seconds = train_one(
            spec, pools, seed=args.seed, minutes=args.minutes, steps=args.steps
        )
        model_dir = args.out / spec.dir_name
        model_dir.mkdir(parents=True, exist_ok=True)
        spec.save(model, model_dir)
        for path in model_dir.iterdir():
            path.chmod(0o644)  # safetensors writes 0600; an image running as another user must read the weights
        maes = evaluate(spec, model_dir, val)
        budget = f"--steps {args.steps}" if args.steps else f"--minutes {args.minutes:g}"
        command = (
            f"PYTHONPATH=shared:services/chronos python -m chronotick_chronos.train --model {name} "
            f"--out {args.out} --seed {args.seed} {budget} --series {args.series} --val-series {args.val_series}"
        )
        (model_dir / "README.md").write_text(
            model_card(
                spec, model_dir, seed=args.seed, n_series=args.series, curve=curve, n_steps=n_steps,
                seconds=seconds, maes=maes, val_size=len(val.past), command=command,
            )
        )
        print(f"{name}: {n_steps} steps in {seconds:.0f} s -> {model_dir}")
        for row, m in maes.items():
            print(f"  {row:32s} " + "  ".join(f"h{h}={v:.2f}" for h, v in m.items()))


if __name__ == "__main__":
    main()
