"""Input cleaning in the gateway over real HTTP: spikes are reported and become missing samples
for every member (classical members only, so the test needs no model service)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from chronotick_gateway.app import create_app
from chronotick_gateway.settings import GatewaySettings
from support.servers import serve_in_thread

SPIKE_AT = 300


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with serve_in_thread(create_app(GatewaySettings(services={}))) as url:
        yield url


def offsets(spike: bool) -> list[float | None]:
    rng = np.random.default_rng(5)
    values = 12.0 + 0.8 * np.arange(400) + rng.uniform(-1.0, 1.0, 400)
    if spike:
        values[SPIKE_AT] += 900.0  # a delayed reply
    return values.tolist()


def predict(gateway: str, series: list[float | None], **extra: object) -> dict[str, object]:
    body = {"series": [{"offsets_us": series, "interval_s": 1.0}], "horizon": 10, "backends": ["kalman"], **extra}
    response = httpx.post(f"{gateway}/predict", json=body, timeout=30.0)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_spike_is_reported_and_forecast_as_a_missing_sample(gateway: str) -> None:
    cleaned = predict(gateway, offsets(spike=True))
    assert cleaned["flagged_outliers"] == [[SPIKE_AT]]
    missing = offsets(spike=True)
    missing[SPIKE_AT] = None
    by_hand = predict(gateway, missing, clean=False)
    assert by_hand["flagged_outliers"] == [[]]
    assert cleaned["forecasts"] == by_hand["forecasts"]


def test_clean_false_leaves_the_spike_in(gateway: str) -> None:
    raw = predict(gateway, offsets(spike=True), clean=False)
    assert raw["flagged_outliers"] == [[]]
    cleaned = predict(gateway, offsets(spike=True))
    # The spike is in the members' backtests and so in the calibrated spread.
    assert raw["forecasts"][0]["std_us"] != cleaned["forecasts"][0]["std_us"]


def test_a_clean_series_has_nothing_flagged(gateway: str) -> None:
    assert predict(gateway, offsets(spike=False))["flagged_outliers"] == [[]]
