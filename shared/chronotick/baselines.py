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
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

# Fewest k-step differences from which LastValue trusts an RMS.
_MIN_LAG_PAIRS = 2
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


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make == ambiguous
class ClassicalForecast:
    """(horizon,) predicted offsets and their predictive standard deviations, in microseconds."""

    mean_us: np.ndarray
    std_us: np.ndarray


class ClassicalForecaster(Protocol):
    """What the gateway and benchmarks call: a named forecaster of mean and spread."""

    name: ClassVar[str]

    def forecast(
        self, context_us: np.ndarray, horizon: int, *, interval_s: float = 1.0
    ) -> ClassicalForecast: ...


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


@dataclass(frozen=True)
class _Line:
    """A weighted least-squares line in sample index, with what its prediction variance needs."""

    centre: float
    mean_us: float
    slope_us_per_sample: float
    sum_w: float
    sum_w_dx2: float

    def at(self, index: np.ndarray) -> np.ndarray:
        return self.mean_us + self.slope_us_per_sample * (index - self.centre)


def _fit_line(index: np.ndarray, offset_us: np.ndarray, weights: np.ndarray) -> _Line:
    # Centring the abscissa keeps the normal equations well conditioned for long contexts.
    sum_w = float(weights.sum())
    centre = float(np.dot(weights, index) / sum_w)
    mean_us = float(np.dot(weights, offset_us) / sum_w)
    dx = index - centre
    sum_w_dx2 = float(np.dot(weights, dx * dx))
    slope = float(np.dot(weights * dx, offset_us - mean_us) / sum_w_dx2) if sum_w_dx2 > 0 else 0.0
    return _Line(centre, mean_us, slope, sum_w, sum_w_dx2)


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
    index, offset_us = index[-window:], offset_us[-window:]
    line = _fit_line(index, offset_us, np.ones(index.size))
    return line.at(np.arange(len(context_us), len(context_us) + horizon))


