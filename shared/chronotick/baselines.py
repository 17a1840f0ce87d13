"""Classical offset forecasters that every learned model must beat.

They read a context of past offsets (microseconds, one sample per `interval_s`, NaN where a
measurement is missing) and return the next `horizon` offsets with a standard deviation per
step: the gateway fuses forecasts by inverse variance, so each forecaster must say how sure it
is, in the same units, about the *measured* offset it will be compared with.

- LastValue: persistence; its spread is the context's own k-step change.
- ChronyLinearFit: what chronyd does (robust weighted line, runs test to shorten the window).
- KalmanDrift: a three-state clock model (offset, frequency, frequency drift) whose noise
  levels are measured from the context itself.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Fewest k-step differences from which LastValue trusts an RMS.
_MIN_LAG_PAIRS = 2
# _lag_rms_us: lags x samples per block of its arrays (2 MB each in float64).
_LAG_BLOCK_ELEMENTS = 1 << 18
# Huber's tuning constant (in robust standard deviations) for ChronyLinearFit's weights.
_HUBER_C = 2.0
_IRLS_ITERATIONS = 2
_MAD_TO_SD = 1.482602218505602
# One-sided 5 % point of the normal: the runs test's critical level.
_RUNS_Z = 1.6448536269514722
_MAX_RESIDUAL_CORRELATION = 0.95
# KalmanDrift: fewest observations from which it estimates anything (three fix a quadratic).
_KALMAN_MIN_OBSERVATIONS = 3
# KalmanDrift: updates skipped before innovations count towards calibration (diffuse start).
_KALMAN_WARMUP_UPDATES = 3
_KALMAN_MIN_CALIBRATION_UPDATES = 5
# Lags (in samples) at which KalmanDrift measures its noise; capped at a quarter of the context
# so each lag still has many second differences.
_NOISE_LAGS = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64])
# _clock_noise: a lag whose structure is below this fraction of the largest (none at all, say) is
# weighted as if it were this: a finite weight, so it is fitted all but exactly.
_MIN_RELATIVE_STRUCTURE = 1e-30


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make == ambiguous
class ClassicalForecast:
    """(horizon,) predicted offsets and their predictive standard deviations, in microseconds."""

    mean_us: np.ndarray
    std_us: np.ndarray


class ClassicalForecaster(Protocol):
    """What the gateway and benchmarks call: a named forecaster of mean and spread.

    ``forecast_with_backtests`` returns ``forecast(context_us)`` (to rounding), then the forecast
    of each backtest cut ``context_us[:origin]``, made from the data before its origin only, as
    ``forecast`` would make it, except that every cut uses the noise levels measured once, on the
    data before the earliest origin. The gateway asks for a series and its cuts on every request:
    one measurement (and, for KalmanDrift, one pass of the filter; for the others, one batch of
    array operations) for all the cuts makes that several times cheaper than a forecast per cut.
    """

    name: ClassVar[str]

    def forecast(self, context_us: np.ndarray, horizon: int, *, interval_s: float = 1.0) -> ClassicalForecast: ...

    def forecast_with_backtests(
        self,
        context_us: np.ndarray,
        origins: Sequence[int],
        horizon: int,
        *,
        interval_s: float = 1.0,
    ) -> list[ClassicalForecast]: ...


def _observed(context_us: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the observed (non-NaN) samples, after validating the inputs."""
    context_us = np.asarray(context_us, dtype=np.float64)
    if context_us.ndim != 1:
        raise ValueError(f"context_us must be 1-D, got shape {context_us.shape}")
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    index = np.flatnonzero(~np.isnan(context_us))
    if index.size == 0:
        raise ValueError("context_us has no observed (non-NaN) value")
    return index, context_us[index]


def _check_interval(interval_s: float) -> None:
    if not (math.isfinite(interval_s) and interval_s > 0.0):
        raise ValueError(f"interval_s must be positive and finite, got {interval_s}")


class _ForecastsFromBacktests:
    """``forecast`` is ``forecast_with_backtests`` without cuts: each forecaster is written once,
    for the real origin and its backtest cuts together (the gateway's use)."""

    def forecast(self, context_us: np.ndarray, horizon: int, *, interval_s: float = 1.0) -> ClassicalForecast:
        return self.forecast_with_backtests(context_us, (), horizon, interval_s=interval_s)[0]

    def forecast_with_backtests(
        self, context_us: np.ndarray, origins: Sequence[int], horizon: int, *, interval_s: float = 1.0
    ) -> list[ClassicalForecast]:
        raise NotImplementedError


