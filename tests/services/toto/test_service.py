"""The toto service as clients meet it: a real uvicorn process, real model code, bundled weights."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from chronotick.synthetic import generate_clock
from chronotick_toto.settings import BUNDLED_CHECKPOINTS, TotoSettings
from chronotick_toto.toto_model import MAX_HORIZON
from support.servers import serve_in_process

HORIZON = 60
LEVELS = [0.025, 0.1, 0.5, 0.9, 0.975]
PATCH = 64  # steps Toto decodes at once: known future covariates reach the steps after the first patch
# One thread: the model is small, and on a shared 2-core machine a second thread waits at barriers.
SERVICE_ENV = {"CHRONOTICK_TORCH_THREADS": "1"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("toto") / "service.log"
    with serve_in_process("chronotick_toto.main:app", env=SERVICE_ENV, log_path=log) as base_url:
        yield base_url


def clock_series(seed: int, length: int = 512, scenario: str = "server_load") -> dict[str, object]:
    clock = generate_clock(scenario, length, seed=seed)
    offsets = [None if np.isnan(v) else float(v) for v in clock.observed_offset_us]
    return {"offsets_us": offsets, "interval_s": 1.0, "id": f"clock-{seed}"}


def with_covariates(seed: int, horizon: int, future_load: float | None, past_load: np.ndarray | None = None):
    clock = generate_clock("server_load", 512, seed=seed)
    load = clock.covariates["cpu_load"] if past_load is None else past_load
    cpu_load: dict[str, object] = {"past": load.tolist()}
    if future_load is not None:
        cpu_load["future"] = [future_load] * horizon
    return {
        "offsets_us": [None if np.isnan(v) else float(v) for v in clock.observed_offset_us],
        "interval_s": 1.0,
        "covariates": {"cpu_load": cpu_load, "temperature_c": {"past": clock.covariates["temperature_c"].tolist()}},
    }


def predict(base_url: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{base_url}/predict", json=body, timeout=120.0)


def mean_of(base_url: str, body: dict[str, object]) -> np.ndarray:
    response = predict(base_url, body)
    assert response.status_code == 200, response.text
    return np.array(response.json()["forecasts"][0]["mean_us"])


def test_info_names_the_model_and_the_real_library_versions(service: str) -> None:
    info = httpx.get(f"{service}/info").json()
    assert info["family"] == "toto" and info["default_model"] == "toto"
    (model,) = info["models"]
    assert model["library"] == "toto-ts" and model["model_version"].startswith("sha256:")
    assert model["past_covariates"] and model["future_covariates"]
    assert (model["max_context"], model["max_horizon"]) == (512, MAX_HORIZON)
    versions = info["versions"]
    assert versions["toto-ts"] == "0.2.0"
    assert versions["torch"].startswith("2.13.0")
    assert versions["gluonts"] == "0.16.2"
    # toto-ts declares transformers but never imports it: this environment does not carry it.
    assert versions["transformers"] == "not installed"


def test_forecasts_every_step_with_ordered_quantiles(service: str) -> None:
    body = {"series": [clock_series(1), clock_series(2, scenario="thermal_cycle")], "horizon": HORIZON,
            "quantile_levels": LEVELS}
    response = predict(service, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "toto" and answer["quantile_levels"] == LEVELS
    for series, forecast in zip(body["series"], answer["forecasts"]):
        assert forecast["id"] == series["id"]
        quantiles = np.array(forecast["quantiles_us"])
        assert quantiles.shape == (len(LEVELS), HORIZON)
        assert np.all(np.diff(quantiles, axis=0) >= 0)
        assert len(forecast["mean_us"]) == HORIZON and np.all(np.array(forecast["std_us"]) > 0)
        # A forecast of a disciplined clock starts near where the clock is now.
        last = next(v for v in reversed(series["offsets_us"]) if v is not None)
        assert abs(forecast["mean_us"][0] - last) < 10 * (forecast["std_us"][0] + 1.0)


def test_horizons_beyond_one_patch_decode_autoregressively(service: str) -> None:
    response = predict(service, {"series": [clock_series(3)], "horizon": MAX_HORIZON})
    assert response.status_code == 200, response.text
    forecast = response.json()["forecasts"][0]
    assert len(forecast["mean_us"]) == MAX_HORIZON and np.all(np.isfinite(forecast["quantiles_us"]))


def test_same_request_same_answer(service: str) -> None:
    body = {"series": [clock_series(4)], "horizon": 30}
    first, second = predict(service, body).json(), predict(service, body).json()
    assert first["forecasts"] == second["forecasts"]


def test_large_absolute_offsets_keep_their_precision(service: str) -> None:
    base = clock_series(5)
    shifted = {**base, "offsets_us": [None if v is None else v + 5e9 for v in base["offsets_us"]]}
    plain = mean_of(service, {"series": [base], "horizon": 10})
    far = mean_of(service, {"series": [shifted], "horizon": 10})
    np.testing.assert_allclose(far - 5e9, plain, atol=0.05)


def test_past_covariates_change_the_forecast(service: str) -> None:
    idle = with_covariates(6, 30, None, past_load=np.zeros(512))
    busy = with_covariates(6, 30, None, past_load=np.r_[np.zeros(448), np.ones(64)])
    plain = {k: v for k, v in idle.items() if k != "covariates"}
    means = [mean_of(service, {"series": [s], "horizon": 30}) for s in (idle, busy, plain)]
    assert not np.allclose(means[0], means[1])
    assert not np.allclose(means[0], means[2])


def test_known_future_covariates_steer_the_steps_after_the_first_patch(service: str) -> None:
    # Toto decodes one 64-step patch at a time and feeds known future values in after each patch:
    # they cannot move the first patch, and they do move the ones after it.
    horizon = 2 * PATCH
    idle = mean_of(service, {"series": [with_covariates(7, horizon, 0.0)], "horizon": horizon})
    busy = mean_of(service, {"series": [with_covariates(7, horizon, 1.0)], "horizon": horizon})
    np.testing.assert_allclose(idle[:PATCH], busy[:PATCH])
    assert not np.allclose(idle[PATCH:], busy[PATCH:])


def test_series_of_one_request_must_carry_the_same_covariates(service: str) -> None:
    body = {"series": [with_covariates(8, 10, None), clock_series(9)], "horizon": 10}
    response = predict(service, body)
    assert response.status_code == 422
    assert "same covariates" in response.json()["detail"]


async def _concurrently(base_url: str, bodies: list[dict[str, object]]) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0) as client:
        responses = await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


@pytest.mark.parametrize(
    ("covariates", "horizon"),
    [(False, 20), (True, 20), (False, PATCH + 36)],
    ids=["one-patch", "covariates", "autoregressive"],
)
def test_concurrent_requests_are_batched_and_answer_as_if_alone(service: str, covariates: bool, horizon: int) -> None:
    # Different lengths too: every context is padded to the model's full context, alone or batched.
    def body(k: int) -> dict[str, object]:
        if covariates:
            return {"series": [with_covariates(20 + k, horizon, 0.5)], "horizon": horizon}
        return {"series": [clock_series(10 + k, length=200 + 37 * k)], "horizon": horizon}

    bodies = [body(k) for k in range(6)]
    alone = [predict(service, b).json() for b in bodies]
    together = asyncio.run(_concurrently(service, bodies))
    assert max(answer["batch_series"] for answer in together) > 1
    for a, b in zip(alone, together):
        # Each series draws its samples under its own fixed seed, so only float rounding of the
        # batched matrix products separates the two.
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
    forecast = response.json()["forecasts"][0]
    assert forecast["interval_s"] == 2.0 and np.all(np.isfinite(forecast["mean_us"]))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"series": [{"offsets_us": [1.0, 2.0, 3.0], "interval_s": 1.0}], "horizon": 5}, "series.0.offsets_us"),
        ({"series": [{"offsets_us": [1.0] * 64, "interval_s": 1.0}], "horizon": MAX_HORIZON + 1}, "horizon"),
        ({"series": [{"offsets_us": [1.0] * 64, "interval_s": 1.0}], "horizon": -1}, "horizon"),
        ({"series": [{"offsets_us": ["a"] * 64, "interval_s": 1.0}], "horizon": 5}, "series.0.offsets_us.0"),
        ({"series": [{"offsets_us": [1.0] * 8, "interval_s": 1.0}] * 257, "horizon": 5}, "series"),
        ({"series": [{"offsets_us": [1.0] * 8193, "interval_s": 1.0}], "horizon": 5}, "series.0.offsets_us"),
        ({"series": [], "horizon": 5}, "series"),
        ({"series": [{"offsets_us": [1.0] * 64, "interval_s": 1.0,
                      "covariates": {"cpu_load": {"past": [0.5] * 64, "future": [0.5] * 4}}}], "horizon": 5},
         "body"),
    ],
)
def test_bad_input_is_422_naming_the_field(service: str, body: dict[str, object], field: str) -> None:
    response = predict(service, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert any(e["field"].startswith(field) for e in response.json()["errors"])


def test_horizon_beyond_the_model_names_it(service: str) -> None:
    body = {"series": [{"offsets_us": [1.0] * 64, "interval_s": 1.0}], "horizon": MAX_HORIZON + 1}
    assert "model 'toto'" in predict(service, body).json()["errors"][0]["reason"]


def test_nan_in_the_body_is_422(service: str) -> None:
    raw = b'{"series": [{"offsets_us": [' + b"1.0," * 20 + b'NaN], "interval_s": 1.0}], "horizon": 5}'
    response = httpx.post(f"{service}/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_unknown_model_is_404(service: str) -> None:
    response = predict(service, {"series": [clock_series(7, 64)], "horizon": 5, "model": "toto-xl"})
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
    copied = tmp_path / "my-toto"
    shutil.copytree(TotoSettings().models_dir / BUNDLED_CHECKPOINTS["toto"], copied)
    env = {**SERVICE_ENV, "CHRONOTICK_TOTO_MODEL_ID": str(copied)}
    with serve_in_process("chronotick_toto.main:app", env=env) as base_url:
        info = httpx.get(f"{base_url}/info").json()
    assert [(m["name"], m["model_id"]) for m in info["models"]] == [("toto", str(copied))]
