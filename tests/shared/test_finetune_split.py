"""Fine-tuning's data split (the part that needs no torch): by time, deterministic, never past the cut."""

from pathlib import Path

import numpy as np
import pytest

from chronotick.finetune import crop_starts, read_cut_time_s, split_log, write_record
from support.clock_log import START_S, write_csv_log


def test_the_split_is_by_time_and_the_cut_is_the_last_training_sample(tmp_path: Path):
    log = write_csv_log(tmp_path / "clock.csv", 2001)
    split = split_log(log, 0.5, 0.2)
    assert split.cut_time_s == START_S + 1000  # half of the 2000 s span
    assert split.time_s[-1] == split.cut_time_s and split.offsets_us.size == 1001
    assert split.time_s[split.validation_start] == START_S + 801  # the last 0.2 of the training part
    again = split_log(log, 0.5, 0.2)  # deterministic: nothing random in the split
    assert again.cut_time_s == split.cut_time_s and np.array_equal(again.offsets_us, split.offsets_us, equal_nan=True)


def test_the_cut_is_an_observed_sample_when_the_boundary_falls_in_a_hole(tmp_path: Path):
    log = write_csv_log(tmp_path / "clock.csv", 2001, missing=tuple(range(990, 1010)))
    split = split_log(log, 0.5)
    assert split.cut_time_s == START_S + 989
    assert np.isfinite(split.offsets_us[-1])


def test_crops_stay_in_their_part_and_never_cross_a_step(tmp_path: Path):
    split = split_log(write_csv_log(tmp_path / "clock.csv", 3001, step_at=700), 0.5)
    crop, future = 200, 64
    training, validation = crop_starts(split, crop, future)
    assert training.size and validation.size
    assert np.all(training + crop <= split.validation_start)
    assert np.all(validation + crop - future >= split.validation_start)
    assert np.all(validation + crop <= split.offsets_us.size)  # nothing after the cut
    for start in np.concatenate([training, validation]):
        assert not start < 700 < start + crop


def test_a_bad_fraction_or_a_missing_record_is_a_clear_error(tmp_path: Path):
    log = write_csv_log(tmp_path / "clock.csv", 100)
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_log(log, 1.0)
    with pytest.raises(ValueError, match="not a directory written by finetune"):
        read_cut_time_s(tmp_path)
    write_record(tmp_path, {"cut_time_s": START_S + 5})
    assert read_cut_time_s(tmp_path) == START_S + 5