def _lag_rms_us(context_us: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """RMS of the context's k-step changes for each k in `lags` (increasing, >= 1).

    Measured directly up to half the context (beyond, too few independent pairs); longer lags
    and lags without enough pairs extend the longest measured one as a random walk (sqrt(k)).
    Infinite when nothing could be measured: such a forecast should get no fusion weight.
    """
    n = context_us.size
    rms_us = np.full(lags.size, np.inf)
    known_lag, known_rms = 0, math.inf
    for i, lag in enumerate(lags.tolist()):
        if lag <= n // 2:
            change_us = context_us[lag:] - context_us[:-lag]
            change_us = change_us[~np.isnan(change_us)]
            if change_us.size >= _MIN_LAG_PAIRS:
                known_lag = lag
                known_rms = math.sqrt(float(np.dot(change_us, change_us)) / change_us.size)
        if known_lag:
            rms_us[i] = known_rms * math.sqrt(lag / known_lag)
    return rms_us


@dataclass(frozen=True)
class LastValue:
    """Persistence, with the spread a random walk would have after the same number of steps.

    std at step h is the RMS (not the standard deviation: persistence ignores drift, so drift
    is part of its error) of the context's k-step changes, k = h + samples since the last
    observation.
    """

    name: ClassVar[str] = "last-value"

    def forecast(
        self, context_us: np.ndarray, horizon: int, *, interval_s: float = 1.0
    ) -> ClassicalForecast:
        _check_interval(interval_s)
        mean_us = last_value_forecast(context_us, horizon)
        context_us = np.asarray(context_us, dtype=np.float64)
        index, _ = _observed(context_us, horizon)
        lags = context_us.size - 1 - index[-1] + np.arange(1, horizon + 1)
        return ClassicalForecast(mean_us, _lag_rms_us(context_us, lags))


@dataclass(frozen=True)
class _ClockNoise:
    """Intensities: white measurement noise R, phase random walk, frequency random walk."""

    measurement_us2: float
    phase_walk_us2_per_s: float
    freq_walk_ppm2_per_s: float


def _clock_noise(context_us: np.ndarray, interval_s: float) -> _ClockNoise:
    """Noise levels from the context's second-difference structure (Hadamard/Allan style).

    For the model offset = integral of a random-walk frequency, plus a phase random walk, plus
    white measurement noise, the variance of x[t+2k] - 2x[t+k] + x[t] about its mean (which
    absorbs a constant drift) is 6R + 2 q_phase tau + (2/3) q_freq tau^3 with tau = k interval.
    The three intensities are a non-negative least-squares fit of that curve over several lags,
    in relative error so the short lags (which carry R) count as much as the long ones.
    """
    lags = _NOISE_LAGS[_NOISE_LAGS <= max(1, context_us.size // 4)]
    taus, structure = [], []
    for lag in lags.tolist():
        second = context_us[2 * lag :] - 2.0 * context_us[lag:-lag] + context_us[: -2 * lag]
        second = second[~np.isnan(second)]
        if second.size >= _MIN_LAG_PAIRS:
            taus.append(lag * interval_s)
            structure.append(float(np.var(second)))
    if not structure or max(structure) <= 0.0:
        return _ClockNoise(0.0, 0.0, 0.0)
    tau = np.asarray(taus)
    target = np.asarray(structure)
    design = np.column_stack((np.full(tau.size, 6.0), 2.0 * tau, (2.0 / 3.0) * tau**3))
    relative = 1.0 / np.maximum(target, 1e-300)
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
    return _ClockNoise(float(best[0]), float(best[1]), float(best[2]))


_NOISE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=64)
def _clock_noise_of(context_bytes: bytes, interval_s: float) -> _ClockNoise:
    return _clock_noise(np.frombuffer(context_bytes, dtype=np.float64), interval_s)


def _measured_noise(context_us: np.ndarray, interval_s: float) -> _ClockNoise:
    """_clock_noise, measured once per context: ChronyLinearFit and KalmanDrift both need it for
    the same contexts (the gateway runs both on every series and its backtest cuts), and it is
    most of their cost. Keyed by the context's bytes, so equal contexts share it. The gateway runs
    the two in parallel worker threads over the same contexts in the same order: the lock makes the
    second wait for the first's measurement instead of repeating it (the GIL would run them one
    after the other anyway)."""
    key = np.ascontiguousarray(context_us, dtype=np.float64).tobytes()
    with _NOISE_LOCK:
        return _clock_noise_of(key, float(interval_s))


def _too_few_runs(residuals_us: np.ndarray) -> bool:
    """Wald-Wolfowitz runs test: are the residual signs too clustered for a straight line?

    chronyd's regression (regress.c) rejects a fit whose residuals have fewer sign runs than a
    tabulated critical value; this is the normal approximation of that test at 5 %.
    """
    signs = np.sign(residuals_us[residuals_us != 0.0])
    positives, negatives = int((signs > 0).sum()), int((signs < 0).sum())
    n = positives + negatives
    if positives == 0 or negatives == 0:
        return False
    runs = 1 + int(np.count_nonzero(signs[1:] != signs[:-1]))
    product = 2.0 * positives * negatives
    expected = 1.0 + product / n
    variance = product * (product - n) / (n * n * (n - 1))
    return runs < expected - _RUNS_Z * math.sqrt(variance)


@dataclass(frozen=True)
class _RobustFit:
    line: _Line
    residuals_us: np.ndarray
    unit_variance_us2: float  # variance of an observation of weight 1; NaN with <= 2 samples
    scale_us: float


def _robust_line(index: np.ndarray, offset_us: np.ndarray) -> _RobustFit:
    """A line with Huber weights: each sample's variance is estimated from its residual.

    chrony weights samples by their measured dispersion; a bare offset series has none, so the
    residual stands in: samples within _HUBER_C robust standard deviations weigh 1, outliers
    (a congested NTP exchange) weigh less in proportion to how far out they are.
    """
    tiny_us = 1e-9 * (1.0 + float(np.max(np.abs(offset_us))))
    weights = np.ones(index.size)
    line = _fit_line(index, offset_us, weights)
    scale_us = 0.0
    for _ in range(_IRLS_ITERATIONS):
        residuals_us = offset_us - line.at(index)
        scale_us = _MAD_TO_SD * float(np.median(np.abs(residuals_us)))
        if scale_us <= tiny_us:
            break
        weights = np.minimum(1.0, _HUBER_C * scale_us / np.maximum(np.abs(residuals_us), tiny_us))
        line = _fit_line(index, offset_us, weights)
    residuals_us = offset_us - line.at(index)
    dof = index.size - 2
    variance = float(np.dot(weights, residuals_us**2)) / dof if dof > 0 else math.nan
    return _RobustFit(line, residuals_us, variance, scale_us)


def _correlation_inflation(residuals_us: np.ndarray) -> float:
    """(1 + rho) / (1 - rho) for the residuals' lag-1 autocorrelation rho > 0, else 1.

    A disciplined clock wanders around any line, so neighbouring residuals are alike and the
    window holds fewer independent samples than it has points; for AR(1) residuals the line's
    parameter variance grows by this factor. Capped at rho = _MAX_RESIDUAL_CORRELATION.
    """
    if residuals_us.size < 3:
        return 1.0
    centred = residuals_us - residuals_us.mean()
    energy = float(np.dot(centred, centred))
    if energy <= 0.0:
        return 1.0
    rho = float(np.dot(centred[1:], centred[:-1])) / energy
    rho = min(max(rho, 0.0), _MAX_RESIDUAL_CORRELATION)
    return (1.0 + rho) / (1.0 - rho)


@dataclass(frozen=True)
class ChronyLinearFit:
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
    Infinite with two samples or fewer.
    """

    name: ClassVar[str] = "chrony-fit"
    window: int = 64
    min_samples: int = 8

    def forecast(
        self, context_us: np.ndarray, horizon: int, *, interval_s: float = 1.0
    ) -> ClassicalForecast:
        _check_interval(interval_s)
        index, offset_us = _observed(context_us, horizon)
        index, offset_us = index[-self.window :], offset_us[-self.window :]
        fit = _robust_line(index, offset_us)
        while (
            index.size // 2 >= self.min_samples
            and fit.scale_us > 0.0
            and _too_few_runs(fit.residuals_us)
        ):
            index, offset_us = index[index.size // 2 :], offset_us[offset_us.size // 2 :]
            fit = _robust_line(index, offset_us)
        n = len(np.asarray(context_us))
        future = np.arange(n, n + horizon, dtype=np.float64)
        line = fit.line
        if not math.isfinite(fit.unit_variance_us2):
            return ClassicalForecast(line.at(future), np.full(horizon, np.inf))
        parameter_spread = 1.0 / line.sum_w
        if line.sum_w_dx2 > 0:
            parameter_spread = parameter_spread + (future - line.centre) ** 2 / line.sum_w_dx2
        inflation = _correlation_inflation(fit.residuals_us)
        variance = fit.unit_variance_us2 * (1.0 + inflation * parameter_spread)
        noise = _measured_noise(context_us, interval_s)
        ahead_s = (future - index[-1]) * interval_s
        variance = (
            variance
            + noise.phase_walk_us2_per_s * ahead_s
            + noise.freq_walk_ppm2_per_s * ahead_s**3 / 3.0
        )
        return ClassicalForecast(line.at(future), np.sqrt(variance))


@dataclass(frozen=True)
class KalmanDrift:
    """A Kalman filter on (offset us, frequency ppm, drift ppm/s), noise measured from the context.

    Transition over dt: offset += freq dt + drift dt^2/2, freq += drift dt; process noise is
    a phase random walk plus a frequency random walk (the drift is a constant the filter learns;
    slower changes are absorbed by the frequency walk). Intensities come from _clock_noise.
    Missing samples are prediction-only steps. The predictive variance is then scaled by the
    mean normalised innovation squared (an innovation-based calibration: if the measured noise
    levels are off by a common factor, the filter's gain is unchanged but its variances are not).
    Forecast variance at tau ahead, with row = (1, tau, tau^2/2):
    calibration * (row P row' + q_phase tau + q_freq tau^3/3 + R).
    """

    name: ClassVar[str] = "kalman"

    def forecast(
        self, context_us: np.ndarray, horizon: int, *, interval_s: float = 1.0
    ) -> ClassicalForecast:
        _check_interval(interval_s)
        index, offset_us = _observed(context_us, horizon)
        context_us = np.asarray(context_us, dtype=np.float64)
        if index.size < _KALMAN_MIN_OBSERVATIONS:
            # Too little to tell noise from dynamics: persistence with no claim to precision.
            return ClassicalForecast(np.full(horizon, offset_us[-1]), np.full(horizon, np.inf))
        noise = _measured_noise(context_us, interval_s)
        spread_us = max(float(np.max(np.abs(offset_us - offset_us[0]))), 1e-6)
        # Floor R so a noise-free context still gives a well-posed update.
        r = max(noise.measurement_us2, (1e-9 * (1.0 + abs(float(offset_us[0])))) ** 2)
        qp, qf = noise.phase_walk_us2_per_s, noise.freq_walk_ppm2_per_s
        dt = interval_s
        h = dt * dt / 2.0
        q00, q01, q11 = qp * dt + qf * dt**3 / 3.0, qf * dt * dt / 2.0, qf * dt

        # Diffuse start: the first sample fixes the offset; frequency and drift may be anything
        # the context's own range allows.
        x0, x1, x2 = float(offset_us[0]), 0.0, 0.0
        p00, p01, p02 = r, 0.0, 0.0
        p11, p12, p22 = (spread_us / dt) ** 2, 0.0, (spread_us / (dt * dt)) ** 2
        updates, nis_sum, nis_count = 0, 0.0, 0
        for z in context_us[index[0] + 1 :].tolist():
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
        calibration = nis_sum / nis_count if nis_count >= _KALMAN_MIN_CALIBRATION_UPDATES else 1.0

        tau = dt * np.arange(1, horizon + 1)
        mean_us = x0 + x1 * tau + x2 * tau**2 / 2.0
        state_var = (
            p00 + 2.0 * tau * p01 + tau**2 * (p02 + p11) + tau**3 * p12 + tau**4 / 4.0 * p22
        )
        variance = calibration * (state_var + qp * tau + qf * tau**3 / 3.0 + r)
        return ClassicalForecast(mean_us, np.sqrt(np.maximum(variance, 0.0)))


CLASSICAL_FORECASTERS: tuple[ClassicalForecaster, ...] = (
    LastValue(),
    ChronyLinearFit(),
    KalmanDrift(),
)


def forecast_all(
    context_us: np.ndarray, horizon: int, interval_s: float = 1.0
) -> dict[str, ClassicalForecast]:
    """Every classical forecaster on one context, by name."""
    return {
        forecaster.name: forecaster.forecast(context_us, horizon, interval_s=interval_s)
        for forecaster in CLASSICAL_FORECASTERS
    }
