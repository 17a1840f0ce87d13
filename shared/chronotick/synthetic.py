"""Seeded, physics-based synthetic clock-offset series.

Real offset logs are scarce and never say what the clock's *true* offset was,
so models are trained and tested on series generated here: a free-running
crystal oscillator (frequency offset, aging, random-walk wander, phase
jitter) coupled to temperature and CPU load, optionally disciplined by a
ptp4l-like PI servo or a chrony-like regression servo, and observed through a
noisy network measurement with delay jitter, one-sided spikes and missing
samples.

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
    "chrony",
    "precise_reference",
    "gnss_card",
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
# chrony-like servo (see _chrony_discipline_us). Polls are powers of two:
# minpoll 4-6 (chrony's default is 6, 64 s), maxpoll 8-10 (default 10, 1024 s).
_CHRONY_MIN_POLLS_S = (16.0, 32.0, 64.0)
_CHRONY_MAX_POLLS_S = (256.0, 512.0, 1024.0)
# Linux's adjtimex frequency limit, which chronyd also respects.
_CHRONY_MAX_FREQ_PPM = 500.0
# A regression line needs three points to also estimate its own scatter.
_MIN_REGRESSION_SAMPLES = 3
# The scatter assumed before the regression has any (and its floor afterwards).
_MIN_OFFSET_SD_US = 0.1
# A sample this many standard deviations off the regression's prediction (and
# not explained by its delay) means the clock or its frequency jumped: the
# servo restarts its regression from that sample instead of averaging across.
_RESTART_SIGMAS = 20.0


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
    # chrony-like discipline, used when servo == "chrony". Defaults keep the
    # older scenarios' parameters (and so their random draws) unchanged.
    servo: str = "pi"
    min_poll_s: float = 64.0
    max_poll_s: float = 1024.0
    max_samples: int = 64
    poll_target: int = 8
    burst_exchanges: int = 1
    corr_time_ratio: float = 3.0
    max_slew_ppm: float = 83_333.333
    max_clock_error_ppm: float = 0.1
    max_delay_dev_ratio: float = 10.0
    makestep_limit: int = 3
    # An external jump of the clock (VM pause, someone running `date`) at this
    # fraction of the series; the servo has to step or slew it back.
    jump_us: float = 0.0
    jump_at: float = 0.5
    # The logged offset is measured against a better reference than the servo's (a GNSS receiver watching a
    # clock that ptp4l or chrony disciplines over the network): its noise, jitter and spikes are this
    # fraction of the servo's measurement error. 1 = the same measurement (the older scenarios).
    observation_error_scale: float = 1.0
    # White frequency noise (a random walk of the phase), us per sqrt(s): 0 in the older scenarios, whose
    # random draws it therefore leaves unchanged.
    white_fm_us_per_sqrt_s: float = 0.0
    # The logged offset is read with this resolution (a receiver card's timestamp LSB); 0 = exact.
    resolution_us: float = 0.0


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


def _chrony_over_wan(rng: np.random.Generator) -> dict[str, Any]:
    """chronyd against an NTP server across a WAN: long adaptive polls and noisy delays.

    The chrony.conf-like settings are drawn around chrony's defaults, and the
    drivers the corpus should cover are mixed in independently: temperature
    cycles, load steps, congestion, and now and then an external clock jump.
    """
    max_samples = int(rng.choice((8, 16, 32, 64)))
    overrides: dict[str, Any] = {
        "servo": "chrony",
        "min_poll_s": float(rng.choice(_CHRONY_MIN_POLLS_S)),
        "max_poll_s": float(rng.choice(_CHRONY_MAX_POLLS_S)),
        "max_samples": max_samples,
        "poll_target": int(rng.choice((6, 8) if max_samples <= 8 else (6, 8, 12, 16))),
        "burst_exchanges": int(rng.choice((1, 1, 2, 4))),  # mostly single exchanges
        "corr_time_ratio": rng.uniform(1.0, 10.0),  # corrtimeratio, default 3
        "max_slew_ppm": 83_333.333 if rng.random() < 0.8 else 500.0,  # maxslewrate
        "max_clock_error_ppm": 10.0 ** rng.uniform(-2.0, 0.0),  # maxclockerror, default 1
        "max_delay_dev_ratio": rng.uniform(5.0, 20.0),  # maxdelaydevratio, default 10
        "makestep_limit": 3 if rng.random() < 0.6 else -1,  # makestep <threshold> 3 | -1
        "noise_us": rng.uniform(2.0, 20.0),
        "delay_jitter_us": 10.0 ** rng.uniform(1.0, 2.5),
        "spike_rate": rng.uniform(0.001, 0.01),
        "spike_scale_us": 10.0 ** rng.uniform(2.5, 3.5),
        "missing_rate": rng.uniform(0.0, 0.05),
    }
    for feature, probability in (
        (_thermal_cycle, 0.6),
        (_load_bursts, 0.5),
        (_network_trouble, 0.25),
    ):
        if rng.random() < probability:
            overrides |= feature(rng)
    if rng.random() < 0.15:
        overrides |= {
            "jump_us": rng.choice((-1.0, 1.0)) * 10.0 ** rng.uniform(3.0, 5.0),
            "jump_at": rng.uniform(0.1, 0.9),
        }
    return overrides


def _precise_reference(rng: np.random.Generator) -> dict[str, Any]:
    """A clock disciplined over the network (ptp4l or NTP, polls 1-64 s) and logged against GNSS PPS.

    In every other scenario the log sees the servo's own 1-20 us network measurement, so the clock's motion
    from one second to the next is buried in noise and smoothing pays. Here the log's error is 0.3-10 % of
    the servo's: what shows is the true motion the servo's noisy corrections and the oscillator cause, as on
    GNSS-referenced logs, where "no change" is hard to beat one second ahead.
    """
    overrides: dict[str, Any] = {
        "noise_us": 10.0 ** rng.uniform(-1.0, 1.0),
        "delay_jitter_us": 10.0 ** rng.uniform(-1.0, 1.0),
        "observation_error_scale": 10.0 ** rng.uniform(-2.5, -1.0),
        "phase_jitter_us": 10.0 ** rng.uniform(-3.0, -1.0),
        "freq_walk_ppm_per_sqrt_s": 10.0 ** rng.uniform(-4.0, -2.0),
    }
    for feature, probability in ((_thermal_cycle, 0.5), (_load_bursts, 0.5)):
        if rng.random() < probability:
            overrides |= feature(rng)
    return overrides


def _gnss_card(rng: np.random.Generator) -> dict[str, Any]:
    """A host clock disciplined from a GNSS receiver card in the same host, and logged through that card.

    The servo measures well (0.05-0.5 us) every 1-4 s but pulls gently, so the oscillator's frequency
    wander shows as ramps lasting tens of seconds to minutes; white frequency noise adds a random walk of
    the phase; and the log reads the offset with the card's timestamp resolution (0.05-0.5 us, e.g.
    2^-22 s = 0.24 us). From one second to the next the logged offset mostly stays, or moves one
    resolution step in the ramp's direction: its steps are correlated, where the network-measured
    scenarios' are anti-correlated (white measurement noise), so "no change", or continuing the ramp,
    beats smoothing towards the context's level.
    """
    overrides: dict[str, Any] = {
        "noise_us": 10.0 ** rng.uniform(-1.3, -0.3),
        "delay_jitter_us": 10.0 ** rng.uniform(-2.0, -0.7),
        "spike_rate": 0.0,
        "poll_s": float(rng.choice((1.0, 2.0, 4.0))),
        "kp_scale": 10.0 ** rng.uniform(-2.5, -1.3),
        "ki_scale": 10.0 ** rng.uniform(-4.5, -3.0),
        "phase_jitter_us": 10.0 ** rng.uniform(-3.0, -1.5),
        "freq_walk_ppm_per_sqrt_s": 10.0 ** rng.uniform(-2.7, -1.5),
        "observation_error_scale": 10.0 ** rng.uniform(-2.0, -1.0),
        "white_fm_us_per_sqrt_s": 10.0 ** rng.uniform(-2.0, -0.7),
        "resolution_us": 10.0 ** rng.uniform(-1.3, -0.3),
        "missing_rate": rng.uniform(0.0, 0.005),
    }
    # A servo this gentle would leave a load burst's or an HVAC cycle's ppm as minutes-long ramps of several
    # us/s, which receiver-disciplined hosts do not show: those drivers are for the other scenarios.
    return overrides


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
    elif scenario == "chrony":
        overrides |= _chrony_over_wan(rng)
    elif scenario == "precise_reference":
        overrides |= _precise_reference(rng)
    elif scenario == "gnss_card":
        overrides |= _gnss_card(rng)
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


def _bursts(n: int, fraction: float, mean_on_s: float, interval_s: float, rng: np.random.Generator) -> np.ndarray:
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
    measured_error_us = _measurement_error_us(congested[polls], p, rng, exchanges=_SERVO_EXCHANGES).tolist()
    # A locked servo remembers its frequency (chrony's driftfile); a cold one starts at zero.
    drift_ppm = 0.0 if p.cold_start else start_freq_ppm + rng.normal(0.0, 0.02)
    adjust_ppm = 0.0
    correction_us = 0.0
    typical_us = math.inf  # no history yet: the first measurement is accepted
    rejected = 0
    adjust_per_poll_ppm: list[float] = []
    step_us = np.zeros(n)
    for poll, free_us, error_us in zip(polls.tolist(), free_offset_us[polls].tolist(), measured_error_us, strict=True):
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
                abs(measured_us) if math.isinf(typical_us) else typical_us + 0.1 * (abs(measured_us) - typical_us)
            )
            drift_ppm = _clamp_slew_ppm(drift_ppm + ki * measured_us)
            adjust_ppm = _clamp_slew_ppm(-(kp * measured_us + drift_ppm))
        adjust_per_poll_ppm.append(adjust_ppm)
        correction_us += adjust_ppm * poll_s
    # Each adjustment acts from its poll until the next one.
    adjust_ppm_per_sample = np.repeat(adjust_per_poll_ppm, poll_every)[:n]
    slewed_us = np.concatenate(([0.0], np.cumsum(adjust_ppm_per_sample[:-1]) * interval_s))
    return slewed_us + np.cumsum(step_us), np.flatnonzero(step_us)


def _ntp_measurements_us(
    congested: np.ndarray, p: _ClockParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Offset error and excess delay of one NTP measurement per entry of `congested`.

    Same error model as _measurement_error_us, but each exchange's queueing and
    spike also show up in its round-trip delay, and of a burst of
    `burst_exchanges` exchanges the one with the smallest delay is kept (chrony's
    burst, or its sample filter). The delay lets the servo reject outliers.
    """
    shape = (congested.size, p.burst_exchanges)
    jitter_us = p.delay_jitter_us * np.where(congested, p.congestion_jitter_factor, 1.0)
    queueing_us = rng.exponential(1.0, shape) * jitter_us[:, None]
    spike_rate = np.where(congested, p.congestion_spike_rate, p.spike_rate)
    spiky = rng.random(shape) < spike_rate[:, None]
    sign = np.where(rng.random(shape) < _POSITIVE_SPIKE_PROBABILITY, 1.0, -1.0)
    spike_us = spiky * p.spike_scale_us * (1.0 + rng.pareto(_SPIKE_TAIL_INDEX, shape))
    delay_us = queueing_us + spike_us
    error_us = rng.normal(0.0, p.noise_us, shape) + queueing_us + sign * spike_us
    best = np.argmin(delay_us, axis=1)
    rows = np.arange(congested.size)
    return error_us[rows, best], delay_us[rows, best]


