"""The input scaling the ttm checkpoints were trained with, and the service applies, does what the card says."""

from __future__ import annotations

import numpy as np

from chronotick_ttm.ttm_model import CLIP, SCALE_FLOOR_US, fill_forward, scale_covariates, scale_offsets

nan = np.nan


def test_gaps_carry_the_last_observation_and_leading_gaps_take_the_first() -> None:
    filled, observed = fill_forward(np.array([[nan, nan, 3.0, nan, 5.0, nan], [nan] * 6]))
    np.testing.assert_array_equal(filled, [[3.0, 3.0, 3.0, 3.0, 5.0, 5.0], [0.0] * 6])
    np.testing.assert_array_equal(observed[0], [False, False, True, False, True, False])


def test_offsets_are_relative_to_the_last_observation_in_mean_absolute_steps() -> None:
    past = np.array([[10.0, 12.0, nan, 16.0, 18.0, nan]])
    scaled, _, last, scale = scale_offsets(past)
    assert last[0] == 18.0
    assert scale[0] == 2.0  # |12-10| and |18-16|: steps across a gap are not steps
    np.testing.assert_array_equal(scaled[0], [-4.0, -3.0, -3.0, -1.0, 0.0, 0.0])


def test_a_constant_context_uses_the_floor_and_a_jump_across_a_gap_is_clipped() -> None:
    scaled, _, _, scale = scale_offsets(np.array([[5.0] * 5, [0.0, 1.0, nan, 1e6, 1e6 + 1.0]]))
    assert scale[0] == SCALE_FLOOR_US and np.all(scaled[0] == 0.0)
    assert scale[1] == 1.0 and scaled[1].min() == -CLIP


def test_covariates_are_changes_since_their_last_past_value_and_an_unknown_future_holds() -> None:
    past = np.array([[[20.0, 21.0, 22.0], [0.1, nan, 0.5]]])
    future = np.array([[[23.0, nan], [nan, nan]]])
    past_scaled, future_scaled = scale_covariates(past, future)
    np.testing.assert_allclose(past_scaled[0, 0], [-2.0, -1.0, 0.0])
    np.testing.assert_allclose(past_scaled[0, 1], [-1.6, -1.6, 0.0])
    np.testing.assert_allclose(future_scaled[0], [[1.0, 0.0], [0.0, 0.0]])
