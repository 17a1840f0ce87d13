"""Seeded, physics-based synthetic clock-offset series.

Real offset logs are scarce and never say what the clock's *true* offset was,
so models are trained and tested on series generated here: a free-running
crystal oscillator (frequency offset, aging, random-walk wander, phase
jitter) coupled to temperature and CPU load, optionally disciplined by a
ptp4l/chrony-like PI servo, and observed through a noisy network
measurement with delay jitter, one-sided spikes and missing samples.

Sign convention: offset_us = local clock minus reference, in microseconds;
positive means the local clock is ahead. A frequency error of 1 ppm moves the
offset by 1 us per second, which is why ppm * seconds is added to offsets in
microseconds without any conversion factor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

SCENARIOS: tuple[str, ...] = (
    "stable",
    "server_load",
    "thermal_cycle",
    "network_spike",
    "free_running",
    "mixed",
)

# ntpd's kernel PLL and chrony's conservative setups cap slewing at 500 ppm.
_MAX_SLEW_PPM = 500.0
# chrony/ntpd poll in powers of two: 1-16 s for PTP and LAN NTP, 32-64 s for
# chrony's default minpoll against an NTP server.
_POLL_CHOICES_S = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
# Congestion mostly delays the reply path, which (with our sign convention)
# makes the measured offset too large: spikes are mostly positive.
_POSITIVE_SPIKE_PROBABILITY = 0.85
# Pareto tail index of spike magnitudes: heavy-tailed but with finite variance.
_SPIKE_TAIL_INDEX = 3.0
# Windows cut per generated clock in training_windows: a few per clock keeps
# generation cheap while the corpus still spans many independent clocks.
_WINDOWS_PER_CLOCK = 4
# Packet exchanges per servo measurement, of which the minimum-delay one is used.
_SERVO_EXCHANGES = 4
# The servo's outlier filter (chrony's and ptp4l's filters in spirit): ignore a
# measurement beyond this many times the typical |offset|, but at most this many
# polls in a row, because an offset that persists is real.
_SPIKE_GATE = 5.0
_MAX_REJECTED_POLLS = 3


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make == ambiguous
class SyntheticClock:
    """One generated clock: ground truth, what a measurement would see, and the drivers.

    Attributes:
        scenario: the scenario name it was generated for.
        interval_s: sampling cadence of every array, in seconds.
        time_s: (n,) seconds since the start of the series.
        true_offset_us: (n,) the clock's real offset (including the oscillator's
            own sub-microsecond phase jitter, but no measurement error); never NaN.
        observed_offset_us: (n,) what an offset measurement reports: true offset
            plus white noise, one-sided delay jitter and spikes; NaN where missing.
        covariates: (n,) drivers a host could also record: "temperature_c"
            (crystal temperature) and "cpu_load" (0..1); never NaN.
        steps: indices of samples at which the servo stepped the clock.
    """

    scenario: str
    interval_s: float
    time_s: np.ndarray
    true_offset_us: np.ndarray
    observed_offset_us: np.ndarray
    covariates: dict[str, np.ndarray]
    steps: np.ndarray


@dataclass(frozen=True)
class _ClockParams:
    """Physical parameters of one series, drawn from the seed so a corpus is diverse."""

    # Oscillator.
    freq_offset_ppm: float
    aging_ppm_per_day: float
    freq_walk_ppm_per_sqrt_s: float
    phase_jitter_us: float
    # Environment: ambient temperature, HVAC cycle, CPU load heating the crystal.
    ambient_c: float
    thermal_cycle_c: float
    thermal_period_s: float
    thermal_phase_rad: float
    temp_coeff_ppm_per_c: float
    thermal_tau_s: float
    heating_c_per_load: float
    idle_load: float
    busy_load: float
    busy_fraction: float
    mean_busy_s: float
    # Discipline loop.
    disciplined: bool
    cold_start: bool
    poll_s: float
    kp_scale: float
    ki_scale: float
    step_threshold_us: float
    start_offset_us: float
    # Measurement.
    noise_us: float
    delay_jitter_us: float
    spike_rate: float
    spike_scale_us: float
    congestion_fraction: float
    mean_congestion_s: float
    congestion_spike_rate: float
    congestion_jitter_factor: float
    missing_rate: float
    mean_gap_s: float


def _quiet_params(rng: np.random.Generator) -> _ClockParams:
    """A locked, quiet lab clock: the base every scenario perturbs."""
    return _ClockParams(
        freq_offset_ppm=rng.uniform(-30.0, 30.0),
        aging_ppm_per_day=rng.uniform(-0.5, 0.5),
        freq_walk_ppm_per_sqrt_s=10.0 ** rng.uniform(-4.0, -2.5),
        phase_jitter_us=rng.uniform(0.01, 0.2),
        ambient_c=rng.uniform(18.0, 30.0),
        thermal_cycle_c=0.0,
        thermal_period_s=3600.0,
        thermal_phase_rad=0.0,
        temp_coeff_ppm_per_c=rng.choice((-1.0, 1.0)) * rng.uniform(0.1, 1.0),
        thermal_tau_s=rng.uniform(60.0, 600.0),
        heating_c_per_load=rng.uniform(5.0, 20.0),
        idle_load=rng.uniform(0.01, 0.15),
        busy_load=0.0,
        busy_fraction=0.0,
        mean_busy_s=60.0,
        disciplined=True,
        cold_start=False,
        poll_s=float(rng.choice(_POLL_CHOICES_S)),
        kp_scale=rng.uniform(0.3, 0.7),
        ki_scale=rng.uniform(0.05, 0.3),
        step_threshold_us=10.0 ** rng.uniform(3.5, 4.5),
        start_offset_us=rng.normal(0.0, 5.0),
        noise_us=rng.uniform(1.0, 10.0),
        delay_jitter_us=rng.uniform(0.5, 10.0),
        spike_rate=rng.uniform(0.0, 0.002),
        spike_scale_us=10.0 ** rng.uniform(1.7, 2.7),
        congestion_fraction=0.0,
        mean_congestion_s=30.0,
        congestion_spike_rate=0.0,
        congestion_jitter_factor=1.0,
        missing_rate=rng.uniform(0.0, 0.02),
        mean_gap_s=rng.uniform(5.0, 60.0),
    )


def _load_bursts(rng: np.random.Generator) -> dict[str, Any]:
    """Batch jobs: busy periods heat the crystal by several degrees."""
    return {
        "busy_load": rng.uniform(0.6, 1.0),
        "busy_fraction": rng.uniform(0.2, 0.5),
        "mean_busy_s": rng.uniform(30.0, 600.0),
    }


def _thermal_cycle(rng: np.random.Generator) -> dict[str, Any]:
    """HVAC cycling: a slow sinusoidal ambient swing of a few degrees."""
    return {
        "thermal_cycle_c": rng.uniform(1.0, 5.0),
        "thermal_period_s": rng.uniform(600.0, 3600.0),
        "thermal_phase_rad": rng.uniform(0.0, 2.0 * math.pi),
    }


def _network_trouble(rng: np.random.Generator) -> dict[str, Any]:
    """Congestion episodes: large one-sided outliers, more jitter, more loss."""
    return {
        "congestion_fraction": rng.uniform(0.05, 0.2),
        "mean_congestion_s": rng.uniform(10.0, 120.0),
        "congestion_spike_rate": rng.uniform(0.2, 0.7),
        "congestion_jitter_factor": rng.uniform(5.0, 30.0),
        "spike_scale_us": 10.0 ** rng.uniform(2.0, 3.3),
        "missing_rate": rng.uniform(0.01, 0.08),
    }


def _free_running(rng: np.random.Generator) -> dict[str, Any]:
    """No servo: a cheap crystal left alone drifts tens of ppm."""
    return {
        "disciplined": False,
        "freq_offset_ppm": rng.choice((-1.0, 1.0)) * rng.uniform(10.0, 100.0),
        "aging_ppm_per_day": rng.uniform(-5.0, 5.0),
        "start_offset_us": rng.uniform(-1000.0, 1000.0),
    }


def _cold_start(rng: np.random.Generator) -> dict[str, Any]:
    """Reboot: the servo starts far off, knowing nothing of the frequency, and may step."""
    return {
        "cold_start": True,
        "start_offset_us": rng.choice((-1.0, 1.0)) * 10.0 ** rng.uniform(2.7, 4.7),
    }


def _draw_params(scenario: str, rng: np.random.Generator) -> _ClockParams:
    params = _quiet_params(rng)
    overrides: dict[str, Any] = {}
    if scenario == "server_load":
        overrides |= _load_bursts(rng)
    elif scenario == "thermal_cycle":
        overrides |= _thermal_cycle(rng)
    elif scenario == "network_spike":
        overrides |= _network_trouble(rng)
    elif scenario == "free_running":
        overrides |= _free_running(rng)
    elif scenario == "mixed":
        # Each mechanism independently, so the mix covers their combinations.
        for feature, probability in (
            (_load_bursts, 0.5),
            (_thermal_cycle, 0.5),
            (_network_trouble, 0.3),
            (_free_running, 0.2),
        ):
            if rng.random() < probability:
                overrides |= feature(rng)
    # A reboot can happen anywhere except the quiet lab; it needs a servo to matter.
    if scenario != "stable" and overrides.get("disciplined", True) and rng.random() < 0.1:
        overrides |= _cold_start(rng)
    return replace(params, **overrides)


def _bursts(
    n: int, fraction: float, mean_on_s: float, interval_s: float, rng: np.random.Generator
) -> np.ndarray:
    """(n,) bool mask of alternating off/on runs with exponential durations.

    Load bursts, congestion episodes and measurement gaps are all runs, not
    independent samples; `fraction` is the expected share of samples that are on.
    """
    if fraction <= 0.0:
        return np.zeros(n, dtype=bool)
    mean_on = max(mean_on_s / interval_s, 1.0)
    mean_off = mean_on * (1.0 / fraction - 1.0)
    n_pairs = int(n / (mean_on + mean_off)) + 2
    lengths = np.empty(0, dtype=np.int64)
    # One extra cycle so the series can start at a random point of the first one.
    while lengths.size < 2 or lengths.sum() < n + lengths[0] + lengths[1]:
        on = np.maximum(np.rint(rng.exponential(mean_on, n_pairs)), 1).astype(np.int64)
        off = np.maximum(np.rint(rng.exponential(mean_off, n_pairs)), 1).astype(np.int64)
        lengths = np.concatenate((lengths, np.column_stack((off, on)).ravel()))
    states = np.resize(np.array((False, True)), lengths.size)
    start = int(rng.integers(0, lengths[0] + lengths[1]))
    return np.repeat(states, lengths)[start : start + n]


def _first_order_lag(drive: np.ndarray, tau_s: float, interval_s: float) -> np.ndarray:
    """Crystal temperature follows its drive through a thermal mass (time constant tau_s).

    Exact discretisation of dT/dt = (drive - T) / tau for a drive held over
    each interval, started in equilibrium. A scalar loop: numpy has no IIR
    filter and this stays well under a millisecond per thousand samples.
    """
    alpha = 1.0 - math.exp(-interval_s / tau_s)
    level = float(drive[0])
    out = []
    for target in drive.tolist():
        level += alpha * (target - level)
        out.append(level)
    return np.asarray(out)


def _measurement_error_us(
    congested: np.ndarray,
    p: _ClockParams,
    rng: np.random.Generator,
    exchanges: int = 1,
) -> np.ndarray:
    """Error of an offset measurement: white noise, one-sided delay jitter, rare big spikes.

    Asymmetric queueing only ever adds delay, so jitter is exponential (never
    negative) and spikes are heavy-tailed and mostly positive; congestion
    multiplies both. A measurement that keeps the minimum-delay one of
    `exchanges` packet exchanges (ntpd's clock filter, chrony's burst) has the
    minimum of that many exponentials, 1/exchanges of the jitter, and is a
    spike only if every exchange was.
    """
    n = congested.size
    jitter_us = p.delay_jitter_us * np.where(congested, p.congestion_jitter_factor, 1.0)
    error_us = rng.normal(0.0, p.noise_us, n) + rng.exponential(1.0 / exchanges, n) * jitter_us
    spike_rate = np.where(congested, p.congestion_spike_rate, p.spike_rate) ** exchanges
    spiky = rng.random(n) < spike_rate
    sign = np.where(rng.random(n) < _POSITIVE_SPIKE_PROBABILITY, 1.0, -1.0)
    magnitude_us = p.spike_scale_us * (1.0 + rng.pareto(_SPIKE_TAIL_INDEX, n))
    return error_us + spiky * sign * magnitude_us


def _clamp_slew_ppm(freq_ppm: float) -> float:
    """Bound a frequency adjustment to the slew limit (scalar: np.clip is slow per poll)."""
    return min(max(freq_ppm, -_MAX_SLEW_PPM), _MAX_SLEW_PPM)


def _discipline_us(
    free_offset_us: np.ndarray,
    start_freq_ppm: float,
    congested: np.ndarray,
    p: _ClockParams,
    interval_s: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Run a ptp4l-style PI servo over the free-running offset.

    Returns the (n,) correction the servo adds to the offset (slewing plus
    steps) and the indices of the steps. The servo only acts at its polls, so
    the loop runs once per poll, not per sample.
    """
    n = free_offset_us.size
    poll_every = max(1, round(p.poll_s / interval_s))
    poll_s = poll_every * interval_s
    # ptp4l's gain schedule: longer polls get smaller per-second gains, capped
    # so that kp*poll <= 0.7 and ki*poll <= 0.3 keep the discrete loop stable.
    kp = min(p.kp_scale * poll_s**-0.3, 0.7 / poll_s)
    ki = min(p.ki_scale * poll_s**0.4, 0.3 / poll_s)
    polls = np.arange(0, n, poll_every)
    measured_error_us = _measurement_error_us(
        congested[polls], p, rng, exchanges=_SERVO_EXCHANGES
    ).tolist()
    # A locked servo remembers its frequency (chrony's driftfile); a cold one starts at zero.
    drift_ppm = 0.0 if p.cold_start else start_freq_ppm + rng.normal(0.0, 0.02)
    adjust_ppm = 0.0
    correction_us = 0.0
    typical_us = math.inf  # no history yet: the first measurement is accepted
    rejected = 0
    adjust_per_poll_ppm: list[float] = []
    step_us = np.zeros(n)
    for poll, free_us, error_us in zip(
        polls.tolist(), free_offset_us[polls].tolist(), measured_error_us, strict=True
    ):
        measured_us = free_us + correction_us + error_us
        if abs(measured_us) > _SPIKE_GATE * typical_us and rejected < _MAX_REJECTED_POLLS:
            rejected += 1  # hold the current frequency adjustment
        elif abs(measured_us) > p.step_threshold_us:
            # makestep: jump by the measured offset, keep the frequency estimate.
            step_us[poll] = -measured_us
            correction_us -= measured_us
            typical_us, rejected = math.inf, 0
        else:
            rejected = 0
            typical_us = (
                abs(measured_us)
                if math.isinf(typical_us)
                else typical_us + 0.1 * (abs(measured_us) - typical_us)
            )
            drift_ppm = _clamp_slew_ppm(drift_ppm + ki * measured_us)
            adjust_ppm = _clamp_slew_ppm(-(kp * measured_us + drift_ppm))
        adjust_per_poll_ppm.append(adjust_ppm)
        correction_us += adjust_ppm * poll_s
    # Each adjustment acts from its poll until the next one.
    adjust_ppm_per_sample = np.repeat(adjust_per_poll_ppm, poll_every)[:n]
    slewed_us = np.concatenate(([0.0], np.cumsum(adjust_ppm_per_sample[:-1]) * interval_s))
    return slewed_us + np.cumsum(step_us), np.flatnonzero(step_us)


