"""Calibrated inverse-variance fusion: pure functions over arrays, no I/O.

For one series, each member m (a model of a backend, or a classical forecaster) gives a mean
mu_m(h) and its own standard deviation s_m(h) for every step h, and the same for J backtest
origins on the tail of the request's own context, where the truth is known.

1. **Calibration.** A member's own spread is rarely right (the upstream system's raw bounds covered
   0-0.23 % of truths). Its standardised backtest errors z = e / s say by how much. Errors at the
   steps of one origin are strongly correlated (they share a path), so the evidence is counted
   per origin, not per (origin, step): m_j = mean over h of z_jh^2, and a pooled scale
       k = (sum_j m_j + n0) / (J + n0)
   shrinks towards 1 (the member's own claim) with n0 pseudo-origins. Each step then gets its own
   scale, shrunk towards the pooled one, because models misjudge how error grows with the horizon:
       k(h) = (sum_j z_jh^2 + n0 k) / (J_h + n0)
   Calibrated std: sqrt(k(h)) s(h), made non-decreasing over the horizon (an error cannot shrink
   by looking further ahead).
2. **Weights.** w_m(h) = (1 / v_m(h)) / sum_k (1 / v_k(h)); a member with infinite or undefined
   variance gets weight 0, and so does one that claims none, unless every member with a finite
   variance does (a constant context): those share the weight. An optional floor keeps every
   finite member in the blend.
3. **Correlation.** Members' errors are strongly correlated (they all miss the same measurement
   noise), so the independent-errors formula 1 / sum(1 / v) would be far too confident. The
   fused variance is w^T C w with C_mk = r_mk sqrt(v_m v_k), where r is the correlation of the
   members' standardised backtest errors (a Gram matrix), shrunk towards full correlation as
   the scales are: r' = (J r + n0) / (J + n0). A few overlapping origins cannot show that two
   members err independently, and an r that is low by chance narrows the fused bound. One
   shrinkage for the whole matrix keeps C positive semi-definite; with no backtests r' is 1.
4. **Quantiles.** The variance is estimated from few origins, so the predictive distribution is
   Student-t rather than normal: mu + t_q(nu(h)) sqrt(v_f(h)) with nu(h) = J_eff(h) + n0 degrees of
   freedom, the evidence behind the scale at step h (the fewest of any member). Backtest windows
   overlap at long steps: origins d samples apart share max(0, h - d) of the h steps that make up
   their step-h errors, which for a random-walk error correlates them by rho = max(0, 1 - d / h)
   and their squares by rho^2. The mean of J correlated squares carries the evidence of
       J_eff(h) = J^2 / sum_jk rho_jk(h)^2
   independent ones (Kish's effective sample size): J while the windows do not overlap (h at most
   the origin spacing), fewer beyond. With no backtests (a short context) nu is n0 and the bounds
   are wide, as they should be.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtrit

PRIOR_PSEUDO_ORIGINS = 2.0


@dataclass(frozen=True)
class MemberForecast:
    """One member's forecast of one series: the real origin and J backtest origins.

    ``mean_us``/``std_us`` are (H,). ``backtest_errors_us``/``backtest_std_us`` are (J, H):
    truth minus forecast at each backtest origin, NaN where the truth is missing or beyond the
    context; J may be 0.
    """

    mean_us: np.ndarray
    std_us: np.ndarray
    backtest_errors_us: np.ndarray
    backtest_std_us: np.ndarray

    @classmethod
    def without_backtests(cls, mean_us: np.ndarray, std_us: np.ndarray) -> MemberForecast:
        """A forecast judged by the clock's memory, not by backtests (J = 0)."""
        none = np.empty((0, mean_us.size))
        return cls(mean_us, std_us, none, none)


@dataclass(frozen=True)
class FusedForecast:
    mean_us: np.ndarray  # (H,)
    std_us: np.ndarray  # (H,)
    degrees_of_freedom: np.ndarray  # (H,)
    weights: np.ndarray  # (M, H), columns sum to 1
    member_std_us: np.ndarray  # (M, H), calibrated; inf where a member has no usable spread
    calibration_scale: np.ndarray  # (M,) each member's pooled variance scale k (1: its own spread held)


