"""Calibrated inverse-variance fusion: pure functions over arrays, no I/O.

For one series, each member m (a model of a backend, or a classical forecaster) gives a mean
mu_m(h) and its own standard deviation s_m(h) for every step h, and the same for J backtest
origins on the tail of the request's own context, where the truth is known.

1. **Calibration.** A member's own spread is rarely right (the upstream system's raw bounds covered
   0-0.23 % of truths), but its *shape* over the horizon usually is. So each member gets one
   variance scale k_m from its standardised backtest errors z = e / s:
       k_m = (sum z^2 + n0) / (n + n0)
   a mean of z^2 shrunk towards 1 by n0 pseudo-observations (few origins must not give a member
   a tiny variance by luck). Calibrated variance: v_m(h) = k_m s_m(h)^2.
2. **Weights.** w_m(h) = (1 / v_m(h)) / sum_k (1 / v_k(h)); a member with infinite or undefined
   variance gets weight 0. An optional floor keeps every finite member in the blend.
3. **Correlation.** Members' errors are strongly correlated (they all miss the same measurement
   noise), so the independent-errors formula 1 / sum(1 / v) would be far too confident. The
   fused variance is w^T C w with C_mk = r_mk sqrt(v_m v_k), where r is the correlation of the
   members' standardised backtest errors (a Gram matrix, so C is positive semi-definite); where
   there are no backtests r is taken as 1, the most cautious choice.
4. **Quantiles** of the fused forecast are normal: mu + z_q sqrt(v_f).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

PRIOR_PSEUDO_OBSERVATIONS = 8.0


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


@dataclass(frozen=True)
class FusedForecast:
    mean_us: np.ndarray  # (H,)
    std_us: np.ndarray  # (H,)
    weights: np.ndarray  # (M, H), columns sum to 1
    member_std_us: np.ndarray  # (M, H), calibrated


def standardized_errors(member: MemberForecast) -> np.ndarray:
    """Backtest errors in units of the member's own spread, (J, H), NaN where unknown."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = member.backtest_errors_us / member.backtest_std_us
    return np.where(np.isfinite(z), z, np.nan)


def variance_scale(z: np.ndarray, prior: float = PRIOR_PSEUDO_OBSERVATIONS) -> float:
    """k = (sum z^2 + prior) / (n + prior): 1 with no evidence, the mean of z^2 with a lot."""
    known = z[np.isfinite(z)]
    return float((np.sum(known**2) + prior) / (known.size + prior))


def inverse_variance_weights(variances: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """(M, H) weights from (M, H) variances; non-finite or non-positive variances weigh 0."""
    usable = np.isfinite(variances) & (variances > 0)
    if not usable.any(axis=0).all():
        raise ValueError("some step has no member with a finite variance")
    precision = np.where(usable, 1.0 / np.where(usable, variances, 1.0), 0.0)
    weights = precision / precision.sum(axis=0, keepdims=True)
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
                a, b = flat[i][both], flat[k][both]
                denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
                if denominator > 0:
                    corr[i, k] = corr[k, i] = float(np.sum(a * b) / denominator)
    return corr


def fuse(members: list[MemberForecast], *, weight_floor: float = 0.0) -> FusedForecast:
    """Calibrate each member on its backtests, weight by inverse variance, account for correlation."""
    if not members:
        raise ValueError("nothing to fuse")
    z = [standardized_errors(m) for m in members]
    scales = np.array([variance_scale(zi) for zi in z])
    raw_std = np.stack([m.std_us for m in members])
    variances = scales[:, None] * raw_std**2
    weights = inverse_variance_weights(variances, weight_floor)
    means = np.stack([m.mean_us for m in members])
    usable = weights > 0
    mean = np.sum(weights * np.where(usable, means, 0.0), axis=0)
    std = np.sqrt(np.where(usable, variances, 0.0))
    corr = error_correlation(z)
    weighted_std = weights * std  # (M, H)
    fused_variance = np.einsum("mh,mk,kh->h", weighted_std, corr, weighted_std)
    return FusedForecast(
        mean_us=mean,
        std_us=np.sqrt(np.maximum(fused_variance, 0.0)),
        weights=weights,
        member_std_us=np.where(usable, std, np.inf),
    )


def normal_quantiles(mean_us: np.ndarray, std_us: np.ndarray, levels: list[float]) -> np.ndarray:
    """(levels, H) quantiles of a normal forecast."""
    z = np.array([NormalDist().inv_cdf(level) for level in levels])
    return mean_us[None, :] + z[:, None] * std_us[None, :]
