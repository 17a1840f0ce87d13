"""A clock's memory: its forecasts scored once their truth arrives, and what that teaches.

Pure functions and plain data, no I/O (``clockstore`` keeps the bytes). For a clock the gateway
keeps, at each *anchor* horizon (``ANCHOR_HORIZONS_S``, interpolated between):

1. **Pending forecasts.** Each answer leaves the fused forecast and every member's at the anchors,
   with the clock's error scale at that time. When later samples reach an anchor's target time,
   that anchor is scored and forgotten (an anchor whose sample is missing is forgotten unscored).
   Feedback arrives late (an h-second forecast waits h seconds), so every rule below runs on the
   losses as they arrive (delayed feedback costs a regret of order sqrt(h): Joulani et al. 2013).
2. **Weights, two published rules.** ML-Poly (Gaillard, Stoltz & van Erven, COLT 2014), as the R
   package opera's ``MLpol`` with the gradient trick on absolute loss: each member's learning rate
   comes from its own regrets, nothing to tune, and the regret guarantee is second order against
   the best convex combination. And the inverse exponentially weighted MSE, which a probe on held-out
   clocks found better at long horizons while ML-Poly was better at short ones. Which of the two a
   clock uses at a horizon is decided by their own realised losses there, as the truth arrives, so
   neither is chosen on a benchmark. A member absent from an answer (down, or not asked) sleeps: its
   regret does not move (opera's ``awake``).
3. **Bounds: conformal quantile tracking** (the "quantile tracking" of conformal PID control,
   Angelopoulos, Candès & Tibshirani 2023; ACI, Gibbs & Candès 2021, on quantiles). The score is the
   fused error over the clock's recent mean absolute fused error at that horizon (its *scale*), so
   one step size serves clocks at microseconds and at milliseconds. For each tracked level tau,
   q <- q + eta (tau - 1{score <= q}): the long-run share of scores below q converges to tau on every
   clock, whatever the tails (error at most (B + eta) / (eta T) for scores within B). Each level is
   one side of a central interval, so both sides hold apart.

A new clock answers as before (the request's own backtests) and hands over to the memory as its
scored forecasts accrue; with ``warm_after`` scored forecasts at every anchor within a forecast,
the answer comes from the memory alone and the backtests are skipped (the warm path).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import zstandard
from pydantic import BaseModel, Field, ValidationError
from scipy.special import ndtri

from chronotick_gateway.online_ar import AnchorRegression

# Horizons at which forecasts are remembered and scored; others are interpolated between them.
ANCHOR_HORIZONS_S: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0)
_ANCHORS_S = np.asarray(ANCHOR_HORIZONS_S)
# The quantile levels tracked at each anchor; a request's other levels are interpolated between them.
TRACKED_LEVELS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99)
_TRACKED = np.asarray(TRACKED_LEVELS)
# The central intervals whose realised coverage is reported (GET /clocks/{id}), and their sides.
REPORTED_INTERVALS: dict[str, tuple[float, float]] = {"0.8": (0.1, 0.9), "0.95": (0.025, 0.975)}
_REPORTED_SIDES = (0.025, 0.1, 0.9, 0.975)
# Step of the quantile tracker, in units of the clock's error scale. A priori, not fitted: the tracked
# quantiles lie within about 4 scales (B), so after T scored forecasts each level's coverage is within
# (B + eta) / (eta T), 4 points at T = 1000, and one quantile moves a tenth of a scale at most per score.
CONFORMAL_STEP = 0.1
# Half-lives, in scored forecasts: the error scale follows a clock's regime within minutes (an agent
# asking every 5-10 s scores 30 forecasts at a horizon in 3-5 minutes); the losses that pick a rule,
# and the inverse-MSE weights, remember longer.
SCALE_HALF_LIFE = 30.0
RULE_HALF_LIFE = 100.0
MSE_HALF_LIFE = 100.0
# An answer is remembered only this long after the last one remembered (or a cadence, if longer): a
# client asking every second learns as much from every fifth answer (neighbouring answers' errors are
# nearly the same), and it keeps a clock's state small. With the longest anchor 60 s ahead, at most
# 13 answers wait for their truth at once; MAX_PENDING bounds it whatever a client does.
REMEMBER_EVERY_S = 5.0
MAX_PENDING = 16
# A member with less weight than this at every anchor of a warm clock's forecast is not asked, but for
# every REPROBE_EVERY-th request of that clock, which keeps its losses (and a way back) current.
WEIGHTLESS_BELOW = 0.01
REPROBE_EVERY = 10
# A forecast reaches an anchor when one of its steps lies within this share of a cadence of it.
ANCHOR_TOLERANCE = 0.25
# Version of the stored state: a state written by another version is discarded, never misread.
STATE_VERSION = 2  # 2: the clock's own autoregression (online_ar)
_MEAN_ABS_PER_STD = math.sqrt(2.0 / math.pi)  # E|e| / sd of a normal error
RULES = ("ml-poly", "inverse-mse")


def _ew(previous: float | None, value: float, half_life: float) -> float:
    """An exponentially weighted mean (the first value starts it)."""
    if previous is None:
        return value
    keep = 0.5 ** (1.0 / half_life)
    return float(keep * previous + (1.0 - keep) * value)


# MemberRecord and AnchorState are plain dataclasses, not pydantic models: a warm request's scoring
# writes about 600 of their attributes, each through a model's __setattr__ otherwise. Inside
# ClockState pydantic still validates and serialises them, field for field as before, so a stored
# state reads the same (benchmarks/memory_cost.py times this work).
@dataclass
class MemberRecord:
    """One member at one anchor: ML-Poly's regret and learning rate, its MSE, its realised error."""

    regret: float = 0.0
    inverse_rate: float = 0.0  # 1 / eta: its squared regrets plus the growth of the bound B
    ew_squared_error: float | None = None
    abs_error_sum: float = 0.0
    scored: int = 0


