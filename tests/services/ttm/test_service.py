"""The ttm service as clients meet it: a real uvicorn process, real TinyTimeMixer code, bundled weights."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from chronotick.synthetic import generate_clock
from chronotick_ttm.settings import BUNDLED_CHECKPOINTS, TtmSettings
from support.servers import serve_in_process

MODELS = ("ttm", "ttm-exog")
HORIZON = 96  # TinyTimeMixer's whole prediction length
LEVELS = [0.025, 0.1, 0.5, 0.9, 0.975]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("ttm") / "service.log"
    with serve_in_process("chronotick_ttm.main:app", log_path=log) as base_url:
        yield base_url


def clock_series(seed: int, length: int = 512, scenario: str = "server_load") -> dict[str, object]:
    clock = generate_clock(scenario, length, seed=seed)
    offsets = [None if np.isnan(v) else float(v) for v in clock.observed_offset_us]
    return {"offsets_us": offsets, "interval_s": 1.0, "id": f"clock-{seed}"}


def with_covariates(seed: int, horizon: int, future_load: float | None = None, length: int = 512) -> dict[str, object]:
    clock = generate_clock("server_load", length, seed=seed)
    load: dict[str, object] = {"past": clock.covariates["cpu_load"].tolist()}
    if future_load is not None:
        load["future"] = [future_load] * horizon
    return {
        **clock_series(seed, length),
        "covariates": {"cpu_load": load, "temperature_c": {"past": clock.covariates["temperature_c"].tolist()}},
    }


def predict(base_url: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{base_url}/predict", json=body, timeout=60.0)


def test_info_names_every_model_and_the_real_library_versions(service: str) -> None:
    info = httpx.get(f"{service}/info").json()
    assert [m["name"] for m in info["models"]] == list(MODELS)
    assert info["default_model"] == "ttm"
    versions = info["versions"]
    assert versions["granite-tsfm"] == "0.3.11"
    assert versions["torch"].startswith("2.13.0")
    major, minor = (int(part) for part in versions["transformers"].split(".")[:2])
    assert (4, 57) <= (major, minor) < (6, 0)
    covariates = {m["name"]: (m["past_covariates"], m["future_covariates"]) for m in info["models"]}
    assert covariates == {"ttm": (False, False), "ttm-exog": (True, True)}
    assert all(m["library"] == "granite-tsfm" for m in info["models"])
    assert all((m["max_context"], m["max_horizon"]) == (512, HORIZON) for m in info["models"])
    assert all(m["model_version"].startswith("sha256:") for m in info["models"])


@pytest.mark.parametrize("model", MODELS)
def test_each_model_forecasts_every_step_with_ordered_quantiles(service: str, model: str) -> None:
    body = {"series": [clock_series(1), clock_series(2, length=300)], "horizon": HORIZON, "model": model,
            "quantile_levels": LEVELS}
    response = predict(service, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == model and answer["quantile_levels"] == LEVELS
    for series, forecast in zip(body["series"], answer["forecasts"]):
        assert forecast["id"] == series["id"]
        quantiles = np.array(forecast["quantiles_us"])
        assert quantiles.shape == (len(LEVELS), HORIZON)
        assert np.all(np.diff(quantiles, axis=0) > 0)
        assert len(forecast["mean_us"]) == HORIZON and np.all(np.array(forecast["std_us"]) > 0)
        # The spread comes from residuals: it cannot shrink further ahead (up to float rounding).
        std = np.array(forecast["std_us"])
        assert np.all(np.diff(std) >= -1e-9 * std.max())
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


def test_ttm_exog_uses_past_and_future_covariates(service: str) -> None:
    def mean_with(series: dict[str, object]) -> list[float]:
        response = predict(service, {"series": [series], "horizon": 30, "model": "ttm-exog"})
        assert response.status_code == 200, response.text
        return response.json()["forecasts"][0]["mean_us"]

    idle, busy = mean_with(with_covariates(5, 30, 0.0)), mean_with(with_covariates(5, 30, 1.0))
    past_only, without = mean_with(with_covariates(5, 30)), mean_with(clock_series(5))
    assert not np.allclose(idle, busy)
    assert not np.allclose(past_only, without)


def test_ttm_exog_answers_without_covariates_too(service: str) -> None:
    response = predict(service, {"series": [clock_series(6)], "horizon": 20, "model": "ttm-exog"})
    assert response.status_code == 200, response.text


def test_ttm_exog_refuses_a_covariate_it_does_not_know_naming_the_model(service: str) -> None:
    series = {**clock_series(6, length=64), "covariates": {"humidity": {"past": [0.5] * 64}}}
    response = predict(service, {"series": [series], "horizon": 10, "model": "ttm-exog"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert "model 'ttm-exog' does not know covariate 'humidity'" in problem["detail"]
    assert "temperature_c, cpu_load" in problem["detail"]
    assert problem["errors"][0]["field"] == "series.0.covariates.humidity"


def test_univariate_ttm_refuses_covariates_with_a_reason(service: str) -> None:
    series = {**clock_series(6, length=64), "covariates": {"cpu_load": {"past": [0.5] * 64}}}
    response = predict(service, {"series": [series], "horizon": 10, "model": "ttm"})
    assert response.status_code == 422
    assert "model 'ttm' does not use covariates" in response.json()["detail"]


async def _concurrently(base_url: str, bodies: list[dict[str, object]]) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        responses = await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


@pytest.mark.parametrize(("model", "covariates"), [("ttm", False), ("ttm-exog", False), ("ttm-exog", True)])
def test_concurrent_requests_are_batched_and_answer_as_if_alone(service: str, model: str, covariates: bool) -> None:
    # Different lengths too: shorter contexts are padded inside a batch, which must not change them.
    lengths = [200 + 37 * k for k in range(8)]
    series = [
        with_covariates(10 + k, 20, 0.5, length=n) if covariates else clock_series(10 + k, length=n)
        for k, n in enumerate(lengths)
    ]
    bodies = [{"series": [s], "horizon": 20, "model": model} for s in series]
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
    forecast = response.json()["forecasts"][0]
    assert forecast["interval_s"] == 2.0
    assert np.isfinite(forecast["mean_us"]).all()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"series": [{"offsets_us": [1.0, 2.0, 3.0], "interval_s": 1.0}], "horizon": 5}, "series.0.offsets_us"),
        ({"series": [{"offsets_us": [1.0] * 64, "interval_s": 1.0}], "horizon": HORIZON + 1}, "horizon"),
        ({"series": [{"offsets_us": [1.0] * 64, "interval_s": 1.0}], "horizon": 0}, "horizon"),
        ({"series": [{"offsets_us": ["a"] * 64, "interval_s": 1.0}], "horizon": 5}, "series.0.offsets_us.0"),
        ({"series": [{"offsets_us": [1.0] * 8, "interval_s": 1.0}] * 257, "horizon": 5}, "series"),
        ({"series": [{"offsets_us": [1.0] * 8193, "interval_s": 1.0}], "horizon": 5}, "series.0.offsets_us"),
        ({"series": [], "horizon": 5}, "series"),
        ({"series": [{"offsets_us": [None] * 64, "interval_s": 1.0}], "horizon": 5}, "series.0"),
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
    response = predict(service, {"series": [clock_series(7, 64)], "horizon": 5, "model": "ttm-r3"})
    assert response.status_code == 404
    assert "ttm, ttm-exog" in response.json()["detail"]


def test_body_over_two_megabytes_is_413(service: str) -> None:
    response = httpx.post(f"{service}/predict", content=b" " * (2 * 1024 * 1024 + 1),
                          headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_the_worker_survives_bad_input_and_still_forecasts(service: str) -> None:
    for raw in (b"{", b"[]", b'{"series": 3, "horizon": 5}', b"\xff\xfe"):
        assert httpx.post(f"{service}/predict", content=raw, headers={"content-type": "application/json"}).status_code == 422
    # A refusal raised inside the model call (an unknown covariate) must not break the worker either.
    series = {**clock_series(8, 64), "covariates": {"humidity": {"past": [0.5] * 64}}}
    assert predict(service, {"series": [series], "horizon": 5, "model": "ttm-exog"}).status_code == 422
    assert predict(service, {"series": [clock_series(8, 64)], "horizon": 5, "model": "ttm-exog"}).status_code == 200


def test_model_id_setting_points_a_model_at_another_checkpoint(tmp_path: Path) -> None:
    copied = tmp_path / "my-ttm"
    shutil.copytree(TtmSettings().models_dir / BUNDLED_CHECKPOINTS["ttm"], copied)
    env = {"CHRONOTICK_TTM_MODELS": '["ttm"]', "CHRONOTICK_TTM_MODEL_ID": str(copied)}
    with serve_in_process("chronotick_ttm.main:app", env=env) as base_url:
        info = httpx.get(f"{base_url}/info").json()
    assert [(m["name"], m["model_id"]) for m in info["models"]] == [("ttm", str(copied))]
