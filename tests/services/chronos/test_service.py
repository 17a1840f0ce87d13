"""The chronos service as clients meet it: a real uvicorn process, real model code, bundled weights.

The shared promises are in support.service_contract; this file adds what only chronos promises."""

from __future__ import annotations

import httpx
import numpy as np

from chronotick_chronos.settings import BUNDLED_CHECKPOINTS, ChronosSettings
from support.service_contract import ServiceContract, covariate_series, mean_of


class TestChronosService(ServiceContract):
    FAMILY = "chronos"
    APP = "chronotick_chronos.main:app"
    MODELS = ("chronos-bolt", "chronos-2", "timesfm-2.5")
    COVARIATES = {"chronos-bolt": (False, False), "chronos-2": (True, True), "timesfm-2.5": (False, False)}
    MAX_HORIZON = 64  # Chronos-Bolt's prediction length
    CHECKPOINT_MODEL = "chronos-bolt"
    SETTINGS = ChronosSettings
    BUNDLED_CHECKPOINTS = BUNDLED_CHECKPOINTS
    MODEL_ID_VAR = "CHRONOTICK_CHRONOS_BOLT_MODEL_ID"
    CHECKPOINT_ENV = {"CHRONOTICK_CHRONOS_MODELS": '["chronos-bolt"]'}

    def test_info_reports_the_real_library_versions(self, service: str) -> None:
        versions = httpx.get(f"{service}/info").json()["versions"]
        assert versions["chronos-forecasting"] == "2.3.2"
        assert versions["timesfm"] == "3.0.2"
        assert versions["transformers"].startswith("5.")

    def test_each_bundled_checkpoint_says_what_inputs_it_was_trained_on(self, service: str) -> None:
        models = {m["name"]: m["input_scaling"] for m in httpx.get(f"{service}/info").json()["models"]}
        assert models == {
            "chronos-bolt": "last-value-mad",
            "chronos-2": "last-value-mad",
            "timesfm-2.5": "first-differences",
        }

    def test_chronos2_uses_past_and_future_covariates(self, service: str) -> None:
        def with_load(future_load: float) -> np.ndarray:
            return mean_of(
                service, {"series": [covariate_series(5, 30, future_load)], "horizon": 30, "model": "chronos-2"}
            )

        idle, busy = with_load(0.0), with_load(1.0)
        assert not np.allclose(idle, busy)
