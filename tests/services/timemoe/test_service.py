"""The timemoe service as clients meet it: a real uvicorn process, real model code, bundled weights.

The shared promises are in support.service_contract; this file adds what only timemoe promises."""

from __future__ import annotations

import httpx
import numpy as np

from chronotick_timemoe.settings import BUNDLED_CHECKPOINTS, TimeMoeSettings
from support.service_contract import ServiceContract, predict

# The service must never reach for the network: the hub is switched off and any proxied request would fail.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}


class TestTimeMoeService(ServiceContract):
    FAMILY = "timemoe"
    APP = "chronotick_timemoe.main:app"
    MODELS = ("timemoe",)
    COVARIATES = {"timemoe": (False, False)}
    MAX_HORIZON = 64
    SERVICE_ENV = OFFLINE
    SECOND_SERIES = {"scenario": "free_running"}
    STRICTLY_ORDERED_QUANTILES = True  # a normal spread around the point forecast
    BATCH_REQUESTS = 6  # shorter contexts are left-padded (masked) inside a batch
    CHECKPOINT_MODEL = "timemoe"
    SETTINGS = TimeMoeSettings
    BUNDLED_CHECKPOINTS = BUNDLED_CHECKPOINTS
    MODEL_ID_VAR = "CHRONOTICK_TIMEMOE_MODEL_ID"

    def check_forecast(self, series: dict[str, object], forecast: dict[str, object]) -> None:
        # A normal spread around the point: the median is the mean.
        np.testing.assert_allclose(np.array(forecast["quantiles_us"])[2], forecast["mean_us"], atol=1e-6)

    def test_info_reports_the_model_limits_and_the_real_library_versions(self, service: str) -> None:
        info = httpx.get(f"{service}/info").json()
        (model,) = info["models"]
        assert model["library"] == "sktime.libs.timemoe"
        assert (model["max_context"], model["max_horizon"]) == (512, 64)
        assert info["versions"]["sktime"] == "1.2.0"
        assert info["versions"]["transformers"] == "4.40.1"
        assert info["versions"]["torch"].startswith("2.13.0")

    def test_a_short_history_after_a_long_silence_is_accepted(self, service: str) -> None:
        times = [float(t) for t in range(0, 400, 2)]
        offsets = [5.0 + 0.01 * t if i % 7 else None for i, t in enumerate(times)]
        del times[50], offsets[50]  # a sample that never arrived
        offsets[:120] = [None] * 120  # the clock only started reporting recently
        body = {"series": [{"offsets_us": offsets, "timestamps_s": times}], "horizon": 15}
        response = predict(service, body)
        assert response.status_code == 200, response.text
        forecast = response.json()["forecasts"][0]
        assert forecast["interval_s"] == 2.0 and np.all(np.isfinite(forecast["mean_us"]))