@dataclass(frozen=True)
class _Fit:
    """chrony's sourcestats regression: offset now, frequency, and their uncertainties."""

    offset_us: float  # the line's value at the newest sample
    freq_ppm: float  # the line's slope (us per s)
    sd_us: float  # weighted scatter of the samples about the line
    skew_ppm: float  # standard error of the slope
    residuals_us: np.ndarray


def _regress(time_s: np.ndarray, offset_us: np.ndarray, delay_us: np.ndarray) -> _Fit:
    """Weighted least-squares line; samples that took longer round trips weigh less."""
    weight = 1.0 / (delay_us.mean() + delay_us + _MIN_OFFSET_SD_US) ** 2
    weight *= weight.size / weight.sum()  # mean 1, so sums of squares keep their scale
    t = time_s - time_s[-1]
    t_mean = np.dot(weight, t) / t.size
    x_mean = np.dot(weight, offset_us) / t.size
    dt = t - t_mean
    s_tt = np.dot(weight, dt * dt)
    slope = np.dot(weight, dt * (offset_us - x_mean)) / s_tt
    intercept = x_mean - slope * t_mean
    residuals = offset_us - intercept - slope * t
    sd_us = max(math.sqrt(np.dot(weight, residuals**2) / (t.size - 2)), _MIN_OFFSET_SD_US)
    return _Fit(float(intercept), float(slope), sd_us, sd_us / math.sqrt(s_tt), residuals)