@dataclass
class AnchorState:
    horizon_s: float
    scored: int = 0
    members: dict[str, MemberRecord] = field(default_factory=dict)
    regret_bound: float = 0.0  # ML-Poly's B: the largest squared regret seen
    rule_loss: dict[str, float] = field(default_factory=dict)  # EW absolute error of each rule's forecast
    error_scale_us: float | None = None  # EW mean absolute fused error: the unit of the scores
    quantiles: list[float] = field(default_factory=lambda: _normal_start())  # score quantiles, TRACKED_LEVELS
    fused_abs_error_sum: float = 0.0
    remembered_scored: int = 0  # scored forecasts that were answered with remembered bounds
    covered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REPORTED_INTERVALS, 0))


class PendingForecast(BaseModel):
    """An answer waiting for its truth, at the anchors it reached (None: not reached, or scored)."""

    origin_s: float
    members: list[str]
    member_means_us: list[list[float | None]]  # (members, anchors)
    fused_mean_us: list[float | None]  # (anchors,)
    scale_us: list[float | None]  # (anchors,) the clock's error scale when it was answered
    bounds: list[list[float] | None] | None = None  # (anchors, 4) remembered score quantiles at _REPORTED_SIDES


class ClockState(BaseModel):
    version: int = STATE_VERSION
    interval_s: float
    last_sample_s: float | None = None
    requests: int = 0
    anchors: list[AnchorState] = Field(default_factory=lambda: [AnchorState(horizon_s=h) for h in ANCHOR_HORIZONS_S])
    pending: list[PendingForecast] = Field(default_factory=list)
    learned_until_s: float | None = None  # the newest sample the regressions have learned from
    regressions: list[AnchorRegression] = Field(default_factory=lambda: [AnchorRegression() for _ in ANCHOR_HORIZONS_S])


def _normal_start() -> list[float]:
    """The score quantiles of a normal error whose scale is its mean absolute value: where the tracker
    starts, and what it would settle at for a clock with normal errors."""
    return [float(ndtri(level) / _MEAN_ABS_PER_STD) for level in TRACKED_LEVELS]


class UnreadableState(ValueError):
    """Stored bytes that this version cannot read: discarded by the caller, with a log line."""


