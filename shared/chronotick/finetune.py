"""Fine-tuning a family's checkpoint on the early part of one clock's own log.

    python -m chronotick_<family>.finetune --model NAME --log PATH [--train-fraction 0.5] --out DIR

The log is read with ``chronotick.clockdata.read_clock_log`` and put on its grid. Only the samples up
to ``train_fraction`` of its time span are used; the last observed one of them is the **cut**. That
part is split again by time: crops whose whole window ends before the last ``validation_fraction``
train, crops whose future lies in it validate (their context may reach back into the training
crops, as a forecast's would). No crop crosses a detected clock step. The checkpoint the service
would load (the bundled micro one, or the family's ``*_MODEL_ID``) is loaded with the library's own
loader and trained for a few epochs with the family's own loss (``ModelSpec.loss``); after each
epoch the loss on the validation crops decides: the best epoch is kept (epoch 0 is the checkpoint
as loaded, so fine-tuning never makes it worse on validation) and training stops after
``patience`` epochs without improvement. The result is saved with the library's own save format
into DIR, loadable by pointing the family's ``*_MODEL_ID`` at DIR, with ``finetune.json`` (the
source, the cut, the recipe and the validation MAE before and after, next to the last value) and a
short README.md.

``python -m chronotick.bench --after-finetune DIR`` reads the cut back (``read_cut_time_s``) and
evaluates only origins strictly after it: nothing is evaluated on data the model was tuned on.

Only the offset is used: a log's covariate columns are not (the covariate models are tuned on
their univariate path). The record helpers at the top need no torch, so the bench (core
environment) can read a record; the training part imports ``chronotick.training`` (torch) when run.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chronotick.clockdata import read_clock_log

if TYPE_CHECKING:
    import torch

    from chronotick.training import Batch, ModelSpec, Pool

RECORD_NAME = "finetune.json"
DEFAULT_TRAIN_FRACTION = 0.5
DEFAULT_VALIDATION_FRACTION = 0.2  # of the training part, at its end
MAX_TRAIN_CROPS = 4096  # distinct crop starts kept (evenly spaced); a day at 1 Hz has ~40,000
MAX_VALIDATION_CROPS = 256
# Validation crops one sample apart are near copies of each other; 8 apart still see every stretch of the part.
VALIDATION_STRIDE = 8
UNIX_TIME_AFTER_S = 1e9  # 2001: smaller times are a monotonic clock (ptp4l), not a date


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make == ambiguous
class LogSplit:
    """The training part of one log on its grid; nothing after ``cut_time_s`` is in it."""

    source: str
    format: str
    interval_s: float
    time_s: np.ndarray  # (n,) grid times of the training part
    offsets_us: np.ndarray  # (n,) NaN = missing
    step_indices: list[int]  # detected clock steps inside the training part (first sample after the jump)
    validation_start: int  # grid index where validation futures begin
    cut_time_s: float  # the last observed training sample's time
    log_first_time_s: float
    log_last_time_s: float


def split_log(path: Path, train_fraction: float, validation_fraction: float = DEFAULT_VALIDATION_FRACTION) -> LogSplit:
    """The first ``train_fraction`` of the log's time span, with its validation start (both by time)."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train fraction must be between 0 and 1, got {train_fraction}")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {validation_fraction}")
    series = read_clock_log(path)
    if len(series) < 2:
        raise ValueError(f"{path}: only {len(series)} usable samples")
    grid = series.on_grid()
    first, last = float(grid.time_s[0]), float(grid.time_s[-1])
    boundary_s = first + train_fraction * (last - first)
    observed = np.flatnonzero(np.isfinite(grid.offset_us) & (grid.time_s <= boundary_s))
    if observed.size == 0:
        raise ValueError(f"{path}: no observed sample in the first {train_fraction:g} of the log")
    end = int(observed[-1]) + 1
    validation_start = int(
        np.searchsorted(
            grid.time_s[:end], first + (1.0 - validation_fraction) * (float(grid.time_s[end - 1]) - first), side="right"
        )
    )
    return LogSplit(
        source=str(path.resolve()),
        format=grid.format,
        interval_s=float(grid.interval_s),
        time_s=grid.time_s[:end],
        offsets_us=grid.offset_us[:end],
        step_indices=[s.index for s in grid.steps if s.index < end],
        validation_start=validation_start,
        cut_time_s=float(grid.time_s[end - 1]),
        log_first_time_s=first,
        log_last_time_s=last,
    )


