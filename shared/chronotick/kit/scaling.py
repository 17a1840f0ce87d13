"""Inputs in which "no change" is the natural forecast: one scaling for every family, the service's and the trainers'.

A clock's offset wanders by tens of microseconds over a 512-sample context, but what matters one to ten seconds ahead
is its sub-microsecond motion. Standardising a context by its standard deviation, as most forecasting libraries do
inside the model, lets the slow wander set the unit, so that motion becomes a rounding error and the model drifts
back toward the context's mean. Here every context is made relative to its last observed value (the kit always does
that) and, for a model trained so (``last-value-mad``), divided by its own mean absolute step: recent motion is then
of order one and a forecast of 0 is "no change". Both maps are affine with a positive scale, so means, quantiles and
samples map back exactly.

A model that normalises every input inside its network by statistics no option turns off (TimesFM's running patch
statistics) undoes any such scale: it sees the context in units of its slow wander again. Such a checkpoint is
trained on ``first-differences``: the steps between consecutive samples, in the same unit. Its own normalisation
then measures the steps (their spread is the clock's short-term motion), and it answers the steps ahead, which the
kit sums back into offsets (``as_offsets``). The sum of the mean steps is the mean path; the sums of its quantile
outputs are quantiles of the path because that is what its loss scores (the trainers sum the outputs before
scoring them), and where they cross they are re-sorted. Only a model that answers quantiles itself can take these
inputs: the kit's residual spread for point forecasters backtests contexts as levels.

The service scales each request here (``chronotick.kit.series``) and the trainers scale each crop with the same
functions (``chronotick.training``), so a checkpoint sees in service exactly what it was trained on. Which scaling a
checkpoint expects is written in its ``config.json`` (``CONFIG_KEY``) and shown in ``ModelInfo.input_scaling``; a
released checkpoint without the key keeps ``anchored`` and its library's own normalisation.
"""

from __future__ import annotations

from typing import get_args

import numpy as np

from chronotick.contract import InputScaling
from chronotick.kit.adapter import BatchForecast

INPUT_SCALINGS: tuple[str, ...] = get_args(InputScaling)
CONFIG_KEY = "chronotick_input_scaling"  # in a checkpoint's config.json
SCALE_FLOOR_US = 1e-3  # 1 ns, below any clock's resolution: a flat context keeps a finite scale
INPUT_CLIP = 1000.0  # scaled units: a spike or servo step far beyond the context's typical move is cut here
# Covariates keep physical units (a crystal reacts to degrees, not to a window's spread): each is given as its
# change since its last past value, in these units; a name without one keeps unit 1.
COVARIATE_UNITS: dict[str, float] = {"temperature_c": 1.0, "cpu_load": 0.25}


def input_scaling(config: dict[str, object]) -> InputScaling:
    """The scaling a checkpoint's config asks for; ``anchored`` when it names none (released checkpoints)."""
    value = config.get(CONFIG_KEY, "anchored")
    if value not in INPUT_SCALINGS:
        raise ValueError(f"{CONFIG_KEY} is {value!r}; known: {', '.join(INPUT_SCALINGS)}")
    return value  # type: ignore[return-value]  # checked against the Literal's values just above


def step_scale_us(past: np.ndarray) -> np.ndarray:
    """Mean absolute difference between consecutive observed samples along the last axis, floored.

    ``past`` is (..., T) with NaN where missing; pairs with a missing end are left out (a gap is not a step).
    """
    steps = np.abs(np.diff(past, axis=-1))
    counts = np.isfinite(steps).sum(axis=-1)
    mean_step = np.where(counts > 0, np.nansum(steps, axis=-1) / np.maximum(counts, 1), 0.0)
    return np.maximum(mean_step, SCALE_FLOOR_US)


def steps_between(levels: np.ndarray) -> np.ndarray:
    """(..., T) levels, NaN where missing -> (..., T) steps: entry t is level t minus level t - 1.

    An interior gap is bridged linearly, so its whole change is kept, spread over its steps; samples after the last
    observation hold it (steps of 0); every entry up to and including the first observation is NaN (no step leads
    there), which a model reads as a short history.
    """
    rows = np.array(levels, dtype=np.float64, ndmin=2).reshape(-1, np.shape(levels)[-1])
    positions = np.arange(rows.shape[1])
    for row in rows:
        observed = np.flatnonzero(~np.isnan(row))
        if observed.size == 0:
            continue
        row[:] = np.interp(positions, observed, row[observed])  # holds the ends
        row[: observed[0]] = np.nan
    steps = np.diff(rows, axis=-1, prepend=np.nan)
    return steps.reshape(np.shape(levels))