def standardized_errors(member: MemberForecast) -> np.ndarray:
    """Backtest errors in units of the member's own spread, (J, H), NaN where unknown."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = member.backtest_errors_us / member.backtest_std_us
    return np.where(np.isfinite(z), z, np.nan)


def variance_scale(z: np.ndarray, prior: float = PRIOR_PSEUDO_ORIGINS) -> float:
    """Pooled scale k = (sum_j mean_h z_jh^2 + prior) / (J + prior): 1 with no evidence.

    Origins with no known error at any step carry no evidence and do not count in J."""
    known = np.isfinite(z)
    counts = known.sum(axis=1)
    sums = np.where(known, z * z, 0.0).sum(axis=1)
    with_evidence = counts > 0
    evidence = np.sum(sums[with_evidence] / counts[with_evidence])
    return float((evidence + prior) / (np.count_nonzero(with_evidence) + prior))


def step_scales(z: np.ndarray, prior: float = PRIOR_PSEUDO_ORIGINS, pooled: float | None = None) -> np.ndarray:
    """(H,) per-step scales k(h), each shrunk towards the pooled scale (``variance_scale``, unless
    given) by ``prior`` pseudo-origins."""
    pooled = variance_scale(z, prior) if pooled is None else pooled
    known = np.isfinite(z)
    squares = np.where(known, z, 0.0) ** 2
    scales: np.ndarray = (squares.sum(axis=0) + prior * pooled) / (known.sum(axis=0) + prior)
    return scales


def calibrated_std(
    member: MemberForecast,
    prior: float = PRIOR_PSEUDO_ORIGINS,
    z: np.ndarray | None = None,
    pooled: float | None = None,
) -> np.ndarray:
    """(H,) the member's spread rescaled by its backtests, non-decreasing over the horizon (``z``
    and ``pooled``: its ``standardized_errors`` and ``variance_scale``, when the caller has them)."""
    z = standardized_errors(member) if z is None else z
    pooled = variance_scale(z, prior) if pooled is None else pooled
    scales = step_scales(z, prior, pooled) if z.size else np.full(member.std_us.shape, pooled)
    std = np.sqrt(scales) * member.std_us
    return np.where(np.isfinite(std), np.fmax.accumulate(np.where(np.isfinite(std), std, 0.0)), np.inf)


def effective_origins(known: np.ndarray, origins: Sequence[int] | None) -> np.ndarray:
    """(H,) J_eff(h) = n_h^2 / sum_jk rho_jk(h)^2 over the n_h origins with a known error at step h
    (``known`` is (J, H)); ``origins`` are the origins' sample positions, None for origins too far
    apart to overlap at any step (rho = 0 between different origins)."""
    count, horizon = known.shape
    if count == 0:
        return np.zeros(horizon)
    if origins is None:
        rho_squared = np.broadcast_to(np.eye(count), (horizon, count, count))
    else:
        if len(origins) != count:
            raise ValueError(f"{len(origins)} origins for {count} backtest rows")
        rho_squared = _window_overlap_squared(tuple(origins), horizon)
    mask = known.T.astype(float)  # (H, J)
    overlap = np.einsum("hj,hjk,hk->h", mask, rho_squared, mask)
    n = mask.sum(axis=1)
    effective: np.ndarray = np.divide(n * n, overlap, out=np.zeros(horizon), where=overlap > 0)
    return effective


@functools.lru_cache(maxsize=256)
def _window_overlap_squared(origins: tuple[int, ...], horizon: int) -> np.ndarray:
    """(H, J, J) rho_jk(h)^2 = max(0, 1 - |o_j - o_k| / h)^2; the same origins come back with every
    series of the same length. Read-only: the cached array is shared."""
    apart = np.abs(np.subtract.outer(np.asarray(origins, float), np.asarray(origins, float)))
    step = np.arange(1, horizon + 1, dtype=float)[:, None, None]
    rho_squared: np.ndarray = np.clip(1.0 - apart[None] / step, 0.0, None) ** 2
    rho_squared.flags.writeable = False
    return rho_squared


def inverse_variance_weights(variances: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """(M, H) weights from (M, H) variances; non-finite or non-positive variances weigh 0.

    At a step where no member has a positive variance but some claim none at all (every member saw
    a constant context), those share the weight: the limit of inverse variance as theirs go to 0.
    """
    finite = np.isfinite(variances) & (variances >= 0)
    if not finite.any(axis=0).all():
        raise ValueError("some step has no member with a finite variance")
    usable = finite & (variances > 0)
    usable = np.where(usable.any(axis=0), usable, finite & (variances == 0))
    # Relative to the smallest variance of the step: 1 / v overflows for a subnormal v, smallest / v does not.
    positive = usable & (variances > 0)
    smallest = np.min(np.where(positive, variances, np.inf), axis=0)
    precision = np.where(usable, np.divide(smallest, variances, out=np.ones_like(variances), where=positive), 0.0)
    weights: np.ndarray = precision / precision.sum(axis=0, keepdims=True)
    if floor > 0:
        weights = np.where(usable, np.maximum(weights, floor), 0.0)
        weights /= weights.sum(axis=0, keepdims=True)
    return weights


def error_correlation(z: list[np.ndarray]) -> np.ndarray:
    """(M, M) correlation of standardised errors over the (origin, step) pairs all members share.

    Uncentred (errors should be zero-mean; a shared bias is correlation too). Pairs with no
    common evidence are taken as fully correlated.
    """
    count = len(z)
    flat = [zi.ravel() for zi in z]
    corr = np.ones((count, count))
    for i in range(count):
        for k in range(i + 1, count):
            both = np.isfinite(flat[i]) & np.isfinite(flat[k])
            if both.sum() >= 2:
                a, b = _unit_scaled(flat[i][both]), _unit_scaled(flat[k][both])
                denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
                if denominator > 0:
                    corr[i, k] = corr[k, i] = float(np.sum(a * b) / denominator)
    return corr


def _unit_scaled(values: np.ndarray) -> np.ndarray:
    """``values`` over their largest magnitude: a correlation is the same, and its sums of squares
    cannot overflow however large the standardised errors of a member with a tiny spread are."""
    largest = float(np.max(np.abs(values)))
    return values / largest if largest > 0 else values


def shrunk_correlation(corr: np.ndarray, origins: int, prior: float = PRIOR_PSEUDO_ORIGINS) -> np.ndarray:
    """(J r + n0) / (J + n0): towards 1 (errors shared) by ``prior`` pseudo-origins."""
    return (origins * corr + prior) / (origins + prior)


def fuse(
    members: list[MemberForecast], *, origins: Sequence[int] | None = None, weight_floor: float = 0.0
) -> FusedForecast:
    """Calibrate each member on its backtests, weight by inverse variance, account for correlation.

    ``origins``: the backtest origins' sample positions, shared by every member (their rows), for
    the overlap of their windows; None takes them as never overlapping.
    """
    if not members:
        raise ValueError("nothing to fuse")
    errors = [standardized_errors(m) for m in members]
    pooled = np.array([variance_scale(z) for z in errors])
    std = np.stack([calibrated_std(m, z=z, pooled=k) for m, z, k in zip(members, errors, pooled, strict=True)])
    variances = std**2
    weights = inverse_variance_weights(variances, weight_floor)
    usable = weights > 0
    means = np.stack([m.mean_us for m in members])
    mean = np.sum(weights * np.where(usable, means, 0.0), axis=0)
    corr = shrunk_correlation(error_correlation(errors), max(len(z) for z in errors))
    weighted_std = weights * np.where(usable, std, 0.0)  # (M, H)
    fused_variance = np.einsum("mh,mk,kh->h", weighted_std, corr, weighted_std)
    return FusedForecast(
        mean_us=mean,
        std_us=np.sqrt(np.maximum(fused_variance, 0.0)),
        # The fewest effective origins with a known error at each step, plus the prior's pseudo-origins.
        degrees_of_freedom=np.min([effective_origins(np.isfinite(z), origins) for z in errors], axis=0)
        + PRIOR_PSEUDO_ORIGINS,
        weights=weights,
        member_std_us=np.where(usable, std, np.inf),
        calibration_scale=pooled,
    )


def predictive_quantiles(
    mean_us: np.ndarray, std_us: np.ndarray, levels: list[float], degrees_of_freedom: float | np.ndarray
) -> np.ndarray:
    """(levels, H) quantiles of a Student-t forecast with this scale and degrees of freedom (one, or
    one per step)."""
    dof = np.broadcast_to(np.asarray(degrees_of_freedom, dtype=float), mean_us.shape)
    quantiles: np.ndarray = mean_us[None, :] + _t_factors(dof.tobytes(), tuple(levels)) * std_us[None, :]
    return quantiles


@functools.lru_cache(maxsize=256)
def _t_factors(dof_bytes: bytes, levels: tuple[float, ...]) -> np.ndarray:
    """(levels, H) Student-t quantiles for the per-step degrees of freedom (as bytes, to be a key).

    The degrees of freedom follow from the backtest origins and which of their truths are known,
    so series of the same shape repeat them request after request; the inverse CDF was the
    largest part of a request's fusion. stdtrit is the function scipy.stats.t.ppf calls, without
    its per-call argument handling. Read-only: the cached array is shared.
    """
    factors: np.ndarray = stdtrit(np.frombuffer(dof_bytes, dtype=float), np.asarray(levels, dtype=float)[:, None])
    factors.flags.writeable = False
    return factors
