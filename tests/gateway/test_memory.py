"""A clock's memory as pure functions: scoring forecasts as their truth arrives, the online weights
(ML-Poly and inverse MSE) and the conformal bounds, on simulated streams with known answers."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from chronotick_gateway.memory import (
    ANCHOR_HORIZONS_S,
    MAX_PENDING,
    REMEMBER_EVERY_S,
    STATE_VERSION,
    TRACKED_LEVELS,
    ClockState,
    Samples,
    UnreadableState,
    anchor_weights,
    anchors_within,
    decode,
    encode,
    evidence,
    remember,
    remembered_bounds,
    rule_in_use,
    score,
    step_weights,
    weightless_members,
)

HORIZON = 60


def flat(value: float) -> np.ndarray:
    return np.full(HORIZON, value)


def stream(
    state: ClockState,
    truth: np.ndarray,
    members: dict[str, np.ndarray],
    every_s: int = 5,
    fused: np.ndarray | None = None,
    std: float = 1.0,
    remembered: bool = False,
) -> None:
    """Ask at every ``every_s``-th second: score what the samples so far reach, then remember the
    members' forecasts (row t of each member array: its forecast for t + 1 .. t + 60)."""
    for t in range(every_s, truth.size - HORIZON, every_s):
        score(state, Samples.on_grid(0.0, 1.0, truth[: t + 1]))
        forecasts = {name: values[t] for name, values in members.items()}
        mean = fused[t] if fused is not None else np.mean(list(forecasts.values()), axis=0)
        remember(state, float(t), forecasts, mean, flat(std), remembered)


