"""Requests at the contract's numeric extremes, and what every answer to them must be (issue 15).

Every finite number a client can send, however large or small, is either refused with a 422
problem+json naming the field, or forecast: an answer with finite values. Never a 5xx. The
strategies draw each numeric field from its bounds (just inside and just outside), the float
extremes (subnormals, the largest float) and anything hypothesis finds between them, around
series that are otherwise plausible so that most requests reach the numeric code.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import httpx
import numpy as np
from hypothesis import strategies as st

from chronotick.contract import (
    MAX_ABS_COVARIATE,
    MAX_ABS_OFFSET_US,
    MAX_ABS_TIMESTAMP_S,
    MAX_DEADLINE_S,
    MAX_INTERVAL_S,
    MIN_DEADLINE_S,
    MIN_INTERVAL_S,
    MIN_QUANTILE_LEVEL,
)

SMALLEST_SUBNORMAL = 5e-324
# Magnitudes with no bound of their own in the contract: zero, subnormals, the extremes of float64.
TINY = (0.0, SMALLEST_SUBNORMAL, sys.float_info.min, 1e-300, 1e-12)
HUGE = (1e300, sys.float_info.max)
# Covariate names every model that takes covariates knows (ttm-exog knows only its own).
COVARIATE_NAMES = ("cpu_load", "temperature_c")


def _inside(bound: float) -> float:
    return math.nextafter(bound, 0.0)


def _outside(bound: float) -> float:
    return math.nextafter(bound, math.inf)


@st.composite
def number(
    draw: st.DrawFn,
    low: float,
    high: float,
    edges: Sequence[float] = (),
    *,
    outside: bool = True,
    beyond: Sequence[float] = (),
) -> float:
    """A positive number for a field bounded to [low, high]: mostly inside (its bounds, the floats next
    to them inside, ``edges``, anything between), sometimes (with ``outside``) just outside, at a
    float extreme or at one of ``beyond``. Hypothesis shrinks towards the outside, where a failure is
    simplest to read."""
    roll = draw(st.integers(0 if outside else 1, 19))
    if roll == 0:
        refused = [_outside(high), *HUGE, *beyond, *(v for v in (*TINY, _inside(low)) if v < low)]
        return draw(st.sampled_from(refused) | st.floats(min_value=_outside(high), allow_infinity=False))
    if roll < 8:
        inside = [low, high, _inside(high), *(v for v in (*TINY, *edges) if low <= v <= high)]
        if low > 0.0:
            inside.append(_outside(low))
        return draw(st.sampled_from(sorted(set(inside))))
    return draw(st.floats(low, high))


def magnitude(bound: float, *, outside: bool = True) -> st.SearchStrategy[float]:
    """|value| of a number the contract bounds to [-bound, bound]."""
    return number(0.0, bound, edges=(1.0,), outside=outside)


def signed(values: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    return st.builds(lambda v, negative: -v if negative else v, values, st.booleans())


def _finite(values: np.ndarray) -> list[float]:
    """JSON-ready finite floats: a pattern that overflowed stands at the largest float instead."""
    return np.nan_to_num(values, nan=0.0, posinf=sys.float_info.max, neginf=-sys.float_info.max).tolist()


@st.composite
def sample_values(draw: st.DrawFn, n: int, bound: float, missing: bool) -> list[float | None]:
    """``n`` values: a clock-like path (a wandering line with noise around a level, each of an
    extreme size, and no further from zero than the larger of them), a few replaced by extreme
    values and, with ``missing``, some by null; or values from the edges inside the bound throughout."""
    extreme = signed(magnitude(bound))
    if draw(st.integers(0, 4)) == 0:
        inside = signed(magnitude(bound, outside=False))
        return draw(st.lists(inside | st.none() if missing else inside, min_size=n, max_size=n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = np.cumsum(rng.standard_normal(n)) + draw(st.floats(-1.0, 1.0)) * np.arange(n) + rng.standard_normal(n)
    shape /= max(float(np.max(np.abs(shape))), 1.0)
    level, size = draw(extreme), draw(magnitude(bound))
    limit = max(abs(level), size)
    with np.errstate(all="ignore"):
        path = np.clip(level + size * shape, -limit, limit)
    values: list[float | None] = _finite(path)
    for index in draw(st.lists(st.integers(0, n - 1), max_size=2)):
        values[index] = draw(extreme)
    if missing:
        for index in draw(st.lists(st.integers(0, n - 2), max_size=n // 4)):
            values[index] = None
    return values


@st.composite
def cadence(draw: st.DrawFn, n: int) -> dict[str, object]:
    """``interval_s``, or ``timestamps_s`` at an extreme spacing from an extreme time towards zero
    (so that they stay inside the bound when it is), one sample missing."""
    spacing = draw(number(MIN_INTERVAL_S, MAX_INTERVAL_S, edges=(1.0,)))
    if draw(st.booleans()):
        return {"interval_s": spacing}
    furthest = draw(signed(magnitude(MAX_ABS_TIMESTAMP_S)))
    steps = np.arange(n + 1, dtype=float)
    with np.errstate(all="ignore"):
        times = _finite(furthest - spacing * steps[::-1] if furthest > 0 else furthest + spacing * steps)
    del times[draw(st.integers(1, n))]  # a sample that never arrived: a hole on the grid
    return {"timestamps_s": times}


@st.composite
def series(draw: st.DrawFn, min_length: int, max_length: int, horizon: int, covariates: bool) -> dict[str, object]:
    n = draw(st.integers(min_length, max_length))
    body: dict[str, object] = {
        "offsets_us": draw(sample_values(n, MAX_ABS_OFFSET_US, missing=True)),
        **draw(cadence(n)),
    }
    if covariates:
        drawn = {}
        for name in COVARIATE_NAMES:
            drawn[name] = {"past": draw(sample_values(n, MAX_ABS_COVARIATE, missing=True))}
            if draw(st.booleans()):
                drawn[name]["future"] = draw(sample_values(horizon, MAX_ABS_COVARIATE, missing=False))
        body["covariates"] = drawn
    return body


def quantile_levels() -> st.SearchStrategy[list[float]]:
    """Sorted levels, mostly inside their bounds, sometimes outside up to 0 and 1 (and the floats next to them)."""
    level = number(MIN_QUANTILE_LEVEL, 1.0 - MIN_QUANTILE_LEVEL, edges=(0.5,), beyond=(_inside(1.0), 1.0))
    return st.lists(level, min_size=1, max_size=4, unique=True).map(sorted)


@st.composite
def extreme_requests(
    draw: st.DrawFn,
    *,
    max_horizon: int,
    min_length: int = 8,
    max_length: int = 80,
    covariates: bool = False,
    deadline: bool = False,
) -> dict[str, object]:
    """A request body whose numbers come from the extremes; ``covariates`` for a model that takes
    them, ``deadline`` for the gateway."""
    horizon = draw(st.integers(1, max_horizon))
    with_covariates = covariates and draw(st.booleans())
    body: dict[str, object] = {
        "series": draw(st.lists(series(min_length, max_length, horizon, with_covariates), min_size=1, max_size=2)),
        "horizon": horizon,
    }
    if draw(st.booleans()):
        body["quantile_levels"] = draw(quantile_levels())
    if deadline and draw(st.booleans()):
        body["deadline_s"] = draw(number(MIN_DEADLINE_S, MAX_DEADLINE_S, edges=(1.0,)))
    return body


def assert_refused_or_finite(response: httpx.Response, body: dict[str, object]) -> None:
    """200 with finite values at every step, or 422 problem+json naming each field and the reason."""
    assert response.status_code in (200, 422), f"{response.status_code}: {response.text[:2000]}"
    answer = response.json()
    if response.status_code == 422:
        assert response.headers["content-type"] == "application/problem+json"
        assert answer["errors"], answer
        assert all(error["field"] and error["reason"] for error in answer["errors"]), answer
        return
    horizon = body["horizon"]
    assert len(answer["forecasts"]) == len(body["series"])  # type: ignore[arg-type]
    for forecast in answer["forecasts"]:
        rows: Sequence[list[float]] = [forecast["mean_us"], forecast["std_us"], *forecast["quantiles_us"]]
        for row in rows:
            assert len(row) == horizon and np.all(np.isfinite(np.asarray(row, dtype=float))), forecast