# Every warm request reads its clock's state and writes it back, on the event loop. Zstandard at
# its fastest level took 0.15 ms to compress a 62 kB state (11 members, 12 answers waiting) to
# 21 kB and 0.05 ms to expand it; zlib at its fastest, 0.61 ms to 25 kB and 0.27 ms (measured).
_ZSTD_LEVEL = 1


def encode(state: ClockState) -> bytes:
    """JSON, compressed: its keys repeat for every member and anchor, so this is about a third of
    the size (21 kB for a clock with 11 members and 12 pending answers, ``online_ar``'s sums
    included)."""
    return zstandard.compress(state.model_dump_json().encode(), _ZSTD_LEVEL)


def _expanded(data: bytes) -> bytes:
    """The JSON of an encoded state: Zstandard, or zlib's deflate, which states were written in
    before (kept readable, so that an upgrade keeps what the clocks' memory learned)."""
    try:
        if data.startswith(zstandard.FRAME_HEADER):
            return zstandard.decompress(data)
        return zlib.decompress(data)
    except (zstandard.ZstdError, zlib.error) as error:
        raise UnreadableState(f"not a compressed clock state: {error}") from error


def decode(data: bytes) -> ClockState:
    json_bytes = _expanded(data)
    try:
        state = ClockState.model_validate_json(json_bytes)
    except ValidationError as error:
        raise UnreadableState(f"not a clock state of this version: {error.error_count()} errors") from error
    if state.version != STATE_VERSION or {len(state.anchors), len(state.regressions)} != {len(ANCHOR_HORIZONS_S)}:
        raise UnreadableState(f"state version {state.version}, this gateway reads {STATE_VERSION}")
    return state


# --- Scoring -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """A clock's samples: (n,) increasing times and offsets (NaN where missing), at its cadence."""

    times_s: np.ndarray
    offsets_us: np.ndarray
    interval_s: float

    @classmethod
    def on_grid(cls, start_s: float, interval_s: float, offsets_us: np.ndarray) -> Samples:
        return cls(start_s + interval_s * np.arange(offsets_us.size), offsets_us, interval_s)

    @property
    def last_s(self) -> float:
        return float(self.times_s[-1])

    def at(self, times_s: np.ndarray) -> np.ndarray:
        """The observed offset nearest each of ``times_s`` within half a cadence (the earlier sample
        on a tie); NaN where there is none. All at once: a warm request looks up a dozen pending
        answers at eight anchors each."""
        times_s = np.asarray(times_s, dtype=float)
        count = self.times_s.size
        if count == 0:
            return np.full(times_s.shape, np.nan)
        right = np.searchsorted(self.times_s, times_s)
        left = right - 1
        distance_left = np.where(left >= 0, np.abs(self.times_s[np.maximum(left, 0)] - times_s), np.inf)
        distance_right = np.where(right < count, np.abs(self.times_s[np.minimum(right, count - 1)] - times_s), np.inf)
        nearest = np.where(distance_left <= distance_right, np.maximum(left, 0), np.minimum(right, count - 1))
        values = self.offsets_us[nearest].astype(float)
        near_enough = np.minimum(distance_left, distance_right) <= 0.5 * self.interval_s
        return np.where(near_enough & np.isfinite(values), values, np.nan)


@dataclass(frozen=True)
class Outcome:
    """What scoring one anchor of one forecast found (for the metrics)."""

    horizon_s: float
    covered: dict[str, bool] | None  # by reported interval, for remembered bounds
    abs_error_us: float  # the fused forecast's


def score(state: ClockState, samples: Samples) -> list[Outcome]:
    """Score every pending anchor that has a sample at its target time, then forget it; forget those
    whose target is more than the longest anchor older than the newest sample, unscored (its sample
    was missing, and a later request will not bring it)."""
    outcomes: list[Outcome] = []
    kept: list[PendingForecast] = []
    newest_s = max(samples.last_s, state.last_sample_s or -math.inf)
    for forecast in state.pending:
        targets_s = forecast.origin_s + _ANCHORS_S
        truths = samples.at(targets_s)
        for a, anchor in enumerate(state.anchors):
            if forecast.fused_mean_us[a] is None:
                continue
            if np.isfinite(truths[a]):
                outcomes.append(_score_anchor(anchor, forecast, a, float(truths[a])))
                forecast.fused_mean_us[a] = None
            elif targets_s[a] < newest_s - ANCHOR_HORIZONS_S[-1]:
                forecast.fused_mean_us[a] = None
        if any(mean is not None for mean in forecast.fused_mean_us):
            kept.append(forecast)
    state.pending = kept
    state.last_sample_s = newest_s
    return outcomes