def member_forecasts(truth: np.ndarray, bias: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """(T, H) forecasts of truth[t + 1 .. t + H] made at each t: truth plus bias plus noise."""
    padded = np.concatenate([truth, np.full(HORIZON, truth[-1])])
    rows = np.stack([padded[t + 1 : t + 1 + HORIZON] for t in range(truth.size)])
    return rows + bias + rng.normal(0.0, noise, rows.shape)


def test_a_forecast_is_scored_once_when_its_truth_arrives_and_then_forgotten() -> None:
    state = ClockState(interval_s=1.0)
    remember(state, 100.0, {"a": flat(1.0)}, flat(1.0), flat(1.0), remembered=False)
    assert score(state, Samples.on_grid(0.0, 1.0, np.zeros(101))) == []  # nothing reached yet
    outcomes = score(state, Samples.on_grid(0.0, 1.0, np.zeros(111)))  # reaches 101 .. 110
    assert sorted(o.horizon_s for o in outcomes) == [1.0, 2.0, 5.0, 10.0]
    assert score(state, Samples.on_grid(0.0, 1.0, np.zeros(111))) == []  # never twice
    assert [a.scored for a in state.anchors] == [1, 1, 1, 1, 0, 0, 0, 0]
    assert state.anchors[0].members["a"].abs_error_sum == pytest.approx(1.0)
    score(state, Samples.on_grid(0.0, 1.0, np.zeros(161)))
    assert state.pending == []


def test_an_anchor_whose_sample_is_missing_waits_then_is_forgotten_unscored() -> None:
    state = ClockState(interval_s=1.0)
    remember(state, 100.0, {"a": flat(0.0)}, flat(0.0), flat(1.0), remembered=False)
    offsets = np.zeros(111)
    offsets[110] = np.nan  # the 10 s anchor's sample
    score(state, Samples.on_grid(0.0, 1.0, offsets))
    assert state.anchors[3].scored == 0 and state.pending[0].fused_mean_us[3] is not None
    score(state, Samples.on_grid(0.0, 1.0, np.full(300, np.nan)))  # long after, still missing
    assert state.anchors[3].scored == 0 and state.pending == []


def test_sparse_observations_score_the_anchors_they_hit_and_leave_the_rest_waiting() -> None:
    state = ClockState(interval_s=1.0)
    remember(state, 100.0, {"a": flat(0.0)}, flat(0.0), flat(1.0), remembered=False)
    outcomes = score(state, Samples(np.array([102.1, 105.0]), np.array([3.0, 4.0]), 1.0))
    assert sorted(o.horizon_s for o in outcomes) == [2.0, 5.0]
    assert state.pending[0].fused_mean_us[0] is not None  # 101 s: no observation there yet


def test_answers_closer_together_than_the_spacing_are_not_remembered_and_pending_is_bounded() -> None:
    state = ClockState(interval_s=1.0)
    assert remember(state, 10.0, {"a": flat(0.0)}, flat(0.0), flat(1.0), remembered=False)
    assert not remember(state, 10.0 + REMEMBER_EVERY_S / 2, {"a": flat(0.0)}, flat(0.0), flat(1.0), remembered=False)
    assert not remember(state, 5.0, {"a": flat(0.0)}, flat(0.0), flat(1.0), remembered=False)  # back in time
    for k in range(1, 3 * MAX_PENDING):
        remember(state, 10.0 + k * REMEMBER_EVERY_S, {"a": flat(0.0)}, flat(0.0), flat(1.0), remembered=False)
    assert len(state.pending) == MAX_PENDING
    assert state.requests == 3 + 3 * MAX_PENDING - 1  # every answer counts, remembered or not


def test_ml_poly_gives_the_weight_to_the_member_that_is_right() -> None:
    rng = np.random.default_rng(3)
    truth = np.cumsum(rng.normal(0.0, 1.0, 3000))
    members = {
        "good": member_forecasts(truth, 0.0, 0.5, rng),
        "biased": member_forecasts(truth, 4.0, 0.5, rng),
        "noisy": member_forecasts(truth, 0.0, 6.0, rng),
    }
    state = ClockState(interval_s=1.0)
    stream(state, truth, members)
    for anchor in state.anchors:
        weights = dict(zip(members, anchor_weights(anchor, list(members)), strict=True))
        assert weights["good"] > 0.8, (anchor.horizon_s, weights)
        assert anchor.scored > 500


def test_the_weights_follow_a_change_of_regime() -> None:
    """The member that was right stops being right: within a few hundred scored forecasts the
    weight moves to the other (a switching comparator, as regime changes need)."""
    rng = np.random.default_rng(4)
    truth = np.cumsum(rng.normal(0.0, 1.0, 6000))
    first = member_forecasts(truth, 0.0, 0.5, rng)
    second = member_forecasts(truth, 0.0, 0.5, rng)
    first[3000:] += 8.0
    second[:3000] += 8.0
    state = ClockState(interval_s=1.0)
    stream(state, truth, {"first": first, "second": second})
    weights = step_weights(state, ["first", "second"], HORIZON)
    assert np.all(weights[1] > 0.9), weights[1]


def test_the_rule_in_use_is_the_one_with_the_smaller_realised_loss() -> None:
    state = ClockState(interval_s=1.0)
    anchor = state.anchors[0]
    assert rule_in_use(anchor) == "ml-poly"  # no evidence yet
    anchor.rule_loss = {"ml-poly": 2.0, "inverse-mse": 1.0}
    assert rule_in_use(anchor) == "inverse-mse"


def test_a_member_never_scored_weighs_nothing_and_is_weightless() -> None:
    rng = np.random.default_rng(5)
    truth = np.cumsum(rng.normal(0.0, 1.0, 1500))
    state = ClockState(interval_s=1.0)
    stream(
        state, truth, {"good": member_forecasts(truth, 0.0, 0.5, rng), "bad": member_forecasts(truth, 30.0, 0.5, rng)}
    )
    weights = step_weights(state, ["good", "bad", "new"], HORIZON)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)
    assert np.all(weights[2] == 0)
    assert weightless_members(state, ["good", "bad", "new"], HORIZON) == {"bad", "new"}


