"""What every family's `finetune` command promises, checked on a small log written by the test.

The family test runs the command, then loads the result with its own service loader and forecasts."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chronotick.finetune import _datasets, read_record, split_log
from chronotick.kit import ForecastModel, ModelBatch
from chronotick.training import EVAL_HORIZONS, ModelSpec, evaluate
from support.clock_log import write_csv_log

# Enough for every family's crops (at most 512 + 128 samples) in the first half, validation included.
LOG_SECONDS = 2000
QUICK = ("--epochs", "2", "--patience", "1", "--max-steps-per-epoch", "2")


def finetune_and_check(
    tmp_path: Path, finetune_main: Callable[[Sequence[str]], None], spec: ModelSpec, model_id_env: str
) -> tuple[Path, dict[str, Any]]:
    """Run ``finetune --model spec.name`` on a fresh log; check the directory and its record. Returns both."""
    log = write_csv_log(tmp_path / "clock.csv", LOG_SECONDS)
    out = tmp_path / "tuned"
    finetune_main(["--model", spec.name, "--log", str(log), "--out", str(out), *QUICK])
    files = {path.name for path in out.iterdir()}
    assert {"config.json", "finetune.json", "README.md"} <= files
    assert any(name.endswith(".safetensors") for name in files)
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))]

    record = read_record(out)
    split = split_log(log, 0.5)
    assert record["model"] == spec.name and record["source"] == str(log.resolve())
    assert record["cut_time_s"] == split.cut_time_s == float(split.time_s[-1])
    assert record["validation_from_time_s"] < record["cut_time_s"]
    assert record["load"] == f"{model_id_env}={out.resolve()}"
    history = record["recipe"]["history"]
    assert history[0]["epoch"] == 0 and history[-1]["steps"] > 0  # it really trained
    assert record["recipe"]["best_epoch"] in {entry["epoch"] for entry in history}
    maes = record["validation_mae_us"]
    for key in ("before", "after", "last_value"):
        assert sorted(map(int, maes[key])) == list(EVAL_HORIZONS)
        assert all(math.isfinite(v) for v in maes[key].values())
    # The recorded figures are the saved checkpoint's own: recomputed from the directory, they agree.
    _, val = _datasets(spec, split)
    again = evaluate(spec, out, val)[f"{spec.dir_name} ({spec.forecast_kind})"]
    for h in EVAL_HORIZONS:
        assert math.isclose(again[h], maes["after"][str(h)], rel_tol=1e-4, abs_tol=1e-6)
    return out, record


def check_serves(model: ForecastModel, checkpoint: Path, horizon: int = 60) -> None:
    """The family's service loader took ``checkpoint`` and forecasts a relative context with it."""
    assert model.info.model_id == str(checkpoint)
    context = np.cumsum(np.random.default_rng(1).normal(0, 0.3, 512))
    forecast = model.forecast(ModelBatch(contexts=[context - context[-1]], horizon=horizon, interval_s=[1.0]))
    assert forecast.mean.shape == (1, horizon) and np.isfinite(forecast.quantiles).all()