def _score_anchor(anchor: AnchorState, forecast: PendingForecast, a: int, truth: float) -> Outcome:
    fused = forecast.fused_mean_us[a]
    assert fused is not None
    awake = {
        name: mean
        for name, row in zip(forecast.members, forecast.member_means_us, strict=True)
        if (mean := row[a]) is not None
    }
    if awake:
        _learn_weights(anchor, awake, truth)
    error = truth - fused
    scale = forecast.scale_us[a] or anchor.error_scale_us or abs(error) or 1.0
    z = error / scale
    anchor.quantiles = [
        q + CONFORMAL_STEP * (level - float(z <= q)) for q, level in zip(anchor.quantiles, TRACKED_LEVELS, strict=True)
    ]
    anchor.error_scale_us = _ew(anchor.error_scale_us, abs(error), SCALE_HALF_LIFE)
    anchor.fused_abs_error_sum += abs(error)
    anchor.scored += 1
    covered = None
    bounds = None if forecast.bounds is None else forecast.bounds[a]
    if bounds is not None:
        sides = dict(zip(_REPORTED_SIDES, bounds, strict=True))
        covered = {name: sides[low] <= z <= sides[high] for name, (low, high) in REPORTED_INTERVALS.items()}
        anchor.remembered_scored += 1
        for name, hit in covered.items():
            anchor.covered[name] += int(hit)
    return Outcome(anchor.horizon_s, covered, abs(error))


def _learn_weights(anchor: AnchorState, awake: dict[str, float], truth: float) -> None:
    """One round of both rules on the members that answered this forecast."""
    names = list(awake)
    forecasts = np.array([awake[n] for n in names])
    records = [anchor.members.setdefault(n, MemberRecord(inverse_rate=anchor.regret_bound)) for n in names]
    ml_poly = _ml_poly_weights(records)
    for rule, weights in (("ml-poly", ml_poly), ("inverse-mse", _inverse_mse_weights(records))):
        anchor.rule_loss[rule] = _ew(
            anchor.rule_loss.get(rule), abs(truth - float(weights @ forecasts)), RULE_HALF_LIFE
        )
    # ML-Poly with the gradient trick on absolute loss: the loss of member k is linearised at the
    # mixture's forecast, sign(mix - y) * x_k, so its regret is r_k = sign(mix - y) * (mix - x_k).
    mix = float(ml_poly @ forecasts)
    regrets = np.sign(mix - truth) * (mix - forecasts)
    bound = max(anchor.regret_bound, float(np.max(regrets**2)))
    for record, regret in zip(records, regrets, strict=True):
        record.regret += float(regret)
        record.inverse_rate += float(regret**2)
    for record in anchor.members.values():  # the bound's growth slows every member, awake or not (opera)
        record.inverse_rate += bound - anchor.regret_bound
    anchor.regret_bound = bound
    for record, x in zip(records, forecasts, strict=True):
        record.ew_squared_error = _ew(record.ew_squared_error, (truth - float(x)) ** 2, MSE_HALF_LIFE)
        record.abs_error_sum += abs(truth - float(x))
        record.scored += 1


def _ml_poly_weights(records: Sequence[MemberRecord]) -> np.ndarray:
    """w_k proportional to eta_k (R_k)+, uniform while no member has a positive regret."""
    drive = np.array([max(r.regret, 0.0) / r.inverse_rate if r.inverse_rate > 0 else 0.0 for r in records])
    total = drive.sum()
    return drive / total if total > 0 else np.full(len(records), 1.0 / len(records))