def _too_few_runs(residuals: np.ndarray) -> bool:
    """chrony's runs test: residuals that change sign too rarely mean the line no longer fits.

    Wald-Wolfowitz runs test at about the 2.5 % level (normal approximation).
    """
    positive = residuals > 0.0
    n = residuals.size
    n_pos = int(positive.sum())
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return n >= 4
    runs = 1 + int(np.count_nonzero(positive[1:] != positive[:-1]))
    expected = 1.0 + 2.0 * n_pos * n_neg / n
    variance = (expected - 1.0) * (expected - 2.0) / (n - 1.0)
    return runs < expected - 2.0 * math.sqrt(max(variance, 0.0))


def _fit_recent(history: list[list[float]]) -> _Fit:
    """Fit the sample history, pruning its oldest quarter while the runs test fails.

    `history` holds [time_s, offset_us, delay_us] rows and is pruned in place, as
    chronyd drops the samples its regression no longer uses.
    """
    while True:
        time_s, offset_us, delay_us = np.array(history).T
        fit = _regress(time_s, offset_us, delay_us)
        if len(history) <= _MIN_REGRESSION_SAMPLES or not _too_few_runs(fit.residuals_us):
            return fit
        del history[: max(1, min(len(history) // 4, len(history) - _MIN_REGRESSION_SAMPLES))]


def _combine_frequency(
    old_ppm: float, old_skew_ppm: float, new_ppm: float, new_skew_ppm: float, p: _ClockParams
) -> tuple[float, float]:
    """Inverse-variance average of the old and the new frequency estimate, and its skew.

    The old estimate's skew is widened by maxclockerror first (the oscillator
    may have wandered since), so a precise old estimate damps a noisy new one,
    while a fresh, tight regression overrides a stale estimate.
    """
    old_var = old_skew_ppm**2 + p.max_clock_error_ppm**2
    new_var = max(new_skew_ppm, 1e-6) ** 2
    freq_ppm = old_ppm + old_var / (old_var + new_var) * (new_ppm - old_ppm)
    freq_ppm = min(max(freq_ppm, -_CHRONY_MAX_FREQ_PPM), _CHRONY_MAX_FREQ_PPM)
    return freq_ppm, math.sqrt(old_var * new_var / (old_var + new_var))


def _slew(offset_us: float, sd_us: float, poll_s: float, p: _ClockParams, interval_s: float) -> tuple[float, int]:
    """The rate (ppm) and length (samples) of the slew that removes `offset_us`.

    chrony's corrtimeratio: an offset of one standard deviation is corrected over
    corr_time_ratio update intervals, and correction time is inversely
    proportional to the offset (so the slew rate grows with its square), never
    faster than maxslewrate.
    """
    if offset_us == 0.0:
        return 0.0, 0
    duration_s = p.corr_time_ratio * sd_us * poll_s / abs(offset_us)
    duration_s = max(duration_s, abs(offset_us) / p.max_slew_ppm)
    samples = max(1, math.ceil(duration_s / interval_s - 1e-9))
    return -offset_us / (samples * interval_s), samples


def _adapt_poll(score: float, level: int, n_samples: int, p: _ClockParams, max_level: int) -> tuple[float, int]:
    """chrony's polltarget: longer polls while the regression keeps more samples than
    the target (the clock is predictable), shorter ones when it keeps fewer."""
    score += (n_samples - p.poll_target) / p.poll_target
    if score >= 1.0 and level < max_level:
        return 0.0, level + 1
    if score <= -1.0 and level > 0:
        return 0.0, level - 1
    return min(max(score, -1.0), 1.0), level


def _delay_outlier(delay_us: float, history: list[list[float]], sd_us: float, p: _ClockParams) -> bool:
    """chrony's maxdelaydevratio test: a round trip much longer than the history's shortest."""
    if len(history) < _MIN_REGRESSION_SAMPLES:
        return False
    min_delay_us = min(row[2] for row in history)
    return delay_us - min_delay_us > p.max_delay_dev_ratio * sd_us


def _chrony_discipline_us(
    free_offset_us: np.ndarray,
    start_freq_ppm: float,
    congested: np.ndarray,
    p: _ClockParams,
    interval_s: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Run a chronyd-like servo (_chrony_polls) over the free-running offset.

    Returns, like _discipline_us, the (n,) correction added to the offset and
    the indices of steps.
    """
    segments, step_us = _chrony_polls(free_offset_us, start_freq_ppm, congested, p, interval_s, rng)
    return _apply_segments(segments, step_us, interval_s), np.flatnonzero(step_us)


def _chrony_polls(
    free_offset_us: np.ndarray,
    start_freq_ppm: float,
    congested: np.ndarray,
    p: _ClockParams,
    interval_s: float,
    rng: np.random.Generator,
) -> tuple[list[tuple[int, float, float, int]], np.ndarray]:
    """chronyd's loop, once per poll: what it measures, estimates and corrects.

    Modelled, per poll: one NTP measurement (best of a burst); a delay test
    rejecting it (maxdelaydevratio, at most _MAX_REJECTED_POLLS in a row); the
    last max_samples accepted samples, pruned by a runs test, fitted by a
    delay-weighted regression giving the offset now, the frequency and its
    skew (a sample far off the line's prediction restarts the regression: the
    clock jumped); the frequency updated by an inverse-variance (skew) average
    with the old one; the offset removed by a slew whose duration follows
    corrtimeratio, bounded by maxslewrate; makestep when the offset exceeds step_threshold_us
    within the first makestep_limit updates (always if negative); the poll
    doubled or halved between minpoll and maxpoll to keep about poll_target
    samples (polltarget).

    Simplified: one source, no source selection or combining; samples are kept
    as the free-running clock's offsets, equivalent to chronyd re-slewing its
    stored samples after every adjustment; a new update replaces the rest of
    the previous slew instead of adding to it; the runs test prunes a quarter
    at a time instead of searching the best start; no iburst, no leap seconds,
    no root dispersion.

    Returns one (length in samples, frequency ppm, slew ppm, slew length in
    samples) per poll, from sample 0 on, and the (n,) steps. Polls fall on the
    minpoll grid, so the measurements are drawn for the whole grid at once.
    """
    n = free_offset_us.size
    min_every = max(1, round(p.min_poll_s / interval_s))
    max_level = max(0, math.floor(math.log2(p.max_poll_s / (min_every * interval_s)) + 1e-9))
    grid = np.arange(0, n, min_every)
    grid_error_us, grid_delay_us = _ntp_measurements_us(congested[grid], p, rng)
    grid_free_us = free_offset_us[grid].tolist()
    # A restarted chronyd reads its driftfile; a cold one knows nothing yet.
    if p.cold_start:
        level, freq_ppm, skew_ppm = 0, 0.0, 1e3
    else:
        level = int(rng.integers(0, max_level + 1))
        freq_ppm, skew_ppm = -(start_freq_ppm + rng.normal(0.0, 0.02)), 0.05

    history: list[list[float]] = []  # [time_s, free-running offset_us, delay_us]
    fit: _Fit | None = None
    fit_time_s = 0.0
    sd_us = math.inf
    correction_us, slew_ppm, slew_left = 0.0, 0.0, 0
    updates, rejected, score = 0, 0, 0.0
    segments: list[tuple[int, float, float, int]] = []  # (length, freq, slew rate, slew length)
    step_us = np.zeros(n)
    g = 0
    while g < grid.size:
        i = g * min_every
        delay_us = float(grid_delay_us[g])
        measured_us = grid_free_us[g] + correction_us + float(grid_error_us[g])
        if _delay_outlier(delay_us, history, sd_us, p) and rejected < _MAX_REJECTED_POLLS:
            rejected += 1  # no update: the current frequency and slew carry on
        else:
            rejected, updates = 0, updates + 1
            now_s, free_us = i * interval_s, measured_us - correction_us
            if (
                fit is not None
                and abs(free_us - fit.offset_us - fit.freq_ppm * (now_s - fit_time_s)) > _RESTART_SIGMAS * sd_us
            ):
                history.clear()
            history.append([now_s, free_us, delay_us])
            del history[: -p.max_samples]
            offset_us, fit = measured_us, None
            if len(history) >= _MIN_REGRESSION_SAMPLES:
                fit, fit_time_s = _fit_recent(history), now_s
                offset_us, sd_us = fit.offset_us + correction_us, fit.sd_us
                freq_ppm, skew_ppm = _combine_frequency(freq_ppm, skew_ppm, -fit.freq_ppm, fit.skew_ppm, p)
            score, level = _adapt_poll(score, level, len(history), p, max_level)
            if abs(offset_us) > p.step_threshold_us and (p.makestep_limit < 0 or updates <= p.makestep_limit):
                step_us[i] -= offset_us
                correction_us -= offset_us
                slew_ppm, slew_left = 0.0, 0
            else:
                scatter_us = sd_us if math.isfinite(sd_us) else _MIN_OFFSET_SD_US
                poll_s = (min_every << level) * interval_s
                slew_ppm, slew_left = _slew(offset_us, scatter_us, poll_s, p, interval_s)
        length = min(min_every << level, n - i)
        slewing = min(slew_left, length)
        segments.append((length, freq_ppm, slew_ppm, slewing))
        correction_us += (freq_ppm * length + slew_ppm * slewing) * interval_s
        slew_left -= slewing
        g += 1 << level
    return segments, step_us


def _apply_segments(
    segments: list[tuple[int, float, float, int]], step_us: np.ndarray, interval_s: float
) -> np.ndarray:
    """(n,) correction from per-poll (length, frequency, slew rate, slew length) and steps."""
    lengths, freq_ppm, slew_ppm, slewing = (np.array(column) for column in zip(*segments, strict=True))
    rate_ppm = np.repeat(freq_ppm, lengths) + np.repeat(
        np.column_stack((slew_ppm, np.zeros_like(slew_ppm))).ravel(),
        np.column_stack((slewing, lengths - slewing)).ravel(),
    )
    slewed_us = np.concatenate(([0.0], np.cumsum(rate_ppm[:-1]) * interval_s))
    return slewed_us + np.cumsum(step_us)


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
    return _simulate(scenario, p, n_steps, interval_s, rng)


def _simulate(
    scenario: str, p: _ClockParams, n_steps: int, interval_s: float, rng: np.random.Generator
) -> SyntheticClock:
    """Generate the series of a clock with parameters `p` (the draws after the parameters)."""
    time_s = np.arange(n_steps) * interval_s

    busy = _bursts(n_steps, p.busy_fraction, p.mean_busy_s, interval_s, rng)
    load = np.where(busy, p.busy_load, p.idle_load) + rng.normal(0.0, 0.03, n_steps)
    cpu_load = np.clip(load, 0.0, 1.0)
    ambient_c = p.ambient_c + p.thermal_cycle_c * np.sin(
        2.0 * math.pi * time_s / p.thermal_period_s + p.thermal_phase_rad
    )
    temperature_c = _first_order_lag(ambient_c + p.heating_c_per_load * cpu_load, p.thermal_tau_s, interval_s)

    freq_walk_ppm = np.cumsum(rng.normal(0.0, p.freq_walk_ppm_per_sqrt_s * math.sqrt(interval_s), n_steps))
    freq_walk_ppm -= freq_walk_ppm[0]
    freq_ppm = (
        p.freq_offset_ppm
        + p.aging_ppm_per_day * time_s / 86_400.0
        + freq_walk_ppm
        + p.temp_coeff_ppm_per_c * (temperature_c - temperature_c[0])
    )
    # Offset at sample i integrates the frequency over the intervals before it.
    free_offset_us = p.start_offset_us + np.concatenate(([0.0], np.cumsum(freq_ppm[:-1]) * interval_s))

    if p.jump_us:
        free_offset_us[int(p.jump_at * n_steps) :] += p.jump_us

    congested = _bursts(n_steps, p.congestion_fraction, p.mean_congestion_s, interval_s, rng)
    if p.disciplined:
        servo = _chrony_discipline_us if p.servo == "chrony" else _discipline_us
        correction_us, steps = servo(free_offset_us, float(freq_ppm[0]), congested, p, interval_s, rng)
    else:
        correction_us, steps = np.zeros(n_steps), np.empty(0, dtype=np.int64)
    true_offset_us = free_offset_us + correction_us + rng.normal(0.0, p.phase_jitter_us, n_steps)
    if p.white_fm_us_per_sqrt_s > 0.0:
        true_offset_us += np.cumsum(rng.normal(0.0, p.white_fm_us_per_sqrt_s * math.sqrt(interval_s), n_steps))

    observer = (
        p
        if p.observation_error_scale == 1.0
        else replace(
            p,
            noise_us=p.noise_us * p.observation_error_scale,
            delay_jitter_us=p.delay_jitter_us * p.observation_error_scale,
            spike_scale_us=p.spike_scale_us * p.observation_error_scale,
        )
    )
    observed_offset_us = true_offset_us + _measurement_error_us(congested, observer, rng)
    if p.resolution_us > 0.0:
        observed_offset_us = np.round(observed_offset_us / p.resolution_us) * p.resolution_us
    observed_offset_us[_missing_mask(n_steps, p.missing_rate, p.mean_gap_s, interval_s, rng)] = np.nan

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
        raise ValueError(f"need n_windows >= 0 and window_length >= 1, got {n_windows}, {window_length}")
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
