"""The clock's own autoregression (``online_ar``) on simulated clocks whose best forecast is known."""

from __future__ import annotations

import numpy as np
import pytest

from chronotick_gateway import online_ar
from chronotick_gateway.clocks import RecalledClock, learn_motion, online_ar_member
from chronotick_gateway.members import MemberResult
from chronotick_gateway.memory import ANCHOR_HORIZONS_S, ClockState, Samples, decode, encode

ALL_ANCHORS = list(range(len(ANCHOR_HORIZONS_S)))


def noisy_drift(n: int, seed: int = 0, noise_us: float = 1.0) -> np.ndarray:
    """A clock with a steady drift and a slow frequency wander, read through white noise: the last
    value carries the noise twice over (its own sample's and the next one's); a fit of the path does not."""
    rng = np.random.default_rng(seed)
    frequency = 0.2 + np.cumsum(rng.normal(0.0, 0.002, n))
    return np.cumsum(frequency) + rng.normal(0.0, noise_us, n)


def fresh() -> list[online_ar.AnchorRegression]:
    return [online_ar.AnchorRegression() for _ in ANCHOR_HORIZONS_S]


def test_it_learns_to_beat_the_last_value_where_the_noise_is_white() -> None:
    offsets = noisy_drift(6000)
    anchors = fresh()
    online_ar.learn(anchors, ANCHOR_HORIZONS_S, offsets[:5000], 1.0, 0)
    errors, naive = [], []
    for end in range(5000, 5900, 10):
        forecast = online_ar.forecast(anchors, ANCHOR_HORIZONS_S, ALL_ANCHORS, offsets[end - 512 : end], 1.0, 60)
        assert not isinstance(forecast, str), forecast
        mean, std = forecast
        errors.append(np.abs(offsets[end : end + 60] - mean)[[0, 9, 59]])
        naive.append(np.abs(offsets[end : end + 60] - offsets[end - 1])[[0, 9, 59]])
        assert np.all(np.diff(std) >= 0) and std[0] > 0  # the spread grows with the horizon
    ratio = np.mean(errors, axis=0) / np.mean(naive, axis=0)
    # one step ahead the best possible is sqrt(1/2) of the last value's error (its noise counted once)
    assert np.all(ratio < 0.8), ratio


def test_learning_a_clock_request_by_request_adds_each_row_once() -> None:
    """An agent's overlapping 512-sample windows, 10 new samples each, teach the rows that the whole
    log taught 10 samples at a time: each row once, from the same samples, in the same order."""
    offsets = noisy_drift(1500, seed=1)
    state = ClockState(interval_s=1.0)
    whole = fresh()
    for end in range(512, offsets.size + 1, 10):
        learn_motion(state, Samples.on_grid(float(end - 512), 1.0, offsets[end - 512 : end]))
        online_ar.learn(whole, ANCHOR_HORIZONS_S, offsets[:end], 1.0, 0 if end == 512 else end - 10)
    for streamed, expected in zip(state.regressions, whole, strict=True):
        assert streamed.rows >= online_ar.READY_ROWS
        assert streamed.rows == pytest.approx(expected.rows, rel=1e-12)
        np.testing.assert_allclose(streamed.gram, expected.gram, rtol=1e-9)
        np.testing.assert_allclose(streamed.cross, expected.cross, rtol=1e-9, atol=1e-9)
    assert state.learned_until_s == end - 1
    # the same window again teaches nothing new
    before = [r.model_copy() for r in state.regressions]
    learn_motion(state, Samples.on_grid(float(end - 512), 1.0, offsets[end - 512 : end]))
    assert state.regressions == before


