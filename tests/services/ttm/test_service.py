"""The ttm service as clients meet it: a real uvicorn process, real TinyTimeMixer code, bundled weights.

The shared promises are in support.service_contract; this file adds what only ttm promises."""

from __future__ import annotations

import httpx
import numpy as np

from chronotick_ttm.settings import BUNDLED_CHECKPOINTS, TtmSettings
from support.service_contract import BatchCase, ServiceContract, clock_series, covariate_series, mean_of, predict

HORIZON = 96  # TinyTimeMixer's whole prediction length


class TestTtmService(ServiceContract):
    FAMILY = "ttm"
    APP = "chronotick_ttm.main:app"
    MODELS = ("ttm", "ttm-exog")
    COVARIATES = {"ttm": (False, False), "ttm-exog": (True, True)}
    MAX_HORIZON = HORIZON
    FORECAST_HORIZON = HORIZON
    SECOND_SERIES = {"length": 300}
    STRICTLY_ORDERED_QUANTILES = True  # a parametric spread from residuals
    CHECKPOINT_MODEL = "ttm"
    SETTINGS = TtmSettings
    BUNDLED_CHECKPOINTS = BUNDLED_CHECKPOINTS
    MODEL_ID_VAR = "CHRONOTICK_TTM_MODEL_ID"
    CHECKPOINT_ENV = {"CHRONOTICK_TTM_MODELS": '["ttm"]'}

    def check_forecast(self, series: dict[str, object], forecast: dict[str, object]) -> None:
        # The spread comes from residuals: it cannot shrink further ahead (up to float rounding).
        std = np.array(forecast["std_us"])
        assert np.all(np.diff(std) >= -1e-9 * std.max())

    def batch_cases(self) -> list[BatchCase]:
        return [
            BatchCase("ttm"),
            BatchCase("ttm-exog"),
            BatchCase("ttm-exog", covariates=True, id="ttm-exog-covariates"),
        ]

    def test_info_reports_the_model_limits_and_the_real_library_versions(self, service: str) -> None:
        info = httpx.get(f"{service}/info").json()
        versions = info["versions"]
        assert versions["granite-tsfm"] == "0.3.11"
        assert versions["torch"].startswith("2.13.0")
        major, minor = (int(part) for part in versions["transformers"].split(".")[:2])
        assert (4, 57) <= (major, minor) < (6, 0)
        assert all(m["library"] == "granite-tsfm" for m in info["models"])
        assert all((m["max_context"], m["max_horizon"]) == (512, HORIZON) for m in info["models"])

    def test_ttm_exog_uses_past_and_future_covariates(self, service: str) -> None:
        def mean_with(series: dict[str, object]) -> np.ndarray:
            return mean_of(service, {"series": [series], "horizon": 30, "model": "ttm-exog"})

        idle, busy = mean_with(covariate_series(5, 30, 0.0)), mean_with(covariate_series(5, 30, 1.0))
        past_only, without = mean_with(covariate_series(5, 30)), mean_with(clock_series(5))
        assert not np.allclose(idle, busy)
        assert not np.allclose(past_only, without)

    def test_ttm_exog_answers_without_covariates_too(self, service: str) -> None:
        response = predict(service, {"series": [clock_series(6)], "horizon": 20, "model": "ttm-exog"})
        assert response.status_code == 200, response.text

    def test_ttm_exog_refuses_a_covariate_it_does_not_know_naming_the_model(self, service: str) -> None:
        series = {**clock_series(6, length=64), "covariates": {"humidity": {"past": [0.5] * 64}}}
        response = predict(service, {"series": [series], "horizon": 10, "model": "ttm-exog"})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert "model 'ttm-exog' does not know covariate 'humidity'" in problem["detail"]
        assert "temperature_c, cpu_load" in problem["detail"]
        assert problem["errors"][0]["field"] == "series.0.covariates.humidity"

    def test_info_names_the_covariates_ttm_exog_knows(self, service: str) -> None:
        models = {m["name"]: m for m in httpx.get(f"{service}/info").json()["models"]}
        assert models["ttm-exog"]["covariate_names"] == ["temperature_c", "cpu_load"]
        assert models["ttm"]["covariate_names"] is None  # it takes no covariates at all
