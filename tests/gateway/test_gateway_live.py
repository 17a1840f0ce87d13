"""The gateway against live processes over real HTTP: the real chronos service (real model code)
and a real backend process that a test makes fail, hang or answer garbage."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from conftest import set_mode

from chronotick.synthetic import generate_clock
from chronotick_gateway.app import create_app
from chronotick_gateway.settings import GatewaySettings
from support.servers import free_port, serve_in_thread, wait_for

CHRONOS_MODELS = {"chronos-bolt", "chronos-2", "timesfm-2.5"}
FLAKY_MODELS = {"line", "line-cov"}
CLASSICAL = {"last-value", "chrony-fit", "kalman"}


def settings_for(api_key: str | None = None, **services: str) -> GatewaySettings:
    return GatewaySettings(
        services=services,
        api_key=api_key,
        breaker_failures=3,
        breaker_reset_s=0.5,
        health_interval_s=0.2,
        retry_initial_s=0.01,
        retry_max_s=0.05,
    )


@pytest.fixture(scope="module")
def gateway(chronos_url: str, flaky_url: str) -> Iterator[str]:
    with serve_in_thread(create_app(settings_for(chronos=chronos_url, flaky=flaky_url))) as url:
        yield url


@pytest.fixture(autouse=True)
def healthy_flaky(flaky_url: str, gateway: str) -> Iterator[None]:
    set_mode(flaky_url, "ok")
    wait_for(lambda: breaker_of(gateway, "flaky") != "open" and ready(gateway, "flaky"), timeout_s=10.0)
    yield
    set_mode(flaky_url, "ok")


def service_status(gateway: str, name: str) -> dict[str, object]:
    return next(s for s in httpx.get(f"{gateway}/models").json()["services"] if s["name"] == name)


def breaker_of(gateway: str, name: str) -> str:
    return str(service_status(gateway, name)["breaker"])


def ready(gateway: str, name: str) -> bool:
    return bool(service_status(gateway, name)["ready"])


def body(horizon: int = 10, **extra: object) -> dict[str, object]:
    clock = generate_clock("server_load", 400, seed=11)
    offsets = [None if np.isnan(v) else float(v) for v in clock.observed_offset_us]
    return {"series": [{"offsets_us": offsets, "interval_s": 1.0, "id": "host-a"}], "horizon": horizon, **extra}


def predict(gateway: str, payload: dict[str, object], **kwargs: object) -> httpx.Response:
    return httpx.post(f"{gateway}/predict", json=payload, timeout=30.0, **kwargs)  # type: ignore[arg-type]


def by_name(answer: dict[str, object]) -> dict[str, dict[str, object]]:
    return {b["name"]: b for b in answer["backends"]}  # type: ignore[index, union-attr]


def test_fuses_every_backend_with_weights_that_sum_to_one(gateway: str) -> None:
    response = predict(gateway, body())
    assert response.status_code == 200, response.text
    answer = response.json()
    backends = by_name(answer)
    assert set(backends) == CHRONOS_MODELS | FLAKY_MODELS | CLASSICAL
    assert all(b["status"] == "ok" for b in backends.values()), answer["reasons"]
    assert answer["degraded"] is False
    weights = np.array([b["weights"][0] for b in backends.values()])
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)
    fused = answer["forecasts"][0]
    assert fused["id"] == "host-a" and len(fused["mean_us"]) == 10
    quantiles = np.array(fused["quantiles_us"])
    assert np.all(np.diff(quantiles, axis=0) > 0)
    assert all(b["calibration_scale"][0] > 0 for b in backends.values())


def test_503s_are_retried_a_bounded_number_of_times_and_the_answer_is_degraded(gateway: str, flaky_url: str) -> None:
    set_mode(flaky_url, "fail")
    answer = predict(gateway, body(backends=["line", "kalman"])).json()
    line = by_name(answer)["line"]
    assert line["status"] == "failed" and "503" in line["reason"]
    assert line["retries"] == 2  # three attempts in all
    assert answer["degraded"] is True and any(r.startswith("line:") for r in answer["reasons"])
    assert by_name(answer)["kalman"]["status"] == "ok"
    metrics = httpx.get(f"{gateway}/metrics").text
    assert 'chronotick_gateway_backend_retries_total{backend="line"}' in metrics


def test_4xx_from_a_backend_is_not_retried_and_does_not_open_the_breaker(gateway: str, flaky_url: str) -> None:
    set_mode(flaky_url, "reject")
    for _ in range(4):
        line = by_name(predict(gateway, body(backends=["line", "kalman"])).json())["line"]
        assert line["status"] == "failed" and line["retries"] == 0
    assert breaker_of(gateway, "flaky") == "closed"


def test_breaker_opens_on_repeated_failures_and_closes_once_the_backend_heals(gateway: str, flaky_url: str) -> None:
    set_mode(flaky_url, "fail")
    for _ in range(3):
        predict(gateway, body(backends=["line", "kalman"]))
    assert breaker_of(gateway, "flaky") == "open"
    skipped = by_name(predict(gateway, body(backends=["line", "kalman"])).json())["line"]
    assert skipped["status"] == "circuit_open"
    set_mode(flaky_url, "ok")
    wait_for(
        lambda: by_name(predict(gateway, body(backends=["line", "kalman"])).json())["line"]["status"] == "ok",
        timeout_s=10.0,
    )
    assert breaker_of(gateway, "flaky") == "closed"
    assert "chronotick_gateway_breaker_state" in httpx.get(f"{gateway}/metrics").text


def test_a_hanging_backend_cannot_hold_the_answer_past_the_deadline(gateway: str, flaky_url: str) -> None:
    set_mode(flaky_url, "hang")
    started = time.monotonic()
    response = predict(gateway, body(deadline_s=0.6))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 0.6 + 0.25, elapsed
    backends = by_name(response.json())
    assert backends["line"]["status"] == "timeout"
    assert backends["chronos-bolt"]["status"] == "ok"


@pytest.mark.parametrize("mode", ["garbage", "nan"])
def test_malformed_or_nan_answers_are_failures_never_poison(gateway: str, flaky_url: str, mode: str) -> None:
    set_mode(flaky_url, mode)
    answer = predict(gateway, body()).json()
    assert by_name(answer)["line"]["status"] == "failed"
    assert "malformed" in by_name(answer)["line"]["reason"]
    assert all(np.isfinite(answer["forecasts"][0]["mean_us"]))
    assert answer["degraded"] is True


def test_a_restarted_backend_rejoins_without_touching_the_gateway(gateway: str, flaky_url: str) -> None:
    set_mode(flaky_url, "down")
    wait_for(lambda: not ready(gateway, "flaky"), timeout_s=10.0)
    gone = by_name(predict(gateway, body()).json())
    assert gone["line"]["status"] == "not_ready"
    set_mode(flaky_url, "ok")
    rejoined_after_s = wait_for(
        lambda: by_name(predict(gateway, body()).json())["line"]["status"] == "ok", timeout_s=10.0
    )
    assert rejoined_after_s < 10.0


def test_with_every_model_backend_down_the_classical_fallback_answers() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with serve_in_thread(create_app(settings_for(chronos=dead))) as gateway:
        response = predict(gateway, body())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["degraded"] is True
    statuses = {b["name"]: b["status"] for b in answer["backends"]}
    assert statuses == {"chronos": "not_ready", "last-value": "ok", "chrony-fit": "ok", "kalman": "ok"}
    assert all(np.isfinite(answer["forecasts"][0]["std_us"]))


def test_api_key_is_required_when_configured(chronos_url: str) -> None:
    with serve_in_thread(create_app(settings_for(api_key="s3cret", chronos=chronos_url))) as gateway:
        missing = predict(gateway, body(backends=["kalman"]))
        wrong = predict(gateway, body(backends=["kalman"]), headers={"X-API-Key": "nope"})
        right = predict(gateway, body(backends=["kalman"]), headers={"X-API-Key": "s3cret"})
        schema = httpx.get(f"{gateway}/openapi.json").json()
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert right.status_code == 200
    assert schema["paths"]["/predict"]["post"]["security"] == [{"APIKeyHeader": []}]


def test_without_a_key_the_schema_asks_for_no_authentication(gateway: str) -> None:
    schema = httpx.get(f"{gateway}/openapi.json").json()
    assert "security" not in schema["paths"]["/predict"]["post"]
    assert "securitySchemes" not in schema.get("components", {})


def test_bad_input_is_422_with_the_field(gateway: str) -> None:
    for payload, field in [
        ({"series": [{"offsets_us": [1.0], "interval_s": 1.0}], "horizon": 0}, "horizon"),
        (body(backends=["no-such-model"]), "backends"),
        (body(deadline_s=-1), "deadline_s"),
        ({"series": [{"offsets_us": [1, 2, 3], "timestamps_s": [0, 1, 7.5]}], "horizon": 2}, "series.0.timestamps_s"),
        ({"series": [{"offsets_us": [None] * 30 + [1.0] * 5, "interval_s": 1.0}], "horizon": 2}, "series.0.offsets_us"),
    ]:
        response = predict(gateway, payload)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"].startswith(field)


def test_configured_input_limits_are_422_naming_each_field() -> None:
    limited = GatewaySettings(services={}, max_series=1, max_points_per_series=300, max_horizon=30)
    two_series = {"series": body()["series"] * 2, "horizon": 31}
    with serve_in_thread(create_app(limited)) as gateway:
        refused = predict(gateway, two_series)
        short = {"series": [{"offsets_us": body()["series"][0]["offsets_us"][-300:], "interval_s": 1.0}], "horizon": 30}
        within = predict(gateway, short)
    assert refused.status_code == 422, refused.text
    reasons = {error["field"]: error["reason"] for error in refused.json()["errors"]}
    assert set(reasons) == {"series", "horizon", "series.0.offsets_us", "series.1.offsets_us"}
    assert "at most 1" in reasons["series"] and "at most 30" in reasons["horizon"]
    assert "400 samples; at most 300" in reasons["series.0.offsets_us"]
    assert within.status_code == 200, within.text


def test_a_deadline_within_the_fusion_margin_is_422_not_a_certain_timeout() -> None:
    with serve_in_thread(create_app(GatewaySettings(services={}, fusion_margin_s=0.5))) as gateway:
        refused = predict(gateway, body(deadline_s=0.5))
        within = predict(gateway, body(deadline_s=1.5))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {"field": "deadline_s", "reason": "0.5 s leaves the members no time: this gateway keeps 0.5 s of it for fusion"}
    ]
    assert within.status_code == 200, within.text


def test_oversized_body_is_413(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/predict", content=b" " * (2 * 1024 * 1024 + 10), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_models_lists_backends_versions_and_breakers(gateway: str) -> None:
    fleet = httpx.get(f"{gateway}/models").json()
    chronos = next(s for s in fleet["services"] if s["name"] == "chronos")
    assert chronos["ready"] and chronos["breaker"] == "closed"
    assert {m["name"] for m in chronos["info"]["models"]} == CHRONOS_MODELS
    assert chronos["info"]["versions"]["chronos-forecasting"] == "2.3.2"
    assert set(fleet["classical"]) == CLASSICAL
    assert fleet["per_clock"] == ["online-ar"]


def test_docs_pages_are_served_with_their_own_assets(gateway: str) -> None:
    docs = httpx.get(f"{gateway}/docs").text
    redoc = httpx.get(f"{gateway}/redoc").text
    assert "/static-offline-docs/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert "/static-offline-docs/redoc.standalone.js" in redoc
    asset = httpx.get(f"{gateway}/static-offline-docs/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000


def test_a_sparse_context_gets_an_answer_even_where_some_members_have_no_spread(gateway: str) -> None:
    offsets = [None] * 30 + [1.0, None, 1.5, None, 2.0, None, 2.2, None, 2.9, 3.1, 3.0, 3.3, 3.5]
    response = predict(gateway, {"series": [{"offsets_us": offsets, "interval_s": 1.0}], "horizon": 5})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert all(np.isfinite(answer["forecasts"][0]["std_us"]))
    assert len(answer["degrees_of_freedom"][0]) == 5 and min(answer["degrees_of_freedom"][0]) > 0


def test_a_covariate_a_model_was_not_trained_with_is_not_sent_to_it_and_costs_no_member(
    chronos_url: str, ttm_url: str
) -> None:
    # What the agent sends on a machine without temperature sensors: cpu_load and memory_used_fraction.
    horizon = 10
    clock = generate_clock("server_load", 400, seed=11)
    series = {
        **body(horizon)["series"][0],  # type: ignore[index]
        "covariates": {
            "cpu_load": {"past": clock.covariates["cpu_load"].tolist(), "future": [0.5] * horizon},
            "memory_used_fraction": {"past": [0.4] * 400},
        },
    }
    direct = predict(ttm_url, {"series": [series], "horizon": horizon, "model": "ttm-exog"})
    assert direct.status_code == 422  # called directly, ttm-exog still refuses what it does not know
    assert direct.json()["errors"][0]["field"] == "series.0.covariates.memory_used_fraction"
    with serve_in_thread(create_app(settings_for(chronos=chronos_url, ttm=ttm_url))) as gateway:
        # A generous deadline: every model on two shared cores; the point is covariates, not load.
        response = predict(gateway, {"series": [series], "horizon": horizon, "deadline_s": 20.0})
    assert response.status_code == 200, response.text
    answer = response.json()
    backends = by_name(answer)
    assert set(backends) == CHRONOS_MODELS | {"ttm", "ttm-exog"} | CLASSICAL
    assert all(b["status"] == "ok" for b in backends.values()), answer["reasons"]
    assert answer["degraded"] is False
    used = {name: b["covariates_used"] for name, b in backends.items()}
    assert used == {
        "ttm-exog": ["cpu_load"],
        "chronos-2": ["cpu_load", "memory_used_fraction"],
        **{name: [] for name in CHRONOS_MODELS - {"chronos-2"} | {"ttm"} | CLASSICAL},
    }