@pytest.mark.parametrize("tails", ["normal", "student-t-2", "scale-off-10x"])
def test_remembered_bounds_cover_at_their_level_whatever_the_tails(tails: str) -> None:
    """The fused error is normal, heavy-tailed (Student-t, 2 degrees of freedom), or ten times what
    the first forecasts claimed: the 80 % and 95 % intervals still cover 80 % and 95 % in the long
    run, on each side."""
    rng = np.random.default_rng(6)
    size = 12_000
    truth = np.zeros(size)
    errors = {
        "normal": rng.normal(0.0, 1.0, (size, HORIZON)),
        "student-t-2": rng.standard_t(2.0, (size, HORIZON)),
        "scale-off-10x": rng.normal(0.0, 10.0, (size, HORIZON)),
    }[tails]
    forecasts = truth[:, None] - errors  # error = truth - forecast
    state = ClockState(interval_s=1.0)
    low80, high80, low95, high95 = [], [], [], []
    for t in range(5, size - HORIZON, 5):
        score(state, Samples.on_grid(0.0, 1.0, truth[: t + 1]))
        if t > 2000:  # once the tracker has settled: score what it answers from here on
            bounds = remembered_bounds(state, [0.025, 0.1, 0.9, 0.975], HORIZON)
            realised = truth[t + 1 : t + 1 + HORIZON] - forecasts[t]
            low95.append(realised < bounds.quantiles_us[0])
            low80.append(realised < bounds.quantiles_us[1])
            high80.append(realised > bounds.quantiles_us[2])
            high95.append(realised > bounds.quantiles_us[3])
        remember(state, float(t), {"m": forecasts[t]}, forecasts[t], flat(1.0), remembered=True)
    assert np.mean(low80) == pytest.approx(0.1, abs=0.03)
    assert np.mean(high80) == pytest.approx(0.1, abs=0.03)
    assert np.mean(low95) == pytest.approx(0.025, abs=0.015)
    assert np.mean(high95) == pytest.approx(0.025, abs=0.015)
    coverage = state.anchors[3].covered["0.8"] / state.anchors[3].remembered_scored
    assert coverage == pytest.approx(0.8, abs=0.04)


def test_remembered_quantiles_are_ordered_across_levels_and_extend_beyond_the_tracked_ones() -> None:
    state = ClockState(interval_s=1.0)
    for anchor in state.anchors:
        anchor.error_scale_us = 2.0
        anchor.quantiles = list(np.linspace(1.0, -1.0, len(TRACKED_LEVELS)))  # crossed: must be sorted on use
    levels = [0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999]
    bounds = remembered_bounds(state, levels, HORIZON)
    assert np.all(np.diff(bounds.quantiles_us, axis=0) >= 0)
    assert np.all(bounds.quantiles_us[0] < bounds.quantiles_us[1])
    assert np.all(bounds.std_us > 0)


def test_anchors_are_those_a_forecast_reaches_at_its_cadence() -> None:
    assert [ANCHOR_HORIZONS_S[a] for a in anchors_within(1.0, 10)] == [1.0, 2.0, 5.0, 10.0]
    # A logger's cadence is rarely exactly 1 s: its first step is still the 1 s anchor.
    assert [ANCHOR_HORIZONS_S[a] for a in anchors_within(1.00027, 10)] == [1.0, 2.0, 5.0, 10.0]
    assert [ANCHOR_HORIZONS_S[a] for a in anchors_within(0.9997, 10)] == [1.0, 2.0, 5.0, 10.0]
    assert [ANCHOR_HORIZONS_S[a] for a in anchors_within(2.0, 30)] == [2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0]
    assert [ANCHOR_HORIZONS_S[a] for a in anchors_within(64.0, 10)] == [60.0]  # its first step, near enough
    assert anchors_within(128.0, 10) == []  # an NTP-paced clock: nothing remembered at these horizons
    state = ClockState(interval_s=128.0)
    assert evidence(state, 10) == 0