def test_a_clock_step_in_its_past_does_not_wreck_what_it_learned() -> None:
    """A step thousands of times the clock's motion: its rows are clipped in the clock's own units."""
    offsets = noisy_drift(6000, seed=2)
    stepped = offsets.copy()
    stepped[300:] += 50_000.0
    clean, dirty = fresh(), fresh()
    online_ar.learn(clean, ANCHOR_HORIZONS_S, offsets[:4000], 1.0, 0)
    online_ar.learn(dirty, ANCHOR_HORIZONS_S, stepped[:4000], 1.0, 0)
    just_stepped = stepped.copy()
    just_stepped[3990:] += 50_000.0
    assert "clock step" in str(online_ar.forecast(dirty, ANCHOR_HORIZONS_S, ALL_ANCHORS, just_stepped[:4000], 1.0, 60))
    window = stepped[4000 - 512 : 4000]
    with_step = online_ar.forecast(dirty, ANCHOR_HORIZONS_S, ALL_ANCHORS, window, 1.0, 60)
    without = online_ar.forecast(clean, ANCHOR_HORIZONS_S, ALL_ANCHORS, window, 1.0, 60)
    assert not isinstance(with_step, str) and not isinstance(without, str)
    naive_error = np.mean(np.abs(stepped[4000:4060] - stepped[3999]))
    assert np.mean(np.abs(with_step[0] - without[0])) < 0.2 * naive_error


def test_it_says_why_it_cannot_answer_yet() -> None:
    offsets = noisy_drift(700, seed=3)
    anchors = fresh()
    online_ar.learn(anchors, ANCHOR_HORIZONS_S, offsets[:400], 1.0, 0)  # about 140 rows: not ready
    assert "still learning" in str(online_ar.forecast(anchors, ANCHOR_HORIZONS_S, ALL_ANCHORS, offsets[:400], 1.0, 60))
    online_ar.learn(anchors, ANCHOR_HORIZONS_S, offsets, 1.0, 400)
    missing_last = offsets.copy()
    missing_last[-1] = np.nan
    assert "last sample" in str(online_ar.forecast(anchors, ANCHOR_HORIZONS_S, ALL_ANCHORS, missing_last, 1.0, 60))
    assert "last sample" in str(online_ar.forecast(anchors, ANCHOR_HORIZONS_S, ALL_ANCHORS, offsets[:200], 1.0, 60))
    assert "no remembered horizon" in str(online_ar.forecast(anchors, ANCHOR_HORIZONS_S, [], offsets, 1.0, 60))

    gappy = offsets.copy()
    gappy[600:610] = np.nan  # an interior gap is bridged for the features
    assert not isinstance(online_ar.forecast(anchors, ANCHOR_HORIZONS_S, ALL_ANCHORS, gappy, 1.0, 60), str)


def test_missing_samples_leave_their_rows_out_and_the_state_round_trips() -> None:
    offsets = noisy_drift(1200, seed=4)
    gappy = offsets.copy()
    gappy[700:720] = np.nan
    full, holed = ClockState(interval_s=1.0), ClockState(interval_s=1.0)
    learn_motion(full, Samples.on_grid(0.0, 1.0, offsets))
    learn_motion(holed, Samples.on_grid(0.0, 1.0, gappy))
    for a, (f, h) in enumerate(zip(full.regressions, holed.regressions, strict=True)):
        assert 0 < h.rows < f.rows, ANCHOR_HORIZONS_S[a]
        assert np.all(np.isfinite(h.gram)) and np.all(np.isfinite(h.cross))
    assert decode(encode(holed)).regressions == holed.regressions


def test_the_gateway_asks_it_for_warm_clocks_within_its_longest_horizon_only() -> None:
    """Past 60 s it would hold its last change, with the weight it earned at 60 s."""
    offsets = noisy_drift(1500, seed=5)
    state = ClockState(interval_s=1.00027)  # a logger's cadence: 60 steps still end at the 60 s horizon
    samples = Samples.on_grid(0.0, 1.00027, offsets)
    learn_motion(state, samples)

    def member(horizon: int, scored: int = 30) -> MemberResult:
        clock = RecalledClock("host", state, samples, newly_scored=0, scored=scored, warm_after=30)
        return online_ar_member([object()], {0: clock}, horizon)  # type: ignore[list-item]

    assert member(60).status == "ok" and member(60).forecasts[0].mean_us.shape == (60,)  # type: ignore[index]
    assert member(61).status == "skipped" and "learns up to 60 s ahead" in str(member(61).reason)
    assert member(60, scored=29).status == "skipped" and "not warm yet" in str(member(60, scored=29).reason)
    assert online_ar_member([object()], {}, 60).reason == "series 0: names no clock"  # type: ignore[list-item]
