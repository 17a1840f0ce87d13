"""The adapter's inference pass gives what the library's own forward gives, only faster."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sktime.libs.timemoe")

import torch
from chronotick_timemoe.settings import TimeMoeSettings
from chronotick_timemoe.timemoe_model import forecast_normalised, padded_inputs
from sktime.libs.timemoe import TimeMoeForPrediction

HORIZON = 60


def _library_forecast(model: TimeMoeForPrediction, rows: list[np.ndarray]) -> torch.Tensor:
    inputs, attention, positions = padded_inputs(rows)
    out = model(
        input_ids=inputs,
        attention_mask=attention,
        position_ids=positions,
        use_cache=False,
        return_dict=True,
        max_horizon_length=max(model.config.horizon_lengths),
    )
    return out.logits[:, -1, :HORIZON]


def test_one_pass_matches_the_library_forward_with_padding() -> None:
    model = TimeMoeForPrediction.from_pretrained(
        TimeMoeSettings().checkpoint("timemoe"), torch_dtype=torch.float32, use_safetensors=True
    ).eval()
    rng = np.random.default_rng(3)
    # Different lengths in one pass, so the shorter rows are left-padded and masked.
    rows = [np.clip(np.cumsum(rng.normal(0, 1, n)) / 3.0, -50, 50) for n in (512, 452, 90, 16)]
    with torch.inference_mode():
        ours = forecast_normalised(model, rows, HORIZON)
        library = _library_forecast(model, rows)
    assert ours.shape == (4, HORIZON)
    torch.testing.assert_close(ours, library, rtol=1e-4, atol=1e-4)
    assert not torch.equal(ours[0], ours[1])  # rows really forecast differently
