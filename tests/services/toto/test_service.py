"""The toto service as clients meet it: a real uvicorn process, real model code, bundled weights.

The shared promises are in support.service_contract; this file adds what only toto promises."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from chronotick_toto.settings import BUNDLED_CHECKPOINTS, TotoSettings
from chronotick_toto.toto_model import MAX_HORIZON
from support.service_contract import BatchCase, ServiceContract, clock_series, covariate_series, mean_of, predict

PATCH = 64  # steps Toto decodes at once: known future covariates reach the steps after the first patch


class TestTotoService(ServiceContract):
    FAMILY = "toto"
    APP = "chronotick_toto.main:app"
    MODELS = ("toto",)
    COVARIATES = {"toto": (True, True)}
    MAX_HORIZON = MAX_HORIZON
    # One thread: the model is small, and on a shared 2-core machine a second thread waits at barriers.
    SERVICE_ENV = {"CHRONOTICK_TORCH_THREADS": "1"}
    SECOND_SERIES = {"scenario": "thermal_cycle"}
    BATCH_REQUESTS = 6
    EXTRA_BAD_INPUTS = (
        pytest.param(
            {
                "series": [
                    {
                        "offsets_us": [1.0] * 64,
                        "interval_s": 1.0,
                        "covariates": {"cpu_load": {"past": [0.5] * 64, "future": [0.5] * 4}},
                    }
                ],
                "horizon": 5,
            },
            "body",
            id="future-covariate-shorter-than-horizon",
        ),
    )
    CHECKPOINT_MODEL = "toto"
    SETTINGS = TotoSettings
    BUNDLED_CHECKPOINTS = BUNDLED_CHECKPOINTS
    MODEL_ID_VAR = "CHRONOTICK_TOTO_MODEL_ID"

    def batch_cases(self) -> list[BatchCase]:
        return [
            BatchCase("toto", horizon=20, id="one-patch"),
            BatchCase("toto", covariates=True, horizon=20, id="covariates"),
            BatchCase("toto", horizon=PATCH + 36, id="autoregressive"),
        ]

    def batch_series(self, k: int, case: BatchCase) -> dict[str, object]:
        # Every context is padded to the model's full context, alone or batched; each series draws
        # its samples under its own fixed seed, so only float rounding of the batched matrix
        # products separates the two.
        if case.covariates:
            return covariate_series(20 + k, case.horizon, 0.5)
        return super().batch_series(k, case)

    def test_info_reports_the_model_limits_and_the_real_library_versions(self, service: str) -> None:
        info = httpx.get(f"{service}/info").json()
        (model,) = info["models"]
        assert model["library"] == "toto-ts"
        assert (model["max_context"], model["max_horizon"]) == (512, MAX_HORIZON)
        assert model["one_pass_horizon"] == 64  # one patch: longer horizons decode patch after patch
        versions = info["versions"]
        assert versions["toto-ts"] == "0.2.0"
        assert versions["torch"].startswith("2.13.0")
        assert versions["gluonts"] == "0.16.2"
        # toto-ts declares transformers but never imports it: this environment does not carry it.
        assert versions["transformers"] == "not installed"

    def test_horizons_beyond_one_patch_decode_autoregressively(self, service: str) -> None:
        response = predict(service, {"series": [clock_series(3)], "horizon": MAX_HORIZON})
        assert response.status_code == 200, response.text
        forecast = response.json()["forecasts"][0]
        assert len(forecast["mean_us"]) == MAX_HORIZON and np.all(np.isfinite(forecast["quantiles_us"]))

    def test_past_covariates_change_the_forecast(self, service: str) -> None:
        idle = covariate_series(6, 30, past_load=np.zeros(512))
        busy = covariate_series(6, 30, past_load=np.r_[np.zeros(448), np.ones(64)])
        plain = {k: v for k, v in idle.items() if k != "covariates"}
        means = [mean_of(service, {"series": [s], "horizon": 30}) for s in (idle, busy, plain)]
        assert not np.allclose(means[0], means[1])
        assert not np.allclose(means[0], means[2])

    def test_known_future_covariates_steer_the_steps_after_the_first_patch(self, service: str) -> None:
        # Toto decodes one 64-step patch at a time and feeds known future values in after each patch:
        # they cannot move the first patch, and they do move the ones after it.
        horizon = 2 * PATCH
        idle = mean_of(service, {"series": [covariate_series(7, horizon, 0.0)], "horizon": horizon})
        busy = mean_of(service, {"series": [covariate_series(7, horizon, 1.0)], "horizon": horizon})
        np.testing.assert_allclose(idle[:PATCH], busy[:PATCH])
        assert not np.allclose(idle[PATCH:], busy[PATCH:])

    def test_series_of_one_request_must_carry_the_same_covariates(self, service: str) -> None:
        body = {"series": [covariate_series(8, 10), clock_series(9)], "horizon": 10}
        response = predict(service, body)
        assert response.status_code == 422
        assert "same covariates" in response.json()["detail"]
