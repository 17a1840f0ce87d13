"""The timemoe service as clients meet it: a real uvicorn process, real model code, bundled weights."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from chronotick.synthetic import generate_clock
from chronotick_timemoe.settings import BUNDLED_CHECKPOINTS, TimeMoeSettings
from support.servers import serve_in_process

HORIZON = 60
LEVELS = [0.025, 0.1, 0.5, 0.9, 0.975]
# The service must never reach for the network: the hub is switched off and any proxied request would fail.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("timemoe") / "service.log"
    with serve_in_process("chronotick_timemoe.main:app", env=OFFLINE, log_path=log) as base_url:
        yield base_url


def clock_series(seed: int, length: int = 512, scenario: str = "server_load") -> dict[str, object]:
    clock = generate_clock(scenario, length, seed=seed)
    offsets = [None if np.isnan(v) else float(v) for v in clock.observed_offset_us]
    return {"offsets_us": offsets, "interval_s": 1.0, "id": f"clock-{seed}"}


def predict(base_url: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{base_url}/predict", json=body, timeout=60.0)


def test_info_names_the_model_and_the_real_library_versions(service: str) -> None:
    info = httpx.get(f"{service}/info").json()
    assert info["default_model"] == "timemoe"
    (model,) = info["models"]
    assert model["name"] == "timemoe" and model["library"] == "sktime.libs.timemoe"
    assert model["model_version"].startswith("sha256:")
    assert (model["max_context"], model["max_horizon"]) == (512, 64)
    assert model["past_covariates"] is False and model["future_covariates"] is False
    assert info["versions"]["sktime"] == "1.2.0"
    assert info["versions"]["transformers"] == "4.40.1"
    assert info["versions"]["torch"].startswith("2.13.0")


def test_forecasts_every_step_with_ordered_quantiles(service: str) -> None:
    body = {"series": [clock_series(1), clock_series(2, scenario="free_running")], "horizon": HORIZON,
            "quantile_levels": LEVELS}
    response = predict(service, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "timemoe" and answer["quantile_levels"] == LEVELS
    for series, forecast in zip(body["series"], answer["forecasts"]):
        assert forecast["id"] == series["id"]
        quantiles = np.array(forecast["quantiles_us"])
        assert quantiles.shape == (len(LEVELS), HORIZON)
        assert np.all(np.diff(quantiles, axis=0) > 0)
        assert len(forecast["mean_us"]) == HORIZON and np.all(np.array(forecast["std_us"]) > 0)
        np.testing.assert_allclose(quantiles[2], forecast["mean_us"], atol=1e-6)  # a normal spread around the point
        # A forecast starts near where the clock is now.
        last = next(v for v in reversed(series["offsets_us"]) if v is not None)
        assert abs(forecast["mean_us"][0] - last) < 10 * (forecast["std_us"][0] + 1.0)


def test_same_request_same_answer(service: str) -> None:
    body = {"series": [clock_series(3)], "horizon": 30}
    first, second = predict(service, body).json(), predict(service, body).json()
    assert first["forecasts"] == second["forecasts"]


def test_large_absolute_offsets_keep_their_precision(service: str) -> None:
    base = clock_series(4)
    shifted = {**base, "offsets_us": [None if v is None else v + 5e9 for v in base["offsets_us"]]}
    plain = predict(service, {"series": [base], "horizon": 10}).json()["forecasts"][0]["mean_us"]
    far = predict(service, {"series": [shifted], "horizon": 10}).json()["forecasts"][0]["mean_us"]
    np.testing.assert_allclose(np.array(far) - 5e9, plain, atol=0.05)


def test_covariates_are_refused_with_a_reason_naming_the_model(service: str) -> None:
    series = {**clock_series(6, length=64), "covariates": {"cpu_load": {"past": [0.5] * 64}}}
    response = predict(service, {"series": [series], "horizon": 10})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "model 'timemoe' does not use covariates" in response.json()["detail"]


async def _concurrently(base_url: str, bodies: list[dict[str, object]]) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0) as client:
        responses = await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


def test_concurrent_requests_are_batched_and_answer_as_if_alone(service: str) -> None:
    # Different lengths too: shorter contexts are left-padded (masked) inside a batch, which must not change them.
    bodies = [{"series": [clock_series(10 + k, length=200 + 37 * k)], "horizon": 20} for k in range(6)]
    alone = [predict(service, body).json() for body in bodies]
    together = asyncio.run(_concurrently(service, bodies))
    assert max(answer["batch_series"] for answer in together) > 1
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a["forecasts"][0]["mean_us"], b["forecasts"][0]["mean_us"], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(
            a["forecasts"][0]["quantiles_us"], b["forecasts"][0]["quantiles_us"], rtol=1e-4, atol=1e-3
        )


def test_missing_samples_short_histories_and_timestamps_are_accepted(service: str) -> None:
    times = [float(t) for t in range(0, 400, 2)]
    offsets = [5.0 + 0.01 * t if i % 7 else None for i, t in enumerate(times)]
    del times[50], offsets[50]  # a sample that never arrived
    offsets[:120] = [None] * 120  # the clock only started reporting recently
    body = {"series": [{"offsets_us": offsets, "timestamps_s": times}], "horizon": 15}
    response = predict(service, body)
    assert response.status_code == 200, response.text
    forecast = response.json()["forecasts"][0]
    assert forecast["interval_s"] == 2.0 and np.all(np.isfinite(forecast["mean_us"]))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"series": [{"offsets_us": [1.0, 2.0, 3.0], "interval_s": 1.0}], "horizon": 5}, "series.0.offsets_us"),
        ({"series": [{"offsets_us": [1.0] * 64, "interval_s": 1.0}], "horizon": 65}, "horizon"),
        ({"series": [{"offsets_us": [1.0] * 64, "interval_s": 1.0}], "horizon": -1}, "horizon"),
        ({"series": [{"offsets_us": ["a"] * 64, "interval_s": 1.0}], "horizon": 5}, "series.0.offsets_us.0"),
        ({"series": [{"offsets_us": [1.0] * 8, "interval_s": 1.0}] * 257, "horizon": 5}, "series"),
        ({"series": [{"offsets_us": [1.0] * 8193, "interval_s": 1.0}], "horizon": 5}, "series.0.offsets_us"),
        ({"series": [], "horizon": 5}, "series"),
    ],
)
def test_bad_input_is_422_naming_the_field(service: str, body: dict[str, object], field: str) -> None:
    response = predict(service, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert any(e["field"].startswith(field) for e in response.json()["errors"])


def test_nan_in_the_body_is_422(service: str) -> None:
    raw = b'{"series": [{"offsets_us": [' + b"1.0," * 20 + b'NaN], "interval_s": 1.0}], "horizon": 5}'
    response = httpx.post(f"{service}/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_unknown_model_is_404(service: str) -> None:
    response = predict(service, {"series": [clock_series(7, 64)], "horizon": 5, "model": "timemoe-xl"})
    assert response.status_code == 404


def test_body_over_two_megabytes_is_413(service: str) -> None:
    response = httpx.post(f"{service}/predict", content=b" " * (2 * 1024 * 1024 + 1),
                          headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_the_worker_survives_bad_input_and_still_forecasts(service: str) -> None:
    for raw in (b"{", b"[]", b'{"series": 3, "horizon": 5}', b"\xff\xfe"):
        assert httpx.post(f"{service}/predict", content=raw, headers={"content-type": "application/json"}).status_code == 422
    assert predict(service, {"series": [clock_series(8, 64)], "horizon": 5}).status_code == 200


def test_model_id_setting_points_the_model_at_another_checkpoint(tmp_path: Path) -> None:
    copied = tmp_path / "my-timemoe"
    shutil.copytree(TimeMoeSettings().models_dir / BUNDLED_CHECKPOINTS["timemoe"], copied)
    env = {**OFFLINE, "CHRONOTICK_TIMEMOE_MODEL_ID": str(copied)}
    with serve_in_process("chronotick_timemoe.main:app", env=env) as base_url:
        info = httpx.get(f"{base_url}/info").json()
    assert [(m["name"], m["model_id"]) for m in info["models"]] == [("timemoe", str(copied))]