def _checked_origins(context_us: np.ndarray, origins: Sequence[int]) -> np.ndarray:
    """The backtest origins as an integer array, each a cut of the context (1 <= origin <= n)."""
    ends = np.asarray(origins, dtype=np.int64).reshape(-1)
    if np.any(ends < 1) or np.any(ends > len(context_us)):
        raise ValueError(f"origins must lie in 1..{len(context_us)}, got {list(origins)}")
    return ends


def _observations_before(index: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many of the observations (at ``index``) come before each end; every cut needs one."""
    counts = np.searchsorted(index, ends)
    if np.any(counts == 0):
        raise ValueError("context_us has no observed (non-NaN) value before an origin")
    return counts


@dataclass(frozen=True, eq=False)
class _Lines:
    """Weighted least-squares lines in sample index, one per row (a context or a backtest cut),
    with what their prediction variance needs: (J,) each."""

    centre: np.ndarray
    mean_us: np.ndarray
    slope_us_per_sample: np.ndarray
    sum_w: np.ndarray
    sum_w_dx2: np.ndarray

    def at(self, index: np.ndarray) -> np.ndarray:
        """(J, K) each line at its own row of ``index`` (J, K)."""
        slope = self.slope_us_per_sample[:, None]
        values: np.ndarray = self.mean_us[:, None] + slope * (index - self.centre[:, None])
        return values


def _fit_lines(index: np.ndarray, offset_us: np.ndarray, weights: np.ndarray) -> _Lines:
    """A line through each row of (J, m) samples, all rows at once: the gateway fits a context
    and its backtest cuts together, and numpy's per-call cost would otherwise dominate."""
    # Centring the abscissa keeps the normal equations well conditioned for long contexts.
    sum_w = weights.sum(axis=1)
    centre = (weights * index).sum(axis=1) / sum_w
    mean_us = (weights * offset_us).sum(axis=1) / sum_w
    dx = index - centre[:, None]
    w_dx = weights * dx
    sum_w_dx2 = (w_dx * dx).sum(axis=1)
    cross = (w_dx * (offset_us - mean_us[:, None])).sum(axis=1)
    slope = np.divide(cross, sum_w_dx2, out=np.zeros_like(cross), where=sum_w_dx2 > 0)
    return _Lines(centre, mean_us, slope, sum_w, sum_w_dx2)


def last_value_forecast(context_us: np.ndarray, horizon: int) -> np.ndarray:
    """(horizon,) the last observed offset repeated: the persistence baseline.

    A disciplined clock's offset wanders slowly compared with the sampling
    interval, so persistence is hard to beat at short horizons.
    """
    _, offset_us = _observed(context_us, horizon)
    return np.full(horizon, offset_us[-1])


def linear_fit_forecast(context_us: np.ndarray, horizon: int, *, window: int = 64) -> np.ndarray:
    """(horizon,) a least-squares line through the last `window` observed offsets, extrapolated.

    The line is fitted against sample index, so gaps keep their true spacing;
    its slope is the residual frequency error (ppm when sampled every second),
    which is what makes an undisciplined clock's offset predictable.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    index, offset_us = _observed(context_us, horizon)
    index, offset_us = index[None, -window:], offset_us[None, -window:]
    line = _fit_lines(index, offset_us, np.ones(index.shape))
    forecast: np.ndarray = line.at(np.arange(len(context_us), len(context_us) + horizon)[None])[0]
    return forecast


def _lag_rms_us(context_us: np.ndarray, ends: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """(E, K) RMS of the k-step changes of each prefix ``context_us[:end]``, for each k in that
    prefix's row of ``lags`` (E, K; each row increasing, >= 1).

    Measured directly up to half the prefix (beyond, too few independent pairs); longer lags and
    lags without enough pairs extend the longest measured one as a random walk (sqrt(k)).
    Infinite when nothing could be measured: such a forecast should get no fusion weight.
    The prefixes (a context and its backtest cuts) share the work: each lag's changes are taken
    once along the longest prefix and summed between consecutive ends, so each prefix's sum is a
    running total of those pieces. Lags go in blocks that keep the arrays small for long contexts.
    """
    measurable = lags <= (ends // 2)[:, None]
    sums_us2 = np.zeros(lags.shape)
    pairs = np.zeros(lags.shape, dtype=np.int64)
    if np.any(measurable):
        n = int(ends.max())
        shortest, longest = int(lags[measurable].min()), int(lags[measurable].max())
        observed = ~np.isnan(context_us[:n])
        filled_us = np.where(observed, context_us[:n], 0.0)
        # Row r of these views is the context delayed by `longest - r` samples (unobserved before
        # its start): the change over lag k ending at sample t is
        # filled_us[t] - delayed_us[longest - k, t].
        delayed_us = sliding_window_view(np.concatenate((np.zeros(longest), filled_us)), n)
        delayed_observed = sliding_window_view(np.concatenate((np.zeros(longest, dtype=bool), observed)), n)
        # Pieces between consecutive distinct ends; column j of a running total ends at distinct[j].
        distinct, piece = np.unique(ends, return_inverse=True)
        starts = np.concatenate(([0], distinct[:-1]))
        block = max(1, _LAG_BLOCK_ELEMENTS // n)
        for low in range(shortest, longest + 1, block):
            high = min(low + block, longest + 1)
            delays = slice(longest - high + 1, longest - low + 1)  # lags high - 1 down to low
            both = delayed_observed[delays] & observed
            change_us = (filled_us - delayed_us[delays]) * both
            running_us2 = np.cumsum(np.add.reduceat(change_us * change_us, starts, axis=1), axis=1)
            running_pairs = np.cumsum(np.add.reduceat(both, starts, axis=1, dtype=np.int64), axis=1)
            end_of, at = np.nonzero(measurable & (lags >= low) & (lags < high))
            lag_row = high - 1 - lags[end_of, at]
            sums_us2[end_of, at] = running_us2[lag_row, piece[end_of]]
            pairs[end_of, at] = running_pairs[lag_row, piece[end_of]]
    measured = pairs >= _MIN_LAG_PAIRS
    direct_us = np.sqrt(sums_us2 / np.maximum(pairs, 1))
    # Each lag takes the longest measured lag up to it (-1: none yet, so infinite).
    known = np.maximum.accumulate(np.where(measured, np.arange(lags.shape[1]), -1), axis=1)
    row = np.arange(lags.shape[0])[:, None]
    column = np.maximum(known, 0)
    rms_us = direct_us[row, column] * np.sqrt(lags / lags[row, column])
    return np.where(known >= 0, rms_us, np.inf)


@dataclass(frozen=True)
class LastValue(_ForecastsFromBacktests):
    """Persistence, with the spread a random walk would have after the same number of steps.

    std at step h is the RMS (not the standard deviation: persistence ignores drift, so drift
    is part of its error) of the context's k-step changes, k = h + samples since the last
    observation.
    """

    name: ClassVar[str] = "last-value"

    def forecast_with_backtests(
        self,
        context_us: np.ndarray,
        origins: Sequence[int],
        horizon: int,
        *,
        interval_s: float = 1.0,
    ) -> list[ClassicalForecast]:
        _check_interval(interval_s)
        index, offset_us = _observed(context_us, horizon)
        context_us = np.asarray(context_us, dtype=np.float64)
        ends = np.concatenate(([context_us.size], _checked_origins(context_us, origins)))
        last = _observations_before(index, ends) - 1
        lags = (ends - 1 - index[last])[:, None] + np.arange(1, horizon + 1)
        spreads_us = _lag_rms_us(context_us, ends, lags)
        return [
            ClassicalForecast(np.full(horizon, offset_us[j]), spread_us)
            for j, spread_us in zip(last.tolist(), spreads_us, strict=True)
        ]


@dataclass(frozen=True)
class ClockNoise:
    """Intensities: white measurement noise R, phase random walk, frequency random walk."""

    measurement_us2: float
    phase_walk_us2_per_s: float
    freq_walk_ppm2_per_s: float


def _clock_noise(context_us: np.ndarray, interval_s: float) -> ClockNoise:
    """Noise levels from the context's second-difference structure (Hadamard/Allan style).

    For the model offset = integral of a random-walk frequency, plus a phase random walk, plus
    white measurement noise, the variance of x[t+2k] - 2x[t+k] + x[t] about its mean (which
    absorbs a constant drift) is 6R + 2 q_phase tau + (2/3) q_freq tau^3 with tau = k interval.
    The three intensities are a non-negative least-squares fit of that curve over several lags,
    in relative error so the short lags (which carry R) count as much as the long ones.
    """
    lags = _NOISE_LAGS[_NOISE_LAGS <= max(1, context_us.size // 4)]
    taus, structure = [], []
    gaps = bool(np.isnan(context_us).any())
    for lag in lags.tolist():
        second = context_us[2 * lag :] - 2.0 * context_us[lag:-lag] + context_us[: -2 * lag]
        if gaps:
            second = second[~np.isnan(second)]
        if second.size >= _MIN_LAG_PAIRS:
            taus.append(lag * interval_s)
            # np.var's own steps (the same sums, so the same value) without its overhead, which
            # was a third of this loop's cost.
            deviation = second - np.add.reduce(second) / second.size
            structure.append(float(np.add.reduce(deviation * deviation)) / second.size)
    if not structure or max(structure) <= 0.0:
        return ClockNoise(0.0, 0.0, 0.0)
    tau = np.asarray(taus)
    # Fitted in units of the largest value and scaled back (in relative error the solution is the
    # same): the weights 1 / value then stay finite whatever the offsets' scale, even next to tau^3.
    unit_us2 = max(structure)
    target = np.asarray(structure) / unit_us2
    design = np.column_stack((np.full(tau.size, 6.0), 2.0 * tau, (2.0 / 3.0) * tau**3))
    relative = 1.0 / np.maximum(target, _MIN_RELATIVE_STRUCTURE)
    best, best_cost = np.zeros(3), math.inf
    # Non-negative least squares by enumeration: three unknowns give seven supports.
    for support in ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)):
        columns = design[:, support] * relative[:, None]
        solution, *_ = np.linalg.lstsq(columns, target * relative, rcond=None)
        if np.any(solution < 0.0):
            continue
        cost = float(np.sum((columns @ solution - target * relative) ** 2))
        if cost < best_cost:
            best_cost, best = cost, np.zeros(3)
            best[list(support)] = solution
    return ClockNoise(*(float(value) * unit_us2 for value in best))


_NOISE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=64)
def _clock_noise_of(context_bytes: bytes, interval_s: float) -> ClockNoise:
    return _clock_noise(np.frombuffer(context_bytes, dtype=np.float64), interval_s)


def measured_noise(context_us: np.ndarray, interval_s: float) -> ClockNoise:
    """_clock_noise, measured once per context: ChronyLinearFit and KalmanDrift both need it for
    the same contexts (the gateway runs both on every series and its earliest backtest cut), and
    it is a large part of their cost. Keyed by the context's bytes, so equal contexts share it.
    The lock keeps the cache whole should forecasters run in several threads at once; the gateway
    runs them one after the other on its event loop."""
    key = np.ascontiguousarray(context_us, dtype=np.float64).tobytes()
    with _NOISE_LOCK:
        return _clock_noise_of(key, float(interval_s))


def _backtest_noise(context_us: np.ndarray, ends: np.ndarray, interval_s: float) -> ClockNoise:
    """The noise levels every backtest cut uses: measured on the data before the earliest origin,
    so no cut sees data after its own origin, and measured once for all the cuts (and, through
    measured_noise, for both forecasters that need it)."""
    return measured_noise(context_us[: int(ends.min())], interval_s)


def _too_few_runs(residuals_us: np.ndarray) -> np.ndarray:
    """Wald-Wolfowitz runs test, row by row: are the residual signs too clustered for a line?

    chronyd's regression (regress.c) rejects a fit whose residuals have fewer sign runs than a
    tabulated critical value; this is the normal approximation of that test at 5 %. Zero residuals
    count for neither sign.
    """
    signs = np.sign(residuals_us)
    positives, negatives = (signs > 0).sum(axis=1), (signs < 0).sum(axis=1)
    # Each zero takes the sign before it, so the runs are those of the non-zero signs.
    last_signed = np.maximum.accumulate(np.where(signs != 0, np.arange(signs.shape[1]), 0), axis=1)
    signs = np.take_along_axis(signs, last_signed, axis=1)
    runs = 1 + np.count_nonzero((signs[:, 1:] != signs[:, :-1]) & (signs[:, :-1] != 0), axis=1)
    mixed = (positives > 0) & (negatives > 0)
    n = np.where(mixed, positives + negatives, 2)  # 2: any count that keeps the unused rows finite
    product = 2.0 * positives * negatives
    expected = 1.0 + product / n
    variance = product * (product - n) / (n * n * (n - 1))
    too_few_runs: np.ndarray = mixed & (runs < expected - _RUNS_Z * np.sqrt(variance))
    return too_few_runs


def _medians(values: np.ndarray) -> np.ndarray:
    """np.median along each row, by one partition: np.median's own overhead is most of its cost
    on a few dozen values."""
    m = values.shape[1]
    low, high = (m - 1) // 2, m // 2
    ordered = np.partition(values, (low, high), axis=1)
    return (ordered[:, low] + ordered[:, high]) / 2.0


@dataclass(frozen=True, eq=False)
class _RobustFits:
    lines: _Lines
    residuals_us: np.ndarray  # (J, m)
    unit_variance_us2: np.ndarray  # variance of an observation of weight 1; NaN with <= 2 samples
    scale_us: np.ndarray


def _robust_lines(index: np.ndarray, offset_us: np.ndarray) -> _RobustFits:
    """A line with Huber weights through each row of (J, m) samples, each row on its own.

    chrony weights samples by their measured dispersion; a bare offset series has none, so the
    residual stands in: samples within _HUBER_C robust standard deviations weigh 1, outliers
    (a congested NTP exchange) weigh less in proportion to how far out they are. A row whose
    robust scale vanishes (an exact line) keeps its weights from then on.
    """
    tiny_us = 1e-9 * (1.0 + np.max(np.abs(offset_us), axis=1))
    weights = np.ones(index.shape)
    lines = _fit_lines(index, offset_us, weights)
    scale_us = np.zeros(index.shape[0])
    iterating = np.ones(index.shape[0], dtype=bool)
    for _ in range(_IRLS_ITERATIONS):
        residuals_us = offset_us - lines.at(index)
        scale_us = np.where(iterating, _MAD_TO_SD * _medians(np.abs(residuals_us)), scale_us)
        iterating &= scale_us > tiny_us
        if not np.any(iterating):
            break
        distance_us = np.maximum(np.abs(residuals_us), tiny_us[:, None])
        huber = np.minimum(1.0, (_HUBER_C * scale_us)[:, None] / distance_us)
        weights = np.where(iterating[:, None], huber, weights)
        lines = _fit_lines(index, offset_us, weights)
    residuals_us = offset_us - lines.at(index)
    dof = index.shape[1] - 2
    if dof > 0:
        variance = (weights * residuals_us**2).sum(axis=1) / dof
    else:
        variance = np.full(index.shape[0], np.nan)
    return _RobustFits(lines, residuals_us, variance, scale_us)


def _correlation_inflation(residuals_us: np.ndarray) -> np.ndarray:
    """(1 + rho) / (1 - rho) for each row's lag-1 residual autocorrelation rho > 0, else 1.

    A disciplined clock wanders around any line, so neighbouring residuals are alike and the
    window holds fewer independent samples than it has points; for AR(1) residuals the line's
    parameter variance grows by this factor. Capped at rho = _MAX_RESIDUAL_CORRELATION.
    """
    if residuals_us.shape[1] < 3:
        return np.ones(residuals_us.shape[0])
    centred = residuals_us - residuals_us.mean(axis=1, keepdims=True)
    energy = (centred * centred).sum(axis=1)
    lagged = (centred[:, 1:] * centred[:, :-1]).sum(axis=1)
    rho = np.divide(lagged, energy, out=np.zeros_like(energy), where=energy > 0.0)
    rho = np.minimum(np.maximum(rho, 0.0), _MAX_RESIDUAL_CORRELATION)
    inflation: np.ndarray = (1.0 + rho) / (1.0 - rho)
    return inflation


@dataclass(frozen=True)
class ChronyLinearFit(_ForecastsFromBacktests):
    """chronyd's offset model: a robust weighted line through recent samples, extrapolated.

    Start from the last `window` observations; while the residual signs fail the runs test (the
    offset bent inside the window) and half the window still has `min_samples`, keep the newest
    half and refit, as chrony discards old samples after a frequency change.
    Predictive variance at future index x, with s2 the weighted residual variance and tau the
    time since the last sample: s2 * (1 + F * (1/sum(w) + (x - c)^2 / sum(w dx^2)))
    + q_phase tau + q_freq tau^3 / 3, i.e. a new unit-weight measurement, the line's parameter
    covariance inflated by F for correlated residuals (_correlation_inflation), and the clock's
    phase and frequency wander after the last sample, which no line follows (measured from the
    context as for KalmanDrift; chrony grows its dispersion with time for the same reason).
    Infinite with two samples or fewer. A context and its backtest cuts are fitted together.
    """

    name: ClassVar[str] = "chrony-fit"
    window: int = 64
    min_samples: int = 8

    def forecast_with_backtests(
        self,
        context_us: np.ndarray,
        origins: Sequence[int],
        horizon: int,
        *,
        interval_s: float = 1.0,
    ) -> list[ClassicalForecast]:
        _check_interval(interval_s)
        index, offset_us = _observed(context_us, horizon)
        context_us = np.asarray(context_us, dtype=np.float64)
        cut_ends = _checked_origins(context_us, origins)
        ends = np.concatenate(([context_us.size], cut_ends))
        observations = _observations_before(index, ends)
        # Row 0, the real origin, has the noise of the whole context; the cuts share theirs.
        noises = [measured_noise(context_us, interval_s)]
        if cut_ends.size:
            noises += [_backtest_noise(context_us, cut_ends, interval_s)] * cut_ends.size
        phase_walk_us2_per_s = np.array([noise.phase_walk_us2_per_s for noise in noises])
        freq_walk_ppm2_per_s = np.array([noise.freq_walk_ppm2_per_s for noise in noises])
        forecasts: dict[int, ClassicalForecast] = {}
        # The last `window` observations before each origin: rows with as many are fitted together.
        sizes = np.minimum(observations, self.window)
        for size in np.unique(sizes).tolist():
            group = np.flatnonzero(sizes == size)
            taken = observations[group, None] - size + np.arange(size)
            lines, unit_variance_us2, inflation = self._fits(index[taken].astype(np.float64), offset_us[taken])
            future = (ends[group, None] + np.arange(horizon)).astype(np.float64)
            parameter_spread = 1.0 / lines.sum_w[:, None] + np.divide(
                (future - lines.centre[:, None]) ** 2,
                lines.sum_w_dx2[:, None],
                out=np.zeros(future.shape),
                where=lines.sum_w_dx2[:, None] > 0,
            )
            variance = unit_variance_us2[:, None] * (1.0 + inflation[:, None] * parameter_spread)
            ahead_s = (future - index[observations[group] - 1, None]) * interval_s
            variance = (
                variance
                + phase_walk_us2_per_s[group, None] * ahead_s
                + freq_walk_ppm2_per_s[group, None] * ahead_s**3 / 3.0
            )
            std_us = np.where(np.isfinite(unit_variance_us2)[:, None], np.sqrt(variance), np.inf)
            for row, mean_us, spread_us in zip(group.tolist(), lines.at(future), std_us, strict=True):
                forecasts[row] = ClassicalForecast(mean_us, spread_us)
        return [forecasts[row] for row in range(ends.size)]

    def _fits(self, index: np.ndarray, offset_us: np.ndarray) -> tuple[_Lines, np.ndarray, np.ndarray]:
        """Each row's robust line (with its unit variance and correlation inflation), its window
        shortened by the runs test as the class describes, row by row."""
        rows = np.arange(index.shape[0])
        # Each row's latest fit: a row refitted on the newer half of its window overwrites it.
        final = np.empty((7, rows.size))
        while True:
            fit = _robust_lines(index, offset_us)
            lines = fit.lines
            final[:, rows] = (
                lines.centre,
                lines.mean_us,
                lines.slope_us_per_sample,
                lines.sum_w,
                lines.sum_w_dx2,
                fit.unit_variance_us2,
                _correlation_inflation(fit.residuals_us),
            )
            half = index.shape[1] // 2
            if half < self.min_samples:
                break
            again = (fit.scale_us > 0.0) & _too_few_runs(fit.residuals_us)
            if not np.any(again):
                break
            index, offset_us, rows = index[again, half:], offset_us[again, half:], rows[again]
        return _Lines(*final[:5]), final[5], final[6]


@dataclass(frozen=True)
class KalmanTuning:
    """What KalmanDrift's filter runs with: its noise intensities and its diffuse start's scale."""

    measurement_us2: float
    phase_walk_us2_per_s: float
    freq_walk_ppm2_per_s: float
    spread_us: float


def _kalman_tuning(context_us: np.ndarray, noise: ClockNoise) -> KalmanTuning:
    """The tuning that ``context_us`` (at least one observation) and its ``noise`` give."""
    offset_us = context_us[~np.isnan(context_us)]
    spread_us = max(float(np.max(np.abs(offset_us - offset_us[0]))), 1e-6)
    # Floor R so a noise-free context still gives a well-posed update.
    r = max(noise.measurement_us2, (1e-9 * (1.0 + abs(float(offset_us[0])))) ** 2)
    return KalmanTuning(r, noise.phase_walk_us2_per_s, noise.freq_walk_ppm2_per_s, spread_us)


@dataclass
class KalmanPass:
    """KalmanDrift's filter part-way along a clock: its tuning, its state after the samples it has
    taken, and the innovations that calibrate its spread. ``advance`` takes the samples that follow;
    ``forecast`` says what it expects from where it stands: one pass forecasts a context and all its
    backtest cuts as it goes by them.

    It is not carried from one request of a clock to the next. A filter resumed on the new samples
    only (its noise levels and tuning measured on an earlier context) forecast worse than one pass over
    each request's own context: MAE 0.6-4 % higher on the scion clocks with the noise 10-64 s old
    (``benchmarks/classical_carry.py``). The pass over the window, with the noise measured on that
    window, is part of what makes this forecaster good."""

    tuning: KalmanTuning
    interval_s: float
    state: tuple[float, float, float] = (0.0, 0.0, 0.0)  # offset us, frequency ppm, drift ppm/s
    # The covariance's upper triangle: p00, p01, p02, p11, p12, p22.
    covariance: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    updates: int = 0
    nis_sum: float = 0.0
    nis_count: int = 0

    @classmethod
    def start(cls, first_us: float, tuning: KalmanTuning, interval_s: float) -> KalmanPass:
        """Diffuse start: the first sample fixes the offset; frequency and drift may be anything the
        context's own range allows."""
        spread_us, dt = tuning.spread_us, interval_s
        return cls(
            tuning,
            interval_s,
            (float(first_us), 0.0, 0.0),
            (tuning.measurement_us2, 0.0, 0.0, (spread_us / dt) ** 2, 0.0, (spread_us / (dt * dt)) ** 2),
        )

    def advance(self, offsets_us: Sequence[float] | np.ndarray) -> None:
        """Take the next samples, one per interval (NaN: missing, a prediction step only)."""
        r = self.tuning.measurement_us2
        qp, qf = self.tuning.phase_walk_us2_per_s, self.tuning.freq_walk_ppm2_per_s
        dt = self.interval_s
        h = dt * dt / 2.0
        q00, q01, q11 = qp * dt + qf * dt**3 / 3.0, qf * dt * dt / 2.0, qf * dt
        x0, x1, x2 = self.state
        p00, p01, p02, p11, p12, p22 = self.covariance
        updates, nis_sum, nis_count = self.updates, self.nis_sum, self.nis_count
        values = offsets_us.tolist() if isinstance(offsets_us, np.ndarray) else offsets_us
        for z in values:
            x0, x1 = x0 + dt * x1 + h * x2, x1 + dt * x2
            # P <- F P F' + Q, unrolled: numpy's per-call overhead on 3x3 would cost ~5x more.
            a00 = p00 + dt * p01 + h * p02
            a01 = p01 + dt * p11 + h * p12
            a02 = p02 + dt * p12 + h * p22
            a11, a12 = p11 + dt * p12, p12 + dt * p22
            p00, p01, p02 = a00 + dt * a01 + h * a02 + q00, a01 + dt * a02 + q01, a02
            p11, p12 = a11 + dt * a12 + q11, a12
            if z != z:  # NaN: missing sample, prediction only
                continue
            s = p00 + r
            k0, k1, k2 = p00 / s, p01 / s, p02 / s
            innovation = z - x0
            x0, x1, x2 = x0 + k0 * innovation, x1 + k1 * innovation, x2 + k2 * innovation
            p11, p12, p22 = p11 - k1 * p01, p12 - k1 * p02, p22 - k2 * p02
            p00, p01, p02 = p00 - k0 * p00, p01 - k0 * p01, p02 - k0 * p02
            updates += 1
            if updates > _KALMAN_WARMUP_UPDATES:
                nis_sum += innovation * innovation / s
                nis_count += 1
        self.state = (x0, x1, x2)
        self.covariance = (p00, p01, p02, p11, p12, p22)
        self.updates, self.nis_sum, self.nis_count = updates, nis_sum, nis_count

    def forecast(self, horizon: int) -> ClassicalForecast:
        """From the last sample taken, ``horizon`` intervals ahead."""
        r = self.tuning.measurement_us2
        qp, qf = self.tuning.phase_walk_us2_per_s, self.tuning.freq_walk_ppm2_per_s
        x0, x1, x2 = self.state
        p00, p01, p02, p11, p12, p22 = self.covariance
        tau = self.interval_s * np.arange(1, horizon + 1)
        calibration = self.nis_sum / self.nis_count if self.nis_count >= _KALMAN_MIN_CALIBRATION_UPDATES else 1.0
        mean_us = x0 + x1 * tau + x2 * tau**2 / 2.0
        state_var = p00 + 2.0 * tau * p01 + tau**2 * (p02 + p11) + tau**3 * p12 + tau**4 / 4.0 * p22
        variance = calibration * (state_var + qp * tau + qf * tau**3 / 3.0 + r)
        return ClassicalForecast(mean_us, np.sqrt(np.maximum(variance, 0.0)))


def _kalman_forecasts(
    context_us: np.ndarray,
    first: int,
    ends: list[int],
    horizon: int,
    interval_s: float,
    tuning: KalmanTuning,
) -> list[ClassicalForecast]:
    """The filter run once along the context from its first observation (at ``first``), with a
    forecast from each prefix ``context_us[:end]`` as it passes (``ends`` ascending, each past
    ``first``): a prefix's forecast is the one a pass over that prefix alone would give."""
    kalman = KalmanPass.start(float(context_us[first]), tuning, interval_s)
    forecasts, start = [], first + 1
    for end in ends:
        kalman.advance(context_us[start:end])
        start = end
        forecasts.append(kalman.forecast(horizon))
    return forecasts


@dataclass(frozen=True)
class KalmanDrift(_ForecastsFromBacktests):
    """A Kalman filter on (offset us, frequency ppm, drift ppm/s), noise measured from the context.

    Transition over dt: offset += freq dt + drift dt^2/2, freq += drift dt; process noise is
    a phase random walk plus a frequency random walk (the drift is a constant the filter learns;
    slower changes are absorbed by the frequency walk). Intensities come from _clock_noise.
    Missing samples are prediction-only steps. The predictive variance is then scaled by the
    mean normalised innovation squared (an innovation-based calibration: if the measured noise
    levels are off by a common factor, the filter's gain is unchanged but its variances are not).
    Forecast variance at tau ahead, with row = (1, tau, tau^2/2):
    calibration * (row P row' + q_phase tau + q_freq tau^3/3 + R).
    The backtest cuts share one tuning (noise levels and the diffuse start's scale, both from the
    data before the earliest origin), so one pass of the filter forecasts them all.
    """

    name: ClassVar[str] = "kalman"

    def forecast_with_backtests(
        self,
        context_us: np.ndarray,
        origins: Sequence[int],
        horizon: int,
        *,
        interval_s: float = 1.0,
    ) -> list[ClassicalForecast]:
        _check_interval(interval_s)
        index, offset_us = _observed(context_us, horizon)
        context_us = np.asarray(context_us, dtype=np.float64)
        cut_ends = _checked_origins(context_us, origins)
        forecasts = self._filtered(
            context_us,
            index,
            offset_us,
            np.array([context_us.size]),
            horizon,
            interval_s,
            measured_noise(context_us, interval_s),
        )
        if cut_ends.size:
            forecasts += self._filtered(
                context_us,
                index,
                offset_us,
                cut_ends,
                horizon,
                interval_s,
                _backtest_noise(context_us, cut_ends, interval_s),
            )
        return forecasts

    def _filtered(
        self,
        context_us: np.ndarray,
        index: np.ndarray,
        offset_us: np.ndarray,
        ends: np.ndarray,
        horizon: int,
        interval_s: float,
        noise: ClockNoise,
    ) -> list[ClassicalForecast]:
        """The forecast from each prefix ``context_us[:end]``, all from one pass of the filter
        tuned on the shortest prefix (its noise is ``noise``)."""
        observations = _observations_before(index, ends)
        tuning = _kalman_tuning(context_us[: int(ends.min())], noise)
        filtered = sorted(set(ends[observations >= _KALMAN_MIN_OBSERVATIONS].tolist()))
        passed = _kalman_forecasts(context_us, int(index[0]), filtered, horizon, interval_s, tuning)
        by_end = dict(zip(filtered, passed, strict=True))
        # Too little to tell noise from dynamics: persistence with no claim to precision.
        return [
            by_end[end]
            if end in by_end
            else ClassicalForecast(np.full(horizon, offset_us[count - 1]), np.full(horizon, np.inf))
            for end, count in zip(ends.tolist(), observations.tolist(), strict=True)
        ]


CLASSICAL_FORECASTERS: tuple[ClassicalForecaster, ...] = (
    LastValue(),
    ChronyLinearFit(),
    KalmanDrift(),
)


def forecast_all(context_us: np.ndarray, horizon: int, interval_s: float = 1.0) -> dict[str, ClassicalForecast]:
    """Every classical forecaster on one context, by name."""
    return {
        forecaster.name: forecaster.forecast(context_us, horizon, interval_s=interval_s)
        for forecaster in CLASSICAL_FORECASTERS
    }
