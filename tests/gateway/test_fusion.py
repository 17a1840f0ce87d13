"""Fusion math: calibrated inverse-variance weights, correlation-aware fused spread."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronotick_gateway.fusion import (
    PRIOR_PSEUDO_ORIGINS,
    MemberForecast,
    calibrated_std,
    effective_origins,
    error_correlation,
    fuse,
    inverse_variance_weights,
    predictive_quantiles,
    shrunk_correlation,
    step_scales,
    variance_scale,
)

H = 5


def member(mean: float, std: float, errors: np.ndarray | None = None) -> MemberForecast:
    errors = np.empty((0, H)) if errors is None else errors
    return MemberForecast(
        mean_us=np.full(H, mean),
        std_us=np.full(H, std),
        backtest_errors_us=errors,
        backtest_std_us=np.full(errors.shape, std),
    )


positive = st.floats(0.01, 1e4, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), positive), min_size=1, max_size=6))
def test_weights_sum_to_one_and_the_mean_stays_within_the_members(pairs: list[tuple[float, float]]) -> None:
    fused = fuse([member(m, s) for m, s in pairs])
    np.testing.assert_allclose(fused.weights.sum(axis=0), 1.0)
    means = [m for m, _ in pairs]
    assert np.all(fused.mean_us >= min(means) - 1e-6 * (1 + abs(min(means))))
    assert np.all(fused.mean_us <= max(means) + 1e-6 * (1 + abs(max(means))))


@settings(max_examples=50, deadline=None)
@given(st.floats(-1e6, 1e6), positive, st.lists(st.floats(-50, 50), min_size=H * 3, max_size=H * 3))
def test_one_member_gives_its_own_forecast_with_its_calibrated_spread(
    mean: float, std: float, raw: list[float]
) -> None:
    errors = np.array(raw).reshape(3, H)
    one = member(mean, std, errors)
    fused = fuse([one])
    np.testing.assert_allclose(fused.mean_us, mean)
    np.testing.assert_allclose(fused.std_us, calibrated_std(one), rtol=1e-9)
    np.testing.assert_allclose(fused.degrees_of_freedom, 3 + PRIOR_PSEUDO_ORIGINS)


def test_evidence_is_counted_per_origin_and_shrunk_towards_the_members_own_claim() -> None:
    z = np.full((6, H), 3.0)  # every backtest missed by three of its own sigmas
    assert variance_scale(z) == pytest.approx((6 * 9.0 + PRIOR_PSEUDO_ORIGINS) / (6 + PRIOR_PSEUDO_ORIGINS))
    assert variance_scale(np.empty((0, H))) == 1.0


def test_each_step_gets_its_own_scale_when_errors_grow_faster_than_claimed() -> None:
    z = np.tile(np.linspace(0.5, 4.0, H), (6, 1))
    scales = step_scales(z)
    assert np.all(np.diff(scales) > 0)
    assert scales[0] < variance_scale(z) < scales[-1]


def test_calibrated_spread_never_shrinks_with_the_horizon() -> None:
    errors = np.tile(np.array([5.0, 0.1, 0.1, 0.1, 0.1]), (6, 1))
    assert np.all(np.diff(calibrated_std(member(0.0, 1.0, errors))) >= 0)


def test_a_member_with_infinite_variance_has_no_weight() -> None:
    fused = fuse([member(1.0, 1.0), member(100.0, np.inf)])
    np.testing.assert_array_equal(fused.weights[1], 0.0)
    np.testing.assert_allclose(fused.mean_us, 1.0)
    assert np.all(np.isfinite(fused.std_us))


def test_missing_members_drop_out_and_the_rest_renormalise() -> None:
    three = fuse([member(0.0, 1.0), member(3.0, 1.0), member(9.0, 1.0)])
    two = fuse([member(0.0, 1.0), member(3.0, 1.0)])
    np.testing.assert_allclose(three.mean_us, 4.0)
    np.testing.assert_allclose(two.mean_us, 1.5)


def test_the_more_precise_member_weighs_more() -> None:
    fused = fuse([member(0.0, 1.0), member(10.0, 3.0)])
    np.testing.assert_allclose(fused.weights[:, 0], [0.9, 0.1])
    np.testing.assert_allclose(fused.mean_us, 1.0)


def test_calibration_widens_a_member_whose_backtests_missed_by_more_than_it_claimed() -> None:
    errors = np.full((6, H), 4.0)  # four sigmas every time
    fused = fuse([member(0.0, 1.0, errors)])
    assert np.all(fused.std_us > 3.0)


def test_a_member_without_spread_reports_inf_and_has_no_weight() -> None:
    fused = fuse([member(1.0, 1.0), member(5.0, np.inf)])
    assert np.all(np.isinf(fused.member_std_us[1]))


def test_identical_correlated_members_do_not_shrink_the_bound() -> None:
    rng = np.random.default_rng(1)
    errors = rng.normal(0, 1, (6, H))
    alone = fuse([member(0.0, 1.0, errors)])
    twins = fuse([member(0.0, 1.0, errors), member(0.0, 1.0, errors)])
    np.testing.assert_allclose(twins.std_us, alone.std_us)


def test_independent_members_do_shrink_the_bound_once_the_backtests_show_it() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, (32, H)), rng.normal(0, 1, (32, H))
    alone = fuse([member(0.0, 1.0, a)])
    pair = fuse([member(0.0, 1.0, a), member(0.0, 1.0, b)])
    assert np.all(pair.std_us < 0.85 * alone.std_us)


def test_a_correlation_from_few_origins_is_shrunk_towards_shared_errors() -> None:
    corr = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(shrunk_correlation(corr, origins=6), [[1.0, 0.25], [0.25, 1.0]])
    np.testing.assert_allclose(shrunk_correlation(corr, origins=0), 1.0)
    assert np.all(np.linalg.eigvalsh(shrunk_correlation(corr, origins=3)) >= 0)


def test_no_usable_member_is_an_error() -> None:
    with pytest.raises(ValueError):
        inverse_variance_weights(np.full((2, H), np.inf))


def test_members_that_all_claim_no_spread_share_the_weight_and_the_fused_spread_is_zero() -> None:
    # Every member saw a constant context: the limit of inverse variance as their variances go to 0.
    fused = fuse([member(1.0, 0.0), member(3.0, 0.0), member(5.0, np.inf)])
    np.testing.assert_allclose(fused.weights[:, 0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(fused.mean_us, 2.0)
    np.testing.assert_array_equal(fused.std_us, 0.0)


def test_a_member_that_claims_no_spread_has_no_weight_beside_one_with_a_spread() -> None:
    fused = fuse([member(1.0, 0.0), member(3.0, 1.0)])
    np.testing.assert_allclose(fused.weights[:, 0], [0.0, 1.0])


def test_subnormal_variances_weigh_by_their_ratio_without_overflow() -> None:
    weights = inverse_variance_weights(np.array([[5e-324], [1e-323], [1.0]]))
    np.testing.assert_allclose(weights[:, 0], [2 / 3, 1 / 3, 0.0], atol=1e-300)


def test_huge_standardised_errors_leave_the_correlation_finite() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1e200, (6, H))
    corr = error_correlation([a, a + rng.normal(0, 1e199, (6, H))])
    assert np.all(np.isfinite(corr)) and 0.9 < corr[0, 1] <= 1.0


def test_weight_floor_keeps_every_finite_member_in_the_blend() -> None:
    weights = inverse_variance_weights(np.array([[1.0], [1e6]]), floor=0.05)
    assert weights[1, 0] >= 0.05 / 1.05 - 1e-12
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)


def test_predictive_quantiles_are_student_t_and_widen_with_less_evidence() -> None:
    q = predictive_quantiles(np.zeros(H), np.ones(H), [0.1, 0.5, 0.9], degrees_of_freedom=8.0)
    np.testing.assert_allclose(q[1], 0.0)
    np.testing.assert_allclose(q[2], 1.3968153097438645)  # t(8) 90th percentile
    assert np.all(np.diff(q, axis=0) > 0)
    wide = predictive_quantiles(np.zeros(H), np.ones(H), [0.9], degrees_of_freedom=2.0)
    normal_like = predictive_quantiles(np.zeros(H), np.ones(H), [0.9], degrees_of_freedom=1e6)
    assert np.all(wide > q[2]) and np.allclose(normal_like, 1.2815515655446004, rtol=1e-5)


def test_origins_whose_windows_do_not_overlap_count_in_full() -> None:
    known = np.ones((6, 30), dtype=bool)
    origins = [450 - 30 * j for j in range(6)]  # 30 apart: no step up to 30 shares a window
    np.testing.assert_allclose(effective_origins(known, origins), 6.0)
    np.testing.assert_allclose(effective_origins(known, None), 6.0)


def test_overlapping_windows_count_as_fewer_origins() -> None:
    known = np.ones((6, 60), dtype=bool)
    origins = [450 - 30 * j for j in range(6)]
    evidence = effective_origins(known, origins)
    # Step 60: neighbours share half their window (rho 0.5, rho^2 0.25), the others nothing.
    assert evidence[59] == pytest.approx(36.0 / (6 + 2 * 5 * 0.25))
    np.testing.assert_allclose(evidence[:30], 6.0)
    assert np.all(np.diff(evidence) <= 1e-12)  # the longer the step, the more they overlap
    # One origin repeated is one origin's evidence, however often it is counted.
    np.testing.assert_allclose(effective_origins(np.ones((4, 10), dtype=bool), [100] * 4), 1.0)


def test_effective_origins_count_only_known_errors() -> None:
    known = np.ones((3, 4), dtype=bool)
    known[0, 2:] = False  # the newest origin's truth ends after two steps
    known[:, 3] = False
    evidence = effective_origins(known, [300, 200, 100])
    np.testing.assert_allclose(evidence, [3.0, 3.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="origins"):
        effective_origins(known, [1, 2])


def test_fused_quantiles_widen_at_steps_with_less_evidence() -> None:
    steps = 60
    errors = np.random.default_rng(3).normal(0.0, 1.0, (6, steps))
    one = MemberForecast(np.zeros(steps), np.ones(steps), errors, np.ones((6, steps)))
    fused = fuse([one], origins=[450 - 30 * j for j in range(6)])
    assert fused.degrees_of_freedom[0] == pytest.approx(6 + PRIOR_PSEUDO_ORIGINS)
    assert fused.degrees_of_freedom[-1] < fused.degrees_of_freedom[0]
    factors = predictive_quantiles(np.zeros(steps), np.ones(steps), [0.975], fused.degrees_of_freedom)[0]
    assert factors[-1] > factors[0]  # same scale, fewer degrees of freedom: a wider bound