def crop_starts(split: LogSplit, crop: int, future: int) -> tuple[np.ndarray, np.ndarray]:
    """Start indices of (training, validation) crops of ``crop`` samples, the last ``future`` the target.

    Training crops end before ``validation_start``; validation crops' futures lie in
    [validation_start, end). Neither crosses a clock step. Validation crops are VALIDATION_STRIDE apart;
    both are thinned evenly to their caps.
    """
    n = split.offsets_us.size
    starts = np.arange(0, max(0, n - crop + 1))
    steps = np.asarray(split.step_indices, dtype=np.int64)
    if steps.size:
        crosses = (steps[None, :] > starts[:, None]) & (steps[None, :] < starts[:, None] + crop)
        starts = starts[~crosses.any(axis=1)]
    training = starts[starts + crop <= split.validation_start]
    validation = starts[starts + crop - future >= split.validation_start]
    return _thin(training, MAX_TRAIN_CROPS), _thin(validation[::VALIDATION_STRIDE], MAX_VALIDATION_CROPS)


def _thin(starts: np.ndarray, cap: int) -> np.ndarray:
    if starts.size <= cap:
        return starts
    return starts[np.linspace(0, starts.size - 1, cap).round().astype(np.int64)]


def write_record(out_dir: Path, record: dict[str, Any]) -> None:
    (out_dir / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")


def read_record(checkpoint_dir: Path) -> dict[str, Any]:
    path = checkpoint_dir / RECORD_NAME
    if not path.is_file():
        raise ValueError(f"{checkpoint_dir} has no {RECORD_NAME}: not a directory written by finetune")
    return json.loads(path.read_text())


def read_cut_time_s(checkpoint_dir: Path) -> float:
    """The last timestamp a fine-tuned checkpoint saw; evaluation must stay strictly after it."""
    cut = read_record(checkpoint_dir).get("cut_time_s")
    if not isinstance(cut, (int, float)) or not math.isfinite(cut):
        raise ValueError(f"{checkpoint_dir / RECORD_NAME} has no valid cut_time_s")
    return float(cut)


def _utc(time_s: float) -> str | None:
    if time_s < UNIX_TIME_AFTER_S:
        return None
    return datetime.fromtimestamp(time_s, tz=UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------- training (imports torch)


@dataclass(frozen=True)
class Recipe:
    max_epochs: int = 5
    patience: int = 2
    max_steps_per_epoch: int = 40  # an epoch is one pass over the training crops, capped for 2 cores
    lr: float | None = None  # None: the family's training peak lr / 10
    seed: int = 0


def _datasets(spec: ModelSpec, split: LogSplit) -> tuple[Pool, Batch]:
    from chronotick.training import Pool

    windows = spec.windows
    training, validation = crop_starts(split, windows.crop, windows.future)
    if training.size == 0 or validation.size == 0:
        needed_s = (windows.crop + windows.future) * split.interval_s / DEFAULT_VALIDATION_FRACTION
        raise ValueError(
            f"{split.source}: the training part has {split.offsets_us.size} samples, too few for {spec.name}'s "
            f"crops of {windows.crop} samples ({training.size} training and {validation.size} validation crops "
            f"without a clock step); give a longer log or a larger --train-fraction (the training part needs "
            f"roughly {needed_s:.0f} s)"
        )
    window = np.arange(windows.crop)
    pool = Pool(split.offsets_us[training[:, None] + window].astype(np.float32))
    crops = Pool(split.offsets_us[validation[:, None] + window].astype(np.float32))
    rows = np.arange(validation.size)
    val = crops.cut(rows, np.zeros_like(rows), windows, np.random.default_rng(0), augment=False)
    return pool, val


def _validation_loss(spec: ModelSpec, model: torch.nn.Module, val: Batch) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float(spec.loss(model, val).item())


def tune(
    spec: ModelSpec, model: torch.nn.Module, pool: Pool, val: Batch, recipe: Recipe
) -> tuple[torch.nn.Module, list[tuple[int, int, float]], int]:
    """Train with early stopping on ``val``; (best model, [(epoch, steps, validation loss)], best epoch)."""
    import torch

    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    batch_size = spec.windows.batch_size
    steps_per_epoch = max(1, min(recipe.max_steps_per_epoch, math.ceil(len(pool.offsets) / batch_size)))
    lr = recipe.lr if recipe.lr is not None else spec.peak_lr / 10
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    best_loss = _validation_loss(spec, model, val)
    best_state, best_epoch = copy.deepcopy(model.state_dict()), 0
    history = [(0, 0, best_loss)]
    print(f"{spec.name}: as loaded, validation loss {best_loss:.4f}", flush=True)
    steps = 0
    for epoch in range(1, recipe.max_epochs + 1):
        model.train()
        for _ in range(steps_per_epoch):
            loss = spec.loss(model, pool.sample(rng, batch_size, spec.windows, augment=True))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            steps += 1
        val_loss = _validation_loss(spec, model, val)
        history.append((epoch, steps, val_loss))
        print(f"{spec.name}: epoch {epoch}, {steps} steps, validation loss {val_loss:.4f}", flush=True)
        if val_loss < best_loss:
            best_loss, best_state, best_epoch = val_loss, copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= recipe.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return model, history, best_epoch


def finetune(
    spec: ModelSpec,
    checkpoint: str,
    log: Path,
    out_dir: Path,
    *,
    train_fraction: float,
    recipe: Recipe,
    model_id_env: str,
    command: str,
) -> dict[str, Any]:
    """Load ``checkpoint``, tune it on the early part of ``log``, save it into ``out_dir``; returns the record."""
    import torch

    from chronotick.training import evaluate

    if spec.load is None:
        raise ValueError(f"{spec.name} has no loader for fine-tuning")
    torch.set_num_threads(1)  # as the training command: small models, a shared 2-core machine
    split = split_log(log, train_fraction)
    pool, val = _datasets(spec, split)
    started = time.monotonic()
    before = evaluate(spec, Path(checkpoint), val)
    model, history, best_epoch = tune(spec, spec.load(checkpoint), pool, val, recipe)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(model, out_dir)
    for path in out_dir.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; a service running as another user must read the weights
    after = evaluate(spec, out_dir, val)
    model_row = f"{spec.dir_name} ({spec.forecast_kind})"
    record = {
        "model": spec.name,
        "base_checkpoint": checkpoint,
        "source": split.source,
        "format": split.format,
        "interval_s": split.interval_s,
        "log_first_time_s": split.log_first_time_s,
        "log_last_time_s": split.log_last_time_s,
        "train_fraction": train_fraction,
        "cut_time_s": split.cut_time_s,
        "cut_time_utc": _utc(split.cut_time_s),
        "validation_from_time_s": float(split.time_s[min(split.validation_start, split.time_s.size - 1)]),
        "recipe": {
            "training_crops": int(len(pool.offsets)),
            "validation_crops": int(len(val.past)),
            "context": spec.windows.context,
            "future": spec.windows.future,
            "batch_size": spec.windows.batch_size,
            "lr": recipe.lr if recipe.lr is not None else spec.peak_lr / 10,
            "optimizer": "AdamW, weight decay 0.01",
            "max_epochs": recipe.max_epochs,
            "patience": recipe.patience,
            "max_steps_per_epoch": recipe.max_steps_per_epoch,
            "seed": recipe.seed,
            "best_epoch": best_epoch,
            "loss": spec.loss_description,
            "history": [{"epoch": e, "steps": s, "validation_loss": v} for e, s, v in history],
            "seconds": round(time.monotonic() - started, 1),
        },
        "validation_mae_us": {
            "before": before[model_row],
            "after": after[model_row],
            "last_value": after["last-value"],
        },
        "load": f"{model_id_env}={out_dir.resolve()}",
        "command": command,
    }
    write_record(out_dir, record)
    (out_dir / "README.md").write_text(_card(spec, record))
    return record


def _card(spec: ModelSpec, record: dict[str, Any]) -> str:
    from chronotick.training import mae_table

    recipe, maes = record["recipe"], record["validation_mae_us"]
    return "\n".join(
        [
            f"# {spec.name}, fine-tuned on one clock",
            "",
            f"`{record['base_checkpoint']}` trained further on `{record['source']}` ({record['format']}), only on "
            f"samples up to the cut at {record['cut_time_s']:.3f} s"
            + (f" ({record['cut_time_utc']})" if record["cut_time_utc"] else "")
            + f", the first {record['train_fraction']:g} of the log. Evaluate it only after the cut: "
            f"`python -m chronotick.bench LOG --after-finetune DIR`.",
            "",
            f"- Load: `{record['load']}`",
            f"- Reproduce: `{record['command']}`",
            f"- Recipe: {recipe['training_crops']} training crops ({recipe['context']} + {recipe['future']} samples, "
            f"none crossing a clock step), early stopping on {recipe['validation_crops']} validation crops whose "
            f"future starts at {record['validation_from_time_s']:.3f} s (still before the cut); AdamW lr "
            f"{recipe['lr']:g}, batch {recipe['batch_size']}, at most {recipe['max_epochs']} epochs of at most "
            f"{recipe['max_steps_per_epoch']} steps, patience {recipe['patience']}, seed {recipe['seed']}; kept epoch "
            f"{recipe['best_epoch']} (0 = unchanged); {recipe['seconds']:g} s.",
            f"- Loss: {recipe['loss']}",
            "",
            "## Validation MAE (us), on the validation crops",
            "",
            *mae_table(
                {
                    "before (the base checkpoint)": maes["before"],
                    "after fine-tuning": maes["after"],
                    "last value": maes["last_value"],
                },
                digits=3,
            ),
            "",
        ]
    )


def main(
    specs: dict[str, ModelSpec],
    argv: Sequence[str] | None = None,
    *,
    checkpoint: Callable[[str], str],
    model_id_env: dict[str, str],
    command_prefix: str,
) -> None:
    """A family's fine-tuning command; ``checkpoint(name)`` is what its service would load."""
    tunable = [name for name, spec in specs.items() if spec.load is not None]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=tunable, required=True)
    parser.add_argument("--log", type=Path, required=True, help="the clock's log (chrony, ntpd, ptp4l, mbgsvcd, CSV)")
    parser.add_argument(
        "--train-fraction",
        type=float,
        default=DEFAULT_TRAIN_FRACTION,
        help="share of the log's time span to train on (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    parser.add_argument("--epochs", type=int, default=Recipe.max_epochs)
    parser.add_argument("--patience", type=int, default=Recipe.patience)
    parser.add_argument("--max-steps-per-epoch", type=int, default=Recipe.max_steps_per_epoch)
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the family's peak / 10)")
    parser.add_argument("--seed", type=int, default=Recipe.seed)
    args = parser.parse_args(argv)
    if not args.log.is_file():
        parser.error(f"--log {args.log}: no such file")
    if min(args.epochs, args.patience, args.max_steps_per_epoch) < 1:
        parser.error("--epochs, --patience and --max-steps-per-epoch must be at least 1")
    recipe = Recipe(args.epochs, args.patience, args.max_steps_per_epoch, args.lr, args.seed)
    command = (
        f"{command_prefix} --model {args.model} --log {args.log} --train-fraction {args.train_fraction:g} "
        f"--out {args.out} --epochs {args.epochs} --patience {args.patience} "
        f"--max-steps-per-epoch {args.max_steps_per_epoch} --seed {args.seed}"
        + (f" --lr {args.lr:g}" if args.lr is not None else "")
    )
    try:
        record = finetune(
            specs[args.model],
            checkpoint(args.model),
            args.log,
            args.out,
            train_fraction=args.train_fraction,
            recipe=recipe,
            model_id_env=model_id_env[args.model],
            command=command,
        )
    except ValueError as error:  # unreadable or too short a log, a bad fraction: say so, no traceback
        parser.exit(2, f"finetune: {error}\n")
    maes = record["validation_mae_us"]
    print(
        f"{args.model}: kept epoch {record['recipe']['best_epoch']}; cut at {record['cut_time_s']:.3f} s; "
        f"wrote {args.out}"
    )
    for key in ("before", "after", "last_value"):
        print(f"  {key:10s} " + "  ".join(f"h{h}={v:.3f}" for h, v in maes[key].items()))
    print(f"serve it with {record['load']}")
