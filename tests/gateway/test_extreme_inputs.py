"""No number a client can send reaches a 5xx at the gateway (issue 15): the live gateway, over real
HTTP, with a real model service (chronos-bolt), a kit service (the line family) and the classical
members, on requests drawn from the contract's numeric extremes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import set_mode
from hypothesis import HealthCheck, given, settings

from chronotick_gateway.app import create_app
from chronotick_gateway.settings import GatewaySettings
from support.extreme_inputs import assert_refused_or_finite, extreme_requests
from support.servers import serve_in_thread

# One fast model of each kind, so that every example stays well under a second on two cores.
BACKENDS = ["chronos-bolt", "line", "line-cov", "last-value", "chrony-fit", "kalman"]
LINE_MAX_HORIZON = 16


@pytest.fixture(scope="module")
def gateway(chronos_url: str, flaky_url: str) -> Iterator[str]:
    set_mode(flaky_url, "ok")
    fleet = GatewaySettings(services={"chronos": chronos_url, "flaky": flaky_url}, health_interval_s=0.2)
    with serve_in_thread(create_app(fleet)) as url:
        yield url


@pytest.mark.parametrize(
    ("series", "field"),
    [
        ({"offsets_us": [1e300, -1e300] * 20, "interval_s": 1.0}, "series.0.offsets_us.0"),
        ({"offsets_us": [float(k) for k in range(40)], "interval_s": 1e-300}, "series.0.interval_s"),
        (
            {"offsets_us": [float(k) for k in range(40)], "timestamps_s": [1e300 + k * 1e286 for k in range(40)]},
            "series.0.timestamps_s.0",
        ),
    ],
    ids=["offsets-1e300", "interval-1e-300", "timestamps-1e300"],
)
def test_the_reported_overflows_are_422_naming_the_field(gateway: str, series: dict[str, object], field: str) -> None:
    response = httpx.post(f"{gateway}/predict", json={"series": [series], "horizon": 5}, timeout=30.0)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


def test_extreme_numbers_get_a_finite_forecast_or_a_422_naming_the_field(gateway: str) -> None:
    @given(body=extreme_requests(max_horizon=LINE_MAX_HORIZON, covariates=True, deadline=True))
    @settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def answers(body: dict[str, object]) -> None:
        body = {**body, "backends": BACKENDS}
        assert_refused_or_finite(httpx.post(f"{gateway}/predict", json=body, timeout=30.0), body)

    answers()