def _missing_mask(
    n: int, missing_rate: float, mean_gap_s: float, interval_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Half the missing samples come as gaps (runs), half as isolated drops."""
    gap_fraction = missing_rate / 2.0
    gaps = _bursts(n, gap_fraction, mean_gap_s, interval_s, rng)
    # A drop inside a gap changes nothing, so drops are made more likely to keep
    # the expected total at missing_rate.
    drop_rate = gap_fraction / (1.0 - gap_fraction)
    return gaps | (rng.random(n) < drop_rate)


def generate_clock(
    scenario: str,
    n_steps: int,
    *,
    interval_s: float = 1.0,
    seed: int,
    missing_rate: float | None = None,
) -> SyntheticClock:
    """Generate one clock's offset series; the same seed always gives the same series.

    Args:
        scenario: one of SCENARIOS.
        n_steps: number of samples.
        interval_s: sampling cadence in seconds.
        seed: seeds every random draw, including the physical parameters.
        missing_rate: expected fraction of NaN observations (half as gaps);
            None draws a scenario-typical rate from the seed.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if not (math.isfinite(interval_s) and interval_s > 0.0):
        raise ValueError(f"interval_s must be positive and finite, got {interval_s}")
    if missing_rate is not None and not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}")

    rng = np.random.default_rng(seed)
    p = _draw_params(scenario, rng)
    if missing_rate is not None:
        p = replace(p, missing_rate=missing_rate)
    time_s = np.arange(n_steps) * interval_s

    busy = _bursts(n_steps, p.busy_fraction, p.mean_busy_s, interval_s, rng)
    load = np.where(busy, p.busy_load, p.idle_load) + rng.normal(0.0, 0.03, n_steps)
    cpu_load = np.clip(load, 0.0, 1.0)
    ambient_c = p.ambient_c + p.thermal_cycle_c * np.sin(
        2.0 * math.pi * time_s / p.thermal_period_s + p.thermal_phase_rad
    )
    temperature_c = _first_order_lag(
        ambient_c + p.heating_c_per_load * cpu_load, p.thermal_tau_s, interval_s
    )

    freq_walk_ppm = np.cumsum(
        rng.normal(0.0, p.freq_walk_ppm_per_sqrt_s * math.sqrt(interval_s), n_steps)
    )
    freq_walk_ppm -= freq_walk_ppm[0]
    freq_ppm = (
        p.freq_offset_ppm
        + p.aging_ppm_per_day * time_s / 86_400.0
        + freq_walk_ppm
        + p.temp_coeff_ppm_per_c * (temperature_c - temperature_c[0])
    )
    # Offset at sample i integrates the frequency over the intervals before it.
    free_offset_us = p.start_offset_us + np.concatenate(
        ([0.0], np.cumsum(freq_ppm[:-1]) * interval_s)
    )

    congested = _bursts(n_steps, p.congestion_fraction, p.mean_congestion_s, interval_s, rng)
    if p.disciplined:
        correction_us, steps = _discipline_us(
            free_offset_us, float(freq_ppm[0]), congested, p, interval_s, rng
        )
    else:
        correction_us, steps = np.zeros(n_steps), np.empty(0, dtype=np.int64)
    true_offset_us = free_offset_us + correction_us + rng.normal(0.0, p.phase_jitter_us, n_steps)

    observed_offset_us = true_offset_us + _measurement_error_us(congested, p, rng)
    observed_offset_us[_missing_mask(n_steps, p.missing_rate, p.mean_gap_s, interval_s, rng)] = (
        np.nan
    )

    return SyntheticClock(
        scenario=scenario,
        interval_s=interval_s,
        time_s=time_s,
        true_offset_us=true_offset_us,
        observed_offset_us=observed_offset_us,
        covariates={"temperature_c": temperature_c, "cpu_load": cpu_load},
        steps=steps,
    )


