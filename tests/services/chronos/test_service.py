"""The chronos service as clients meet it: a real uvicorn process, real model code, bundled weights."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from chronotick.synthetic import generate_clock
from chronotick_chronos.settings import BUNDLED_CHECKPOINTS, ChronosSettings
from support.servers import serve_in_process

MODELS = ("chronos-bolt", "chronos-2", "timesfm-2.5")
HORIZON = 60
LEVELS = [0.025, 0.1, 0.5, 0.9, 0.975]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("chronos") / "service.log"
    with serve_in_process("chronotick_chronos.main:app", log_path=log) as base_url:
        yield base_url


def clock_series(seed: int, length: int = 512, scenario: str = "server_load") -> dict[str, object]:
    clock = generate_clock(scenario, length, seed=seed)
    offsets = [None if np.isnan(v) else float(v) for v in clock.observed_offset_us]
    return {"offsets_us": offsets, "interval_s": 1.0, "id": f"clock-{seed}"}


def predict(base_url: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{base_url}/predict", json=body, timeout=60.0)


def test_info_names_every_model_and_the_real_library_versions(service: str) -> None:
    info = httpx.get(f"{service}/info").json()
    assert [m["name"] for m in info["models"]] == list(MODELS)
    assert info["versions"]["chronos-forecasting"] == "2.3.2"
    assert info["versions"]["timesfm"] == "3.0.2"
    assert info["versions"]["transformers"].startswith("5.")
    covariates = {m["name"]: m["past_covariates"] for m in info["models"]}
    assert covariates == {"chronos-bolt": False, "chronos-2": True, "timesfm-2.5": False}
    assert all(m["model_version"].startswith("sha256:") for m in info["models"])


@pytest.mark.parametrize("model", MODELS)
def test_each_model_forecasts_every_step_with_ordered_quantiles(service: str, model: str) -> None:
    body = {"series": [clock_series(1), clock_series(2)], "horizon": HORIZON, "model": model,
            "quantile_levels": LEVELS}
    response = predict(service, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == model and answer["quantile_levels"] == LEVELS
    for series, forecast in zip(body["series"], answer["forecasts"]):
        assert forecast["id"] == series["id"]
        quantiles = np.array(forecast["quantiles_us"])
        assert quantiles.shape == (len(LEVELS), HORIZON)
        assert np.all(np.diff(quantiles, axis=0) >= 0)
        assert len(forecast["mean_us"]) == HORIZON and np.all(np.array(forecast["std_us"]) > 0)
        # A forecast of a disciplined clock starts near where the clock is now.
        last = next(v for v in reversed(series["offsets_us"]) if v is not None)
        assert abs(forecast["mean_us"][0] - last) < 10 * (forecast["std_us"][0] + 1.0)


@pytest.mark.parametrize("model", MODELS)
def test_same_request_same_answer(service: str, model: str) -> None:
    body = {"series": [clock_series(3)], "horizon": 30, "model": model}
    first, second = predict(service, body).json(), predict(service, body).json()
    assert first["forecasts"] == second["forecasts"]


def test_large_absolute_offsets_keep_their_precision(service: str) -> None:
    base = clock_series(4)
    shifted = {**base, "offsets_us": [None if v is None else v + 5e9 for v in base["offsets_us"]]}
    plain = predict(service, {"series": [base], "horizon": 10}).json()["forecasts"][0]["mean_us"]
    far = predict(service, {"series": [shifted], "horizon": 10}).json()["forecasts"][0]["mean_us"]
    np.testing.assert_allclose(np.array(far) - 5e9, plain, atol=0.05)


def test_chronos2_uses_past_and_future_covariates(service: str) -> None:
    clock = generate_clock("server_load", 512, seed=5)
    offsets = [None if np.isnan(v) else float(v) for v in clock.observed_offset_us]

    def with_load(future_load: float) -> list[float]:
        series = {"offsets_us": offsets, "interval_s": 1.0, "covariates": {
            "cpu_load": {"past": clock.covariates["cpu_load"].tolist(), "future": [future_load] * 30},
            "temperature_c": {"past": clock.covariates["temperature_c"].tolist()},
        }}
        response = predict(service, {"series": [series], "horizon": 30, "model": "chronos-2"})
        assert response.status_code == 200, response.text
        return response.json()["forecasts"][0]["mean_us"]

    idle, busy = with_load(0.0), with_load(1.0)
    assert not np.allclose(idle, busy)


@pytest.mark.parametrize("model", ["chronos-bolt", "timesfm-2.5"])
def test_models_without_covariates_refuse_them_with_a_reason(service: str, model: str) -> None:
    series = {**clock_series(6, length=64), "covariates": {"cpu_load": {"past": [0.5] * 64}}}
    response = predict(service, {"series": [series], "horizon": 10, "model": model})
    assert response.status_code == 422
    assert f"model '{model}' does not use covariates" in response.json()["detail"]


async def _concurrently(base_url: str, bodies: list[dict[str, object]]) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        responses = await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


@pytest.mark.parametrize("model", MODELS)
def test_concurrent_requests_are_batched_and_answer_as_if_alone(service: str, model: str) -> None:
    # Different lengths too: shorter contexts are padded inside a batch, which must not change them.
    bodies = [{"series": [clock_series(10 + k, length=200 + 37 * k)], "horizon": 20, "model": model}
              for k in range(8)]
    alone = [predict(service, body).json() for body in bodies]
    together = asyncio.run(_concurrently(service, bodies))
    assert max(answer["batch_series"] for answer in together) > 1
    for a, b in zip(alone, together):
        np.testing.assert_allclose(
            a["forecasts"][0]["quantiles_us"], b["forecasts"][0]["quantiles_us"], rtol=1e-4, atol=1e-3
        )


def test_missing_samples_and_timestamps_are_accepted(service: str) -> None:
    times = [float(t) for t in range(0, 400, 2)]
    offsets = [5.0 + 0.01 * t if i % 7 else None for i, t in enumerate(times)]
    del times[50], offsets[50]  # a sample that never arrived
    body = {"series": [{"offsets_us": offsets, "timestamps_s": times}], "horizon": 15}
    response = predict(service, body)
    assert response.status_code == 200, response.text
    assert response.json()["forecasts"][0]["interval_s"] == 2.0


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
    response = predict(service, {"series": [clock_series(7, 64)], "horizon": 5, "model": "chronos-xl"})
    assert response.status_code == 404


def test_body_over_two_megabytes_is_413(service: str) -> None:
    response = httpx.post(f"{service}/predict", content=b" " * (2 * 1024 * 1024 + 1),
                          headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_the_worker_survives_bad_input_and_still_forecasts(service: str) -> None:
    for raw in (b"{", b"[]", b'{"series": 3, "horizon": 5}', b"\xff\xfe"):
        assert httpx.post(f"{service}/predict", content=raw, headers={"content-type": "application/json"}).status_code == 422
    assert predict(service, {"series": [clock_series(8, 64)], "horizon": 5}).status_code == 200


def test_model_id_setting_points_a_model_at_another_checkpoint(tmp_path: Path) -> None:
    copied = tmp_path / "my-bolt"
    shutil.copytree(ChronosSettings().models_dir / BUNDLED_CHECKPOINTS["chronos-bolt"], copied)
    env = {"CHRONOTICK_CHRONOS_MODELS": '["chronos-bolt"]', "CHRONOTICK_CHRONOS_BOLT_MODEL_ID": str(copied)}
    with serve_in_process("chronotick_chronos.main:app", env=env) as base_url:
        info = httpx.get(f"{base_url}/info").json()
    assert [(m["name"], m["model_id"]) for m in info["models"]] == [("chronos-bolt", str(copied))]
