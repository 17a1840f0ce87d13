"""The family-independent kit for training micro checkpoints on synthetic clocks.

Every model family (`services/<family>/chronotick_<family>/train.py`) builds its library's real class with small
dimensions, trains it on `chronotick.synthetic` clocks and saves it in the library's own format, so the service
loads it with the library's real loader. What does not depend on the library lives here, once: window sampling, the
relative-to-last-value transform and the kit's input scaling, the pinball loss and step weights, the learning-rate
schedule, the training loop with its wall-clock or step budget, the held-back validation set, the MAE-by-horizon
comparison with `chronotick.baselines`, the model card and the command line. A family's `train.py` holds only its
`ModelSpec`s (build, loss, save, forecast) and calls `main`.

This module imports torch and tqdm at the top: it is only imported by the model environments' training commands,
never by `chronotick/__init__.py`, so the core environment (no torch) keeps importing `chronotick`.
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
from tqdm import tqdm

from chronotick import hardware
from chronotick.baselines import CLASSICAL_FORECASTERS, forecast_all
from chronotick.contract import InputScaling
from chronotick.kit.scaling import scale_windows
from chronotick.synthetic import SCENARIOS, generate_clock, training_windows

EVAL_HORIZONS = (1, 10, 30, 60)  # the steps the service is asked about; every family is scored on the same ones
EVAL_SEED_OFFSET = 10_000  # validation clocks never share a seed with training data
VAL_CROPS_PER_SERIES = 8
LOG_EVERY = 25  # steps averaged into one point of the loss curve


@dataclasses.dataclass(frozen=True)
class Windows:
    """How a family cuts and batches its crops; one value is usually shared by all of a family's models.

    `context` steps are the model's input and `future` steps its training target (a crop is `context + future`).
    `covariates` name the `generate_clock` covariates that covariate pools carry, in channel order.
    """

    context: int
    future: int
    batch_size: int = 64
    covariates: tuple[str, ...] = ("temperature_c", "cpu_load")
    series_len: int = 2048  # each generated series yields many random crops, so the pool stays cheap to generate
    future_clip: float | None = 20.0  # training targets, in context standard deviations (clips about 2 % of windows)
    # Options for families whose recipe differs from the default (the default is Chronos's):
    relative: bool = True  # False: raw crops, for models that normalise by the last value themselves
    # "last-value-mad": relative crops also in units of their context's mean absolute step, exactly as the kit hands
    # them to a checkpoint whose config says so (chronotick.kit.scaling); "first-differences": the steps of those
    # (the future stays levels in that unit).
    scaling: InputScaling = "anchored"
    empty_context: str = "drop"  # a context with nothing observed: "drop" it, "keep" it, or "zero_last" (ctx[-1] = 0)
    short_history_covariates: bool = False  # short histories blank the covariates' past too
    # (p future covariates unknown, p no covariates at all) per augmented covariate crop, NaN = not given.
    hide_covariates: tuple[float, float] | None = None
    covariate_share: int = 4  # covariate clocks: one per `covariate_share` training series (every scenario once)

    def __post_init__(self) -> None:
        if self.empty_context not in ("drop", "keep", "zero_last"):
            raise ValueError(f"empty_context must be drop, keep or zero_last, got {self.empty_context!r}")
        # Augmented short histories keep at least 64 observed steps (`Pool.sample`).
        if self.context <= 65 or self.future < max(EVAL_HORIZONS):
            raise ValueError(f"need context > 65 and future >= {max(EVAL_HORIZONS)}, got {self}")
        if self.scaling != "anchored" and not self.relative:
            raise ValueError(f"scaling {self.scaling!r} needs relative crops")
        if self.series_len < self.crop:
            raise ValueError(f"series_len {self.series_len} is shorter than a crop ({self.crop})")

    @property
    def crop(self) -> int:
        return self.context + self.future


@dataclasses.dataclass
class Batch:
    """Relative windows (raw if not `Windows.relative`; scaled if `Windows.scaling` says so): `past` (B, context) and
    `future` (B, future), NaN where missing.

    `cov_past` (B, K, context) / `cov_future` (B, K, future) are the raw covariates, or None. `scale_us` (B,) maps
    scaled windows back to microseconds (None: they are in microseconds). Where `past` holds steps
    (`first-differences`), `past_offsets` holds the same contexts as offsets in the same unit (what the baselines
    forecast from); otherwise None, and `past` is that.
    """

    past: torch.Tensor
    future: torch.Tensor
    cov_past: torch.Tensor | None = None
    cov_future: torch.Tensor | None = None
    scale_us: torch.Tensor | None = None
    past_offsets: torch.Tensor | None = None

    @property
    def contexts(self) -> torch.Tensor:
        """The contexts as offsets relative to their last value (in this batch's units), whatever the model sees."""
        return self.past if self.past_offsets is None else self.past_offsets

    def in_us(self, values: np.ndarray) -> np.ndarray:
        """(B, ...) values in this batch's units -> microseconds relative to each context's last value."""
        if self.scale_us is None:
            return values
        return values * self.scale_us.numpy().astype(np.float64).reshape(-1, *([1] * (values.ndim - 1)))


@dataclasses.dataclass
class Pool:
    """Generated series to crop from: offsets (N, T) and, for covariate clocks, covariates (N, K, T)."""

    offsets: np.ndarray
    covariates: np.ndarray | None = None

    def sample(self, rng: np.random.Generator, n: int, windows: Windows, *, augment: bool) -> Batch:
        """`n` random crops made relative to their last observed context value (fewer if some are all-NaN).

        `augment` adds what training needs and validation must not see: sign flips, short histories, clipped
        futures. `windows`' options change this for families with another recipe (raw crops, kept empty
        contexts, hidden covariates, no clipping).
        """
        rows = rng.integers(0, len(self.offsets), n)
        starts = rng.integers(0, self.offsets.shape[1] - windows.crop + 1, n)
        return self.cut(rows, starts, windows, rng, augment=augment)

    def cut(
        self, rows: np.ndarray, starts: np.ndarray, windows: Windows, rng: np.random.Generator, *, augment: bool
    ) -> Batch:
        """The crops of `rows` starting at `starts`, as `sample` makes them (`rng` is only used to augment)."""
        n = len(rows)
        context, crop = windows.context, windows.crop
        idx = starts[:, None] + np.arange(crop)
        win = self.offsets[rows[:, None], idx].astype(np.float64)
        past, future = win[:, :context], win[:, context:]
        if windows.relative:
            past, future = relative(past, future)
        cov = None
        if self.covariates is not None:
            cov = self.covariates[rows[:, None, None], np.arange(self.covariates.shape[1])[:, None], idx[:, None]]
        if augment:
            if cov is None:
                # Clocks drift either way, and TimesFM's flip invariance averages f(x) with -f(-x) at inference.
                sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)[:, None]
                past, future = past * sign, future * sign
            elif windows.hide_covariates is not None:
                # Some tasks do not know the covariates ahead (a planned load does), some send none at all.
                p_future, p_all = windows.hide_covariates
                cov[rng.random(n) < p_future, :, context:] = np.nan
                cov[rng.random(n) < p_all] = np.nan
            # Short histories (service start-up) arrive as leading NaN.
            short = rng.random(n) < 0.2
            for i in np.flatnonzero(short):
                cut = rng.integers(1, context - 64)
                past[i, :cut] = np.nan
                if cov is not None and windows.short_history_covariates:
                    cov[i, :, :cut] = np.nan
            if windows.future_clip is not None:
                # Spikes and servo steps can put a future value thousands of context standard deviations away;
                # clipped, they cannot dominate a quantile loss in any of the models' normalised spaces.
                bound = windows.future_clip * np.maximum(np.nanstd(past, axis=1, keepdims=True), 1.0)
                future = np.clip(future, -bound, bound)
        scale_us = offsets = None
        if windows.scaling != "anchored":
            # After the augmentation: a short history is scaled by its own steps, as the service scales it.
            seen, future, scale_us = scale_windows(past, future, windows.scaling)
            if windows.scaling == "first-differences":
                offsets = past / scale_us[:, None]
            past = seen
        empty = np.isnan(past).all(axis=1)
        if windows.empty_context == "zero_last":
            past[empty, -1] = 0.0
        # A context with nothing observed (a long outage) teaches nothing, and TimesFM's own NaN filling and the
        # baselines raise on it.
        keep = ~empty if windows.empty_context == "drop" else np.ones(len(past), dtype=bool)
        return Batch(
            _tensor(past[keep]),
            _tensor(future[keep]),
            None if cov is None else _tensor(cov[keep, :, :context]),
            None if cov is None else _tensor(cov[keep, :, context:]),
            None if scale_us is None else _tensor(scale_us[keep]),
            None if offsets is None else _tensor(offsets[keep]),
        )


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32)