def scale_context(anchored: np.ndarray, scaling: InputScaling) -> tuple[np.ndarray, float]:
    """(what the model sees, the scale in us that maps its answer back) for a context already relative to its
    last observed value; NaN stay where they are (first differences bridge interior gaps, ``steps_between``)."""
    if scaling == "anchored":
        return anchored, 1.0
    scale_us = float(step_scale_us(anchored))
    scaled = anchored / scale_us
    if scaling == "first-differences":
        scaled = steps_between(scaled)
    return np.clip(scaled, -INPUT_CLIP, INPUT_CLIP), scale_us


def scale_windows(
    past: np.ndarray, future: np.ndarray, scaling: InputScaling = "last-value-mad"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training crops (B, T) and their futures (B, H), already relative -> the crops as the kit hands them to a
    checkpoint trained on ``scaling`` (not ``anchored``), the futures in the same unit, and each crop's (B,) scale in
    us.

    The futures stay levels relative to the last observed value whatever the scaling: what an answer is scored on
    once the kit has mapped it back. The context is clipped as in service; the future is not (the trainers decide
    how to bound their targets).
    """
    if scaling == "anchored":
        raise ValueError("anchored crops are not scaled")
    scale_us = step_scale_us(past)
    scaled = past / scale_us[:, None]
    if scaling == "first-differences":
        scaled = steps_between(scaled)
    return np.clip(scaled, -INPUT_CLIP, INPUT_CLIP), future / scale_us[:, None], scale_us


def as_offsets(forecast: BatchForecast, scaling: InputScaling) -> BatchForecast:
    """A model's answer as offsets relative to the context's last value, in the scale's unit: unchanged, unless the
    model answers steps (``first-differences``), which are summed along the horizon. Summed quantile paths that
    cross are re-sorted at each step: a monotone rearrangement, which never takes the quantile curve further from
    the true one (Chernozhukov, Fernandez-Val and Galichon, 2010)."""
    if scaling != "first-differences":
        return forecast
    return BatchForecast(
        levels=forecast.levels,
        quantiles=np.sort(np.cumsum(forecast.quantiles, axis=-1), axis=-2),
        mean=np.cumsum(forecast.mean, axis=-1),
    )


def fill_forward(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., T) with NaN -> (filled, observed): gaps carry the last observation; leading NaN take the first.

    Rows with no observation at all become 0.
    """
    observed = ~np.isnan(values)
    index = np.where(observed, np.arange(values.shape[-1]), 0)
    np.maximum.accumulate(index, axis=-1, out=index)
    filled = np.take_along_axis(values, index, axis=-1)
    first = np.take_along_axis(values, np.argmax(observed, axis=-1)[..., None], axis=-1)
    filled = np.where(np.isnan(filled), first, filled)
    return np.nan_to_num(filled, nan=0.0), observed


def covariate_changes(
    names: list[str], past: np.ndarray, future: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(..., K, T) past and (..., K, P) future covariates, NaN where missing or not known -> each as its change since
    its last observed past value in ``COVARIATE_UNITS``.

    Missing past samples carry the previous observation (leading ones the first); the future keeps its NaN (the
    family decides what an unknown future is). A covariate never observed is all 0.
    """
    filled, _ = fill_forward(past)
    last = filled[..., -1:]
    units = np.array([COVARIATE_UNITS.get(name, 1.0) for name in names])[:, None]
    past_changes = np.clip((filled - last) / units, -INPUT_CLIP, INPUT_CLIP)
    if future is None:
        return past_changes, None
    return past_changes, np.clip((future - last) / units, -INPUT_CLIP, INPUT_CLIP)


def covariate_changes_by_name(
    past: dict[str, np.ndarray], future: dict[str, np.ndarray], horizon: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One series' covariates as the kit hands them (name -> past values, name -> known future values) ->
    ``covariate_changes`` of each, keyed the same way; a name without a known future keeps none."""
    names = list(past)
    unknown = np.full(horizon, np.nan)
    past_changes, future_changes = covariate_changes(
        names, np.stack([past[n] for n in names]), np.stack([future.get(n, unknown) for n in names])
    )
    assert future_changes is not None  # a future was given
    return (
        dict(zip(names, past_changes, strict=True)),
        {n: future_changes[i] for i, n in enumerate(names) if n in future},
    )