def _inverse_mse_weights(records: Sequence[MemberRecord]) -> np.ndarray:
    precision = np.array([1.0 / r.ew_squared_error if r.ew_squared_error else 0.0 for r in records])
    if not np.all(np.isfinite(precision)):  # a member without error so far: it alone
        precision = np.where(np.isfinite(precision), 0.0, 1.0)
    total = precision.sum()
    return precision / total if total > 0 else np.full(len(records), 1.0 / len(records))


def rule_in_use(anchor: AnchorState) -> str:
    """The rule with the smaller recent loss at this anchor (ML-Poly until both have one)."""
    if len(anchor.rule_loss) < len(RULES):
        return RULES[0]
    return min(RULES, key=lambda rule: anchor.rule_loss[rule])


def anchor_weights(anchor: AnchorState, members: Sequence[str]) -> np.ndarray:
    """(M,) the remembered weights of ``members`` here, by the rule in use; members it has never
    scored weigh 0, and with none scored the weight is even."""
    known = [i for i, name in enumerate(members) if name in anchor.members]
    weights = np.zeros(len(members))
    if not known:
        return np.full(len(members), 1.0 / len(members)) if members else weights
    records = [anchor.members[members[i]] for i in known]
    rule = _ml_poly_weights if rule_in_use(anchor) == "ml-poly" else _inverse_mse_weights
    weights[known] = rule(records)
    return weights


# --- Answering from memory -----------------------------------------------------------------------


def anchors_within(interval_s: float, horizon: int) -> list[int]:
    """Indices of the anchors a forecast of ``horizon`` steps of ``interval_s`` reaches: those its
    steps span, give or take ``ANCHOR_TOLERANCE`` of a cadence (a logger's cadence is rarely exactly
    1 s: 1.00027 s on the scion clocks, whose first step must still count as the 1 s anchor)."""
    slack_s = ANCHOR_TOLERANCE * interval_s
    return [a for a, h in enumerate(ANCHOR_HORIZONS_S) if interval_s - slack_s <= h <= horizon * interval_s + slack_s]


def evidence(state: ClockState, horizon: int) -> int:
    """The fewest scored forecasts at any anchor this forecast reaches (0 when it reaches none)."""
    reached = anchors_within(state.interval_s, horizon)
    return min((state.anchors[a].scored for a in reached), default=0)


def _per_step(values: np.ndarray, usable: Sequence[bool], interval_s: float, horizon: int) -> np.ndarray:
    """(..., A) values at the anchors -> (..., H) at each step, from the ``usable`` anchors only (those
    with evidence: one the clock's steps never reach holds none), linear in the horizon in seconds
    and held beyond the first and last of them."""
    steps_s = interval_s * np.arange(1, horizon + 1)
    mask = np.asarray(usable, dtype=bool)
    mask = mask if mask.any() else np.ones_like(mask)
    anchors_s = np.asarray(ANCHOR_HORIZONS_S)[mask]
    flat = values[..., mask].reshape(-1, anchors_s.size)
    out = np.stack([np.interp(steps_s, anchors_s, row) for row in flat])
    return out.reshape(values.shape[:-1] + (horizon,))


def step_weights(state: ClockState, members: Sequence[str], horizon: int) -> np.ndarray:
    """(M, H) remembered weights of ``members`` at each step, columns summing to 1."""
    at_anchors = np.stack([anchor_weights(anchor, members) for anchor in state.anchors], axis=1)  # (M, A)
    weights = _per_step(at_anchors, [anchor.scored > 0 for anchor in state.anchors], state.interval_s, horizon)
    total = weights.sum(axis=0, keepdims=True)
    normalised: np.ndarray = np.divide(
        weights, total, out=np.full_like(weights, 1.0 / max(len(members), 1)), where=total > 0
    )
    return normalised


def weightless_members(state: ClockState, members: Sequence[str], horizon: int) -> set[str]:
    """Members with less than ``WEIGHTLESS_BELOW`` at every anchor this forecast reaches."""
    reached = anchors_within(state.interval_s, horizon)
    if not reached:
        return set()
    weights = np.stack([anchor_weights(state.anchors[a], members) for a in reached], axis=1)
    return {name for name, row in zip(members, weights, strict=True) if np.all(row < WEIGHTLESS_BELOW)}