def relative(past: np.ndarray, future: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subtract each row's last observed context value (what the service does around every model call).

    A row with nothing observed is left as it is (its last value counts as 0).
    """
    observed = ~np.isnan(past)
    last_idx = past.shape[1] - 1 - np.argmax(observed[:, ::-1], axis=1)
    last = np.where(observed.any(axis=1), past[np.arange(len(past)), last_idx], 0.0)[:, None]
    return past - last, future - last


@dataclasses.dataclass(frozen=True)
class Pools:
    """What every model of a run trains on: univariate clocks, and covariate clocks for covariate models."""

    univariate: Pool
    covariate: Pool | None  # None when no model of the run uses covariates


def make_pools(seed: int, n_series: int, windows: Windows, *, covariates: bool = True) -> Pools:
    """Univariate pool from `training_windows`; a covariate pool from `generate_clock` (seeded `seed + 1`)."""
    univariate = Pool(training_windows(n_series, windows.series_len, seed=seed))
    cov = covariate_pool(seed + 1, covariate_series(n_series, windows.covariate_share), windows) if covariates else None
    return Pools(univariate, cov)


def covariate_series(n_series: int, share: int = 4) -> int:
    """How many covariate clocks go with `n_series` training series: every scenario at least once."""
    return max(len(SCENARIOS), n_series // share)


def covariate_pool(seed: int, n_series: int, windows: Windows) -> Pool:
    """`generate_clock` clocks cycling through every scenario (clock i seeded `seed * 1000 + i`), with covariates."""
    clocks = [
        generate_clock(SCENARIOS[i % len(SCENARIOS)], windows.series_len, seed=seed * 1000 + i) for i in range(n_series)
    ]
    return Pool(
        np.stack([c.observed_offset_us for c in clocks]).astype(np.float32),
        np.stack([[c.covariates[k] for k in windows.covariates] for c in clocks]).astype(np.float32),
    )


def pinball(
    pred: torch.Tensor,
    target: torch.Tensor,
    levels: torch.Tensor,
    valid: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean quantile loss over valid targets; `levels` broadcasts against the trailing quantile axis of `pred`,
    `weights` (e.g. `horizon_weights`) against `target`."""
    err = torch.where(valid, target, 0.0).unsqueeze(-1) - pred
    scored = valid if weights is None else valid * weights
    loss = torch.maximum(levels * err, (levels - 1) * err) * scored.unsqueeze(-1)
    return loss.sum() / (valid.sum() * pred.shape[-1]).clamp(min=1)


def horizon_weights(steps: int) -> torch.Tensor:
    """(steps,) loss weights 1/sqrt(h), mean 1: a random walk's error grows as sqrt(h), so unweighted the far steps
    dominate the loss and a model learns little about the next seconds, where "no change" is hard to beat."""
    weights = torch.arange(1, steps + 1, dtype=torch.float32).rsqrt()
    return weights / weights.mean()


def naive_weights(naive_error: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(steps,) loss weights, mean 1, from "no change"'s absolute errors (..., steps) on this batch: each step is
    weighted by the inverse of their mean, so every step counts as a ratio to the naive forecast (the measure the
    product is judged by). For losses in a space whose unit is far larger than one step's motion (a model's own
    std normalisation), where even 1/sqrt(h) leaves the first steps all but unscored."""
    counts = valid.flatten(0, -2).sum(0).clamp(min=1)
    mean_error = torch.where(valid, naive_error, 0.0).flatten(0, -2).sum(0) / counts
    weights = 1.0 / mean_error.clamp(min=mean_error.max().clamp(min=1e-12) * 1e-3)
    return (weights / weights.mean()).detach()


def lr_at(progress: float, peak: float = 1e-3, warmup: float = 0.03) -> float:
    """Linear warm-up then cosine decay over the run (progress in [0, 1], by steps or by wall time)."""
    if progress < warmup:
        return peak * progress / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / (1 - warmup))))


def save_pretrained(model: torch.nn.Module, out_dir: Path) -> None:
    """`ModelSpec.save` for Hugging Face style models (transformers >= 5 writes safetensors only)."""
    save = getattr(model, "save_pretrained", None)
    if not callable(save):
        raise TypeError(f"{type(model).__name__} has no save_pretrained; give its ModelSpec a save function")
    save(str(out_dir))


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything the shared loop, evaluation and model card need to know about one model.

    - `build()` returns the library's model, freshly initialised (the loop seeds torch first).
    - `loss(model, batch)` scores one training batch (relative windows, see `Batch`).
    - `save(model, out_dir)` writes the checkpoint in the library's own format, with a `config.json`.
    - `forecast(model_dir, val, horizon, use_covariates)` loads the saved checkpoint with the library's real loader
      and returns the (B, horizon) point forecast for `val.past`, relative like the inputs.
    - `load_call`, `hub_id` and `loss_description` are the model card's wording; `about`, `real_weights` and
      `card_notes` add to it or replace its defaults.
    - `warm_start(model, out_dir)`, if given, may load weights into the freshly built model (e.g. from a sibling
      checkpoint already in `out_dir`) and returns the card's "Started from" wording, or None if it did not.
    - `validation(seed, n_series, windows)`, if given, replaces `validation_set` for this model.
    - `load(dir_or_hub_id)`, if given, loads a saved checkpoint with the library's own loader as the module that
      `loss` and `save` take, so `chronotick.finetune` can train it further.
    """

    name: str  # the --model choice
    dir_name: str  # checkpoint directory under --out
    hub_id: str  # the released checkpoint this micro model stands in for
    windows: Windows
    build: Callable[[], torch.nn.Module]
    loss: Callable[[torch.nn.Module, Batch], torch.Tensor]
    save: Callable[[torch.nn.Module, Path], None]
    forecast: Callable[[Path, Batch, int, bool], np.ndarray]
    load_call: str
    loss_description: str
    uses_covariates: bool = False  # then every other training batch comes from the covariate pool
    covariate_note: str = "every other batch is covariate tasks."  # the card's wording for that
    covariate_schedule: str = "alternate"  # "always": every batch comes from the covariate pool
    covariate_batch_size: int | None = None  # None: half of `windows.batch_size`
    covariate_label: str = "covariates"  # the validation table's row for the forecast with covariates
    forecast_kind: str = "median"  # what `forecast` returns, for the card and the validation table
    peak_lr: float = 1e-3
    log_every: int = LOG_EVERY  # steps averaged into one point of the loss curve
    warm_start: Callable[[torch.nn.Module, Path], str | None] | None = None
    validation: Callable[[int, int, Windows], Batch] | None = None
    load: Callable[[str], torch.nn.Module] | None = None
    about: str = ""  # appended to the card's first paragraph
    real_weights: str | None = None  # the card's "Real weights" line; None: set the model id to `hub_id`
    card_notes: tuple[str, ...] = ()  # extra bullets of the card's Data section

    def __post_init__(self) -> None:
        if self.covariate_schedule not in ("alternate", "always"):
            raise ValueError(f"covariate_schedule must be alternate or always, got {self.covariate_schedule!r}")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    model: torch.nn.Module
    curve: list[tuple[int, float]]  # (step, mean loss over the last LOG_EVERY steps)
    steps: int
    seconds: float
    started_from: str | None = None  # what `ModelSpec.warm_start` loaded, in the card's words


def train_one(
    spec: ModelSpec, pools: Pools, *, seed: int, minutes: float, steps: int | None, out_dir: Path | None = None
) -> TrainResult:
    """Train until `steps` (if given) or `minutes` of wall time; AdamW, warm-up + cosine, grad-norm clip 1.0."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    batch_size = spec.windows.batch_size
    cov_batch_size = spec.covariate_batch_size or batch_size // 2
    model = spec.build()
    started_from = None
    if spec.warm_start is not None and out_dir is not None:
        started_from = spec.warm_start(model, out_dir)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=spec.peak_lr, weight_decay=0.01)
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
            group["lr"] = lr_at(progress, peak=spec.peak_lr)
        # Covariate models alternate plain and covariate batches so both input paths are trained (or, "always",
        # train on covariate batches only).
        use_cov = spec.uses_covariates and (spec.covariate_schedule == "always" or step % 2 == 1)
        pool = pools.covariate if use_cov else pools.univariate
        assert pool is not None, "make_pools(covariates=False) for a model that uses covariates"
        batch = pool.sample(rng, cov_batch_size if use_cov else batch_size, spec.windows, augment=True)
        loss = spec.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        step += 1
        bar.update()
        if step % spec.log_every == 0 or (steps and step == steps):
            curve.append((step, float(np.mean(recent))))
            bar.set_postfix(loss=f"{curve[-1][1]:.4f}")
            recent = []
    bar.close()
    model.eval()
    return TrainResult(model, curve, step, time.monotonic() - start, started_from)


def validation_set(seed: int, n_series: int, windows: Windows, per_series: int = VAL_CROPS_PER_SERIES) -> Batch:
    """Held-back clocks (seeds offset by EVAL_SEED_OFFSET), every scenario, with covariates for models that use
    them; not augmented, so the truth is the observed future."""
    pool = covariate_pool(seed + EVAL_SEED_OFFSET, n_series, windows)
    return sample_validation(pool, seed, n_series, windows, per_series)


def sample_validation(
    pool: Pool, seed: int, n_series: int, windows: Windows, per_series: int = VAL_CROPS_PER_SERIES
) -> Batch:
    """`n_series * per_series` crops of `pool`, not augmented, drawn from `seed + EVAL_SEED_OFFSET`."""
    return pool.sample(np.random.default_rng(seed + EVAL_SEED_OFFSET), n_series * per_series, windows, augment=False)


def mae_by_horizon(pred: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    """MAE at each of EVAL_HORIZONS (1-based steps), missing truth ignored."""
    return {h: float(np.nanmean(np.abs(pred[:, h - 1] - truth[:, h - 1]))) for h in EVAL_HORIZONS}


def evaluate(spec: ModelSpec, model_dir: Path, val: Batch) -> dict[str, dict[int, float]]:
    """The saved model's forecast (loaded as the service would) vs the baselines, on the same contexts."""
    horizon = max(EVAL_HORIZONS)
    truth = val.in_us(val.future[:, :horizon].numpy())
    ctx = val.in_us(val.contexts.numpy())
    rows = {
        f"{spec.dir_name} ({spec.forecast_kind})": mae_by_horizon(
            val.in_us(spec.forecast(model_dir, val, horizon, False)), truth
        ),
        **classical_maes(ctx, truth, horizon),
    }
    if spec.uses_covariates:
        with_covariates = val.in_us(spec.forecast(model_dir, val, horizon, True))
        rows[f"{spec.dir_name} + {spec.covariate_label}"] = mae_by_horizon(with_covariates, truth)
    return rows


def classical_maes(ctx: np.ndarray, truth: np.ndarray, horizon: int) -> dict[str, dict[int, float]]:
    """The classical members the fused forecast competes with (the gateway's own), on the same contexts."""
    rows: dict[str, list[np.ndarray]] = {forecaster.name: [] for forecaster in CLASSICAL_FORECASTERS}
    for context in ctx:
        if np.isnan(context).all():
            for name in rows:
                rows[name].append(np.full(horizon, np.nan))
            continue
        for name, forecast in forecast_all(context, horizon).items():
            rows[name].append(forecast.mean_us)
    return {name: mae_by_horizon(np.stack(means), truth) for name, means in rows.items()}


def _lr_text(lr: float) -> str:
    """1e-3 rather than 0.001: the card's historical wording."""
    mantissa, exponent = f"{lr:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _crops_text(spec: ModelSpec, n_series: int, seed: int) -> str:
    """The card's Training bullet, from the `Windows` options (the defaults give Chronos's wording)."""
    windows = spec.windows
    if spec.uses_covariates and spec.covariate_schedule == "always":
        source = "the covariate clocks below only"
    else:
        source = (
            f"`chronotick.synthetic.training_windows({n_series}, {windows.series_len}, seed={seed})`, "
            f"scenarios {', '.join(SCENARIOS)}"
        )
    made = (
        "each made relative to its last observed context value"
        if windows.relative
        else "raw (the model's inputs are normalised from the context, see below)"
    )
    if windows.scaling != "anchored":
        made += (
            " and divided by the context's mean absolute step (`chronotick.kit.scaling`, after the augmentation "
            "below; the service does the same to every request)"
        )
    if windows.scaling == "first-differences":
        made += (
            "; the model sees the context's steps (`steps_between`: level t minus level t - 1, interior gaps bridged "
            "linearly), and its targets stay offsets relative to the last value, scored on the sum of its answered "
            "steps"
        )
    short = "short history" + (", covariates too" if windows.short_history_covariates else "")
    text = (
        f"- Training: {source}; random crops of {windows.context} context + {windows.future} future steps, "
        f"{made}; 20 % get a random run of leading NaN ({short}); "
        + (
            "covariate crops keep their sign"
            if source.startswith("the covariate")
            else "univariate crops flip sign with probability 0.5"
        )
    )
    if windows.future_clip is not None:
        text += f"; future values clipped at {windows.future_clip:g} context standard deviations (spikes, servo steps)"
    if windows.empty_context == "zero_last":
        text += "; a context left with nothing observed gets 0 as its last value"
    return text + "."


def _covariates_text(spec: ModelSpec, n_series: int, seed: int) -> str:
    windows = spec.windows
    text = (
        f"- Covariate clocks: `generate_clock(scenario, {windows.series_len}, seed={seed + 1}*1000+i)` for "
        f"i < {covariate_series(n_series, windows.covariate_share)} (covariates {', '.join(windows.covariates)})"
    )
    if not spec.uses_covariates:
        return text + "; not used by this model."
    text += f"; {spec.covariate_note}"
    if windows.hide_covariates is not None:
        p_future, p_all = windows.hide_covariates
        text += (
            f" Per crop, the future covariates are hidden (NaN: not known ahead) with probability {p_future:g} and "
            f"all covariates with probability {p_all:g}, so the model also answers without them."
        )
    return text


def mae_table(maes: dict[str, dict[int, float]], digits: int = 2) -> list[str]:
    """Markdown rows: one forecaster per row, its MAE at each of EVAL_HORIZONS."""
    return [
        "| forecaster | " + " | ".join(f"h={h}" for h in EVAL_HORIZONS) + " |",
        "|---|" + "---:|" * len(EVAL_HORIZONS),
        *[f"| {name} | " + " | ".join(f"{m[h]:.{digits}f}" for h in EVAL_HORIZONS) + " |" for name, m in maes.items()],
    ]


def model_card(
    spec: ModelSpec,
    model_dir: Path,
    *,
    seed: int,
    n_series: int,
    curve: Sequence[tuple[int, float]],
    n_steps: int,
    seconds: float,
    maes: dict[str, dict[int, float]],
    val_size: int,
    command: str,
    started_from: str | None = None,
) -> str:
    """The checkpoint's README.md: how to load it, what it was trained on and how, and how it validated."""
    windows = spec.windows
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
            + (f" {spec.about}" if spec.about else "")
        ),
        "",
        f"- Load: `{spec.load_call}`",
        f"- Real weights: {spec.real_weights or f'set the model id to `{spec.hub_id}` (needs the Hugging Face hub).'}",
        f"- Reproduce: `{command}`",
        "",
        "## Data",
        _crops_text(spec, n_series, seed),
        _covariates_text(spec, n_series, seed),
        *spec.card_notes,
        (
            f"- Validation: {val_size} crops from `generate_clock` clocks seeded from {seed + EVAL_SEED_OFFSET} "
            "(never seen in training), every scenario equally; truth = future observed offsets (not clipped), NaN "
            f"ignored; the model's {spec.forecast_kind} forecast vs the baselines on the same "
            f"{'relative ' if windows.relative else ''}contexts."
        ),
        "",
        "## Training",
        (
            f"- Seed {seed}, {n_steps} steps of batch {windows.batch_size}, {seconds:.0f} s with "
            f"{torch.get_num_threads()} torch thread(s) on {hardware.describe()}, CPU only (a shared machine: "
            "steps per second varied); AdamW, peak lr "
            f"{_lr_text(spec.peak_lr)}, warm-up + cosine, grad-norm clip 1.0."
        ),
        *([f"- Started from: {started_from or 'random initialisation (seeded).'}"] if spec.warm_start else []),
        f"- Loss: {spec.loss_description}",
        "",
        "| step | loss |",
        "|---:|---:|",
        *[f"| {s} | {v:.4f} |" for s, v in picks],
        "",
        "## Validation MAE (us)",
        "",
        *mae_table(maes),
        "",
        "## Config",
        "```json",
        json.dumps(config, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


def train_save_evaluate(
    spec: ModelSpec,
    pools: Pools,
    val: Batch,
    out_dir: Path,
    *,
    seed: int,
    minutes: float,
    steps: int | None,
    n_series: int,
    command: str,
) -> tuple[Path, TrainResult, dict[str, dict[int, float]]]:
    """One model, end to end: train, save under `out_dir / spec.dir_name`, validate, write the card."""
    result = train_one(spec, pools, seed=seed, minutes=minutes, steps=steps, out_dir=out_dir)
    model_dir = out_dir / spec.dir_name
    model_dir.mkdir(parents=True, exist_ok=True)
    spec.save(result.model, model_dir)
    for path in model_dir.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; an image running as another user must read the weights
    maes = evaluate(spec, model_dir, val)
    (model_dir / "README.md").write_text(
        model_card(
            spec,
            model_dir,
            seed=seed,
            n_series=n_series,
            curve=result.curve,
            n_steps=result.steps,
            seconds=result.seconds,
            maes=maes,
            val_size=len(val.past),
            command=command,
            started_from=result.started_from,
        )
    )
    return model_dir, result, maes


def main(
    specs: dict[str, ModelSpec],
    argv: Sequence[str] | None = None,
    *,
    default_out: Path,
    description: str,
    command_prefix: str,
    default_minutes: float = 5.0,
    default_series: int = 1024,
    default_val_series: int = 48,
) -> None:
    """A family's training command: `--model NAME|all --out --minutes --seed --steps --series --val-series`.

    `command_prefix` is how the family's module is run from the repository root (e.g.
    "PYTHONPATH=shared:services/chronos python -m chronotick_chronos.train"); each card's reproduce line is it plus
    the arguments that made the checkpoint. Pools and validation crops are made once per distinct `Windows`.
    """
    series_lens = sorted({spec.windows.series_len for spec in specs.values()})
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=[*specs, "all"], default="all")
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--minutes", type=float, default=default_minutes, help="wall-time budget per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="fixed step count instead of --minutes")
    parser.add_argument(
        "--series",
        type=int,
        default=default_series,
        help=f"generated training series of {'/'.join(map(str, series_lens))} steps",
    )
    parser.add_argument(
        "--val-series",
        type=int,
        default=default_val_series,
        help=f"held-back clocks ({VAL_CROPS_PER_SERIES} crops each)",
    )
    args = parser.parse_args(argv)

    # One thread: these models are too small for intra-op parallelism to pay, and on a busy 2-core machine a
    # second thread makes every op wait at a barrier (Chronos-2: 0.28 s/step with 1 thread, 1.3 s with 2).
    torch.set_num_threads(1)
    names = list(specs) if args.model == "all" else [args.model]
    pools: dict[Windows, Pools] = {}
    vals: dict[tuple[Windows, object], Batch] = {}
    for name in names:
        spec = specs[name]
        if spec.windows not in pools:
            # The covariate clocks are only generated if a model of this run trains on them.
            covariates = any(specs[n].uses_covariates for n in names if specs[n].windows == spec.windows)
            pools[spec.windows] = make_pools(args.seed, args.series, spec.windows, covariates=covariates)
        make_val = spec.validation or validation_set
        if (spec.windows, make_val) not in vals:
            vals[spec.windows, make_val] = make_val(args.seed, args.val_series, spec.windows)
        val = vals[spec.windows, make_val]
        budget = f"--steps {args.steps}" if args.steps else f"--minutes {args.minutes:g}"
        command = (
            f"{command_prefix} --model {name} --out {args.out} --seed {args.seed} {budget} "
            f"--series {args.series} --val-series {args.val_series}"
        )
        model_dir, result, maes = train_save_evaluate(
            spec,
            pools[spec.windows],
            val,
            args.out,
            seed=args.seed,
            minutes=args.minutes,
            steps=args.steps,
            n_series=args.series,
            command=command,
        )
        print(f"{name}: {result.steps} steps in {result.seconds:.0f} s -> {model_dir}")
        for row, m in maes.items():
            print(f"  {row:32s} " + "  ".join(f"h{h}={v:.2f}" for h, v in m.items()))