@pytest.mark.parametrize("interval_s", [1.00027, 1.5])
def test_at_a_cadence_off_the_anchors_the_first_steps_get_bounds_and_weights_from_anchors_with_evidence(
    interval_s: float,
) -> None:
    """At 1.5 s the 1 s anchor is never reached: the first step (1.5 s) must not be read half from an
    anchor without evidence (no scale, no weights), which would narrow its bounds to nothing."""
    rng = np.random.default_rng(8)
    horizon = 20
    state = ClockState(interval_s=interval_s)
    truth = np.zeros(3000)
    errors = rng.normal(0.0, 1.0, (truth.size, horizon))
    for t in range(5, truth.size - horizon, 5):
        score(state, Samples.on_grid(0.0, interval_s, truth[: t + 1]))
        origin_s = t * interval_s
        remember(
            state, origin_s, {"m": -errors[t], "n": 3.0 - errors[t]}, -errors[t], np.ones(horizon), remembered=True
        )
    bounds = remembered_bounds(state, [0.1, 0.9], horizon)
    assert np.all(bounds.quantiles_us[1] - bounds.quantiles_us[0] > 1.5)  # about 2 x 1.28 sd, every step
    weights = step_weights(state, ["m", "n"], horizon)
    assert np.all(weights[0] > 0.9)  # the unbiased member, at the first step too


def test_a_state_round_trips_and_one_of_another_version_or_garbage_is_refused() -> None:
    state = ClockState(interval_s=1.0)
    remember(state, 10.0, {"a": flat(1.0)}, flat(1.0), flat(1.0), remembered=False)
    assert decode(encode(state)) == state
    other = state.model_copy(update={"version": STATE_VERSION + 1})
    with pytest.raises(UnreadableState):
        decode(encode(other))
    for garbage in (b"", b"\xff\xfe", b'{"interval_s": "x"}', b"[]", b"\x28\xb5\x2f\xfd truncated"):
        with pytest.raises(UnreadableState):
            decode(garbage)


def test_a_state_written_deflated_before_the_switch_to_zstandard_is_still_read() -> None:
    """An upgraded gateway keeps what the clocks' memory learned (Redis keeps it across restarts)."""
    state = ClockState(interval_s=1.0)
    remember(state, 10.0, {"a": flat(1.0)}, flat(1.0), flat(1.0), remembered=False)
    assert decode(zlib.compress(state.model_dump_json().encode(), 1)) == state
    assert encode(state) != zlib.compress(state.model_dump_json().encode(), 1)  # written as Zstandard now


def test_a_sample_is_looked_up_within_half_a_cadence_the_earlier_on_a_tie() -> None:
    samples = Samples(np.array([0.0, 1.0, 2.0, 4.0]), np.array([10.0, 11.0, np.nan, 14.0]), 1.0)
    found = samples.at(np.array([-0.5, -0.6, 0.4, 0.5, 1.2, 2.0, 3.0, 3.6, 4.5, 4.6]))
    # -0.5: the first, just within; -0.6: none; 0.5: a tie, the earlier; 2.0: missing (NaN); 3.0: no
    # sample within half a cadence; 4.5: the last, just within.
    np.testing.assert_array_equal(found, [10.0, np.nan, 10.0, 10.0, 11.0, np.nan, np.nan, 14.0, 14.0, np.nan])
    assert np.isnan(Samples(np.array([]), np.array([]), 1.0).at(np.array([0.0, 1.0]))).all()


def test_a_learned_state_round_trips_and_a_malformed_member_record_is_refused() -> None:
    rng = np.random.default_rng(3)
    truth = np.cumsum(rng.normal(0.0, 1.0, 400))
    state = ClockState(interval_s=1.0)
    stream(
        state,
        truth,
        {"good": member_forecasts(truth, 0.0, 0.5, rng), "bad": member_forecasts(truth, 3.0, 2.0, rng)},
        remembered=True,
    )
    assert state.anchors[0].members["good"].scored > 0
    assert decode(encode(state)) == state
    malformed = state.model_dump_json().replace('"regret":', '"regret":"a lot","was":', 1)
    with pytest.raises(UnreadableState):
        decode(zlib.compress(malformed.encode(), 1))