@dataclass(frozen=True)
class RememberedBounds:
    std_us: np.ndarray  # (H,)
    quantiles_us: np.ndarray  # (levels, H), around zero: add the mean


def remembered_bounds(state: ClockState, levels: Sequence[float], horizon: int) -> RememberedBounds:
    """Quantiles of the fused error at each step: the tracked score quantiles (interpolated over
    levels, with a normal tail beyond the outermost) times the clock's error scale."""
    scales = np.array([a.error_scale_us or 0.0 for a in state.anchors])
    tracked = np.stack([np.sort(a.quantiles) for a in state.anchors])  # (A, L): quantiles never cross
    wanted = [*levels, 0.15865525393145707, 0.8413447460685429]  # and +-1 sd, for std_us
    at_anchors = np.stack([_at_levels(row, wanted) for row in tracked], axis=1) * scales  # (levels, A)
    per_step = _per_step(at_anchors, [a.error_scale_us is not None for a in state.anchors], state.interval_s, horizon)
    quantiles, (low, high) = per_step[: len(levels)], per_step[len(levels) :]
    return RememberedBounds(std_us=np.maximum((high - low) / 2.0, 0.0), quantiles_us=quantiles)


def _at_levels(tracked: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Score quantiles at ``levels`` from the tracked ones: linear between tracked levels; beyond the
    outermost, its distance from the median grown as a normal tail grows."""
    wanted = np.asarray(levels, dtype=float)
    median = float(np.interp(0.5, _TRACKED, tracked))
    out: np.ndarray = np.interp(
        wanted, _TRACKED, tracked
    )  # one call for all: a warm request made ~140 of one level each
    for edge, beyond in ((0, wanted < _TRACKED[0]), (-1, wanted > _TRACKED[-1])):
        if beyond.any():
            out[beyond] = median + (tracked[edge] - median) * (ndtri(wanted[beyond]) / ndtri(_TRACKED[edge]))
    return out


def _at_anchors(values_per_step: np.ndarray, interval_s: float) -> list[float | None]:
    """(H,) per-step values at each anchor the forecast reaches (linear between steps), None elsewhere."""
    horizon = values_per_step.size
    reached = anchors_within(interval_s, horizon)
    at: list[float | None] = [None] * len(ANCHOR_HORIZONS_S)
    values = np.interp(_ANCHORS_S[reached], interval_s * np.arange(1, horizon + 1), values_per_step)
    for a, value in zip(reached, values.tolist(), strict=True):
        at[a] = value
    return at


def remember(
    state: ClockState,
    origin_s: float,
    members: dict[str, np.ndarray],
    fused_mean_us: np.ndarray,
    fused_std_us: np.ndarray,
    remembered: bool,
) -> bool:
    """Keep this answer until its truth arrives; False when it is not kept: an origin within
    ``REMEMBER_EVERY_S`` after the last one remembered (the same samples asked again, a client going
    back in time, or one asking more often than that)."""
    state.requests += 1
    spacing_s = max(REMEMBER_EVERY_S, state.interval_s) * (1 - 1e-9)
    if state.pending and origin_s < state.pending[-1].origin_s + spacing_s:
        return False
    fused = _at_anchors(fused_mean_us, state.interval_s)
    if all(value is None for value in fused):
        return False
    std_at = _at_anchors(fused_std_us, state.interval_s)
    scale: list[float | None] = [
        anchor.error_scale_us or (s * _MEAN_ABS_PER_STD if s else None) if f is not None else None
        for anchor, f, s in zip(state.anchors, fused, std_at, strict=True)
    ]
    bounds = None
    if remembered:
        bounds = [
            list(_at_levels(np.sort(anchor.quantiles), _REPORTED_SIDES)) if f is not None else None
            for anchor, f in zip(state.anchors, fused, strict=True)
        ]
    state.pending.append(
        PendingForecast(
            origin_s=origin_s,
            members=list(members),
            member_means_us=[_at_anchors(mean, state.interval_s) for mean in members.values()],
            fused_mean_us=fused,
            scale_us=scale,
            bounds=bounds,
        )
    )
    del state.pending[:-MAX_PENDING]
    return True
