"""A warm clock's kept model forecasts, re-anchored: the arithmetic, and when they may not stand in."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from chronotick_gateway.admission import ServiceLoad
from chronotick_gateway.reuse import ForecastReuse, KeptForecast, reanchored, reused_members

HORIZON = 60


def kept(mean: np.ndarray, origin_s: float = 100.0, interval_s: float = 1.0, version: str = "v1") -> KeptForecast:
    reuse = ForecastReuse(max_clocks=1)
    reuse.keep("clock", "model", version, origin_s, interval_s, mean, np.linspace(1.0, 2.0, mean.size))
    return reuse._clocks["clock"]["model"]


def test_a_kept_forecast_moved_to_a_later_origin_keeps_its_path_and_starts_at_the_newest_sample() -> None:
    # A parabola far from zero: the level never reaches the kept float32 path, only its changes do.
    steps = np.arange(1, HORIZON + 1, dtype=float)
    mean = 5e6 + 0.3 * steps + 0.01 * steps**2
    answer = reanchored(kept(mean), origin_s=107.0, interval_s=1.0, last_us=42.0, horizon=40, most_s=10.0)
    assert answer is not None
    moved, std, age_s = answer
    # step k after the new origin is step 7 + k after the kept one; the path from there, from 42 us
    np.testing.assert_allclose(moved, 42.0 + mean[7:47] - mean[6], atol=1e-3)
    np.testing.assert_allclose(std, np.linspace(1.0, 2.0, HORIZON)[:40], rtol=1e-6)  # k steps ahead: its own spread
    assert age_s == 7.0


def test_steps_past_the_kept_forecasts_end_continue_its_last_slope() -> None:
    mean = np.concatenate([np.zeros(HORIZON - 2), [1.0, 3.0]])  # last step +2 us
    answer = reanchored(kept(mean), origin_s=105.0, interval_s=1.0, last_us=0.0, horizon=HORIZON, most_s=10.0)
    assert answer is not None
    moved = answer[0]
    # new steps 54-60 are the kept steps 59-65: 59 and 60 as kept, then 2 us a step
    np.testing.assert_allclose(moved[-7:], [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0], atol=1e-6)


@pytest.mark.parametrize(
    ("origin_s", "interval_s", "last_us", "horizon", "why"),
    [
        (100.0, 1.0, 0.0, 10, "the same origin: nothing to move"),
        (95.0, 1.0, 0.0, 10, "an earlier origin (a clock that went back)"),
        (111.0, 1.0, 0.0, 10, "older than most_s"),
        (104.5, 1.0, 0.0, 10, "between the kept forecast's steps"),
        (104.0, 2.0, 0.0, 10, "another cadence"),
        (104.0, 1.0, float("nan"), 10, "no sample to anchor at"),
        (104.0, 1.0, 0.0, HORIZON + 1, "longer than the kept forecast"),
    ],
)
def test_a_kept_forecast_does_not_stand_in_where_it_cannot(
    origin_s: float, interval_s: float, last_us: float, horizon: int, why: str
) -> None:
    assert reanchored(kept(np.zeros(HORIZON)), origin_s, interval_s, last_us, horizon, most_s=10.0) is None, why


def test_the_age_limit_counts_whole_steps_of_a_cadence_a_hair_off_a_second() -> None:
    """A log's median spacing, 1.00002 s: ten steps are 10.0002 s, and still within 10 s."""
    interval_s = 1.00002
    forecast = kept(np.zeros(HORIZON), origin_s=100.0, interval_s=interval_s)
    assert reanchored(forecast, 100.0 + 10 * interval_s, interval_s, 0.0, 10, most_s=10.0) is not None
    assert reanchored(forecast, 100.0 + 11 * interval_s, interval_s, 0.0, 10, most_s=10.0) is None


def test_a_forecast_of_another_model_version_is_never_reused() -> None:
    reuse = ForecastReuse(max_clocks=4)
    reuse.keep("clock", "model", "v1", 100.0, 1.0, np.zeros(HORIZON), np.ones(HORIZON))
    assert reuse.reuse("clock", "model", "v1", 105.0, 1.0, 0.0, 10, most_s=10.0) is not None
    assert reuse.reuse("clock", "model", "v2", 105.0, 1.0, 0.0, 10, most_s=10.0) is None
    assert reuse.reuse("clock", "other", "v1", 105.0, 1.0, 0.0, 10, most_s=10.0) is None
    assert reuse.reuse("clock", "model", "v1", 105.0, 1.0, 0.0, 10, most_s=0.0) is None  # reuse off


def test_a_forecast_with_a_non_finite_value_is_not_kept() -> None:
    reuse = ForecastReuse(max_clocks=4)
    reuse.keep("clock", "model", "v1", 100.0, 1.0, np.full(HORIZON, np.nan), np.ones(HORIZON))
    assert len(reuse) == 0


def test_the_least_recently_kept_clock_goes_first_and_a_forgotten_clock_keeps_nothing() -> None:
    reuse = ForecastReuse(max_clocks=2)
    for clock in ("a", "b", "c"):
        reuse.keep(clock, "model", "v1", 100.0, 1.0, np.zeros(HORIZON), np.ones(HORIZON))
    assert len(reuse) == 2
    assert reuse.reuse("a", "model", "v1", 105.0, 1.0, 0.0, 10, most_s=10.0) is None
    assert reuse.reuse("c", "model", "v1", 105.0, 1.0, 0.0, 10, most_s=10.0) is not None
    reuse.forget("c")
    assert reuse.reuse("c", "model", "v1", 105.0, 1.0, 0.0, 10, most_s=10.0) is None


def test_a_busy_services_kept_forecast_stands_in_longer_and_no_longer_than_its_limit() -> None:
    """Idle, a model is asked once its kept forecast is over ``most_s`` old; while its service is
    busy, the forecast stands in up to ``busy_s``, then the model is asked again."""
    reuse = ForecastReuse(max_clocks=4)
    reuse.keep("clock", "bolt", "v1", 100.0, 1.0, np.arange(80.0), np.ones(80))
    model = SimpleNamespace(name="bolt", model_version="v1")
    plan = SimpleNamespace(grid=SimpleNamespace(interval_s=1.0, offsets_us=np.array([0.0, 3.0])))
    idle = SimpleNamespace(name="chronos", load=ServiceLoad(max_in_flight=8))
    busy = SimpleNamespace(name="chronos", load=ServiceLoad(max_in_flight=8, in_flight=3, latency_s=0.6))

    def members(service: SimpleNamespace, last_s: float) -> tuple[list, list]:  # type: ignore[type-arg]
        clock = SimpleNamespace(clock_id="clock", samples=SimpleNamespace(last_s=last_s))
        return reused_members(
            reuse,
            [(service, model)],
            [plan],
            [clock],
            HORIZON,
            most_s=5.0,
            busy_s=20.0,
            remaining_s=0.9,
            busy=lambda service, _, remaining_s: service.load.busy(remaining_s),
        )

    ask, reused = members(idle, last_s=115.0)
    assert ask == [(idle, model)] and reused == []
    ask, reused = members(busy, last_s=115.0)
    assert ask == [] and reused[0].age_s == 15.0 and reused[0].status == "ok"
    np.testing.assert_allclose(reused[0].forecasts[0].mean_us, 3.0 + np.arange(1.0, HORIZON + 1.0))
    ask, reused = members(busy, last_s=121.0)
    assert ask == [(busy, model)] and reused == []