def training_windows(
    n_windows: int,
    window_length: int,
    *,
    seed: int,
    scenarios: Sequence[str] = SCENARIOS,
    interval_s: float = 1.0,
) -> np.ndarray:
    """(n_windows, window_length) float32 windows of observed offsets, NaN kept where missing.

    Windows are cut at random positions from many generated clocks, so a
    model sees the corpus's diversity rather than one clock's history.
    Clocks cycle through `scenarios` so each is equally represented; each
    clock is 4 windows long and gives 4 windows, which keeps generation cheap
    while every window still comes from a distinct, partly independent stretch.
    """
    if n_windows < 0 or window_length < 1:
        raise ValueError(
            f"need n_windows >= 0 and window_length >= 1, got {n_windows}, {window_length}"
        )
    if not scenarios:
        raise ValueError("scenarios must not be empty")
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; valid: {', '.join(SCENARIOS)}")

    rng = np.random.default_rng(seed)
    clock_length = _WINDOWS_PER_CLOCK * window_length
    windows = np.empty((n_windows, window_length), dtype=np.float32)
    for first in range(0, n_windows, _WINDOWS_PER_CLOCK):
        clock = generate_clock(
            scenarios[(first // _WINDOWS_PER_CLOCK) % len(scenarios)],
            clock_length,
            interval_s=interval_s,
            seed=int(rng.integers(2**63)),
        )
        count = min(_WINDOWS_PER_CLOCK, n_windows - first)
        starts = rng.integers(0, clock_length - window_length + 1, count)
        for row, start in enumerate(starts, start=first):
            windows[row] = clock.observed_offset_us[start : start + window_length]
    return windows
