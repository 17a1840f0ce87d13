"""The conformance suite every model-family service must pass, over real HTTP.

Each family's ``tests/services/<family>/test_service.py`` subclasses :class:`ServiceContract`
(as ``TestXxxService``), fills in the class attributes below, and adds only the tests specific to
its family. The base class is not named ``Test*``, so pytest never collects it on its own.

Parameterised tests take their cases from the subclass through :meth:`ServiceContract.pytest_generate_tests`
(pytest calls that hook on a test class), so ``model`` runs once per model the family serves.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from chronotick.synthetic import generate_clock
from support.extreme_inputs import assert_refused_or_finite, extreme_requests
from support.servers import serve_in_process

LEVELS = [0.025, 0.1, 0.5, 0.9, 0.975]
TIMEOUT_S = 120.0
MAX_BODY_BYTES = 2 * 1024 * 1024


def clock_series(seed: int, length: int = 512, scenario: str = "server_load") -> dict[str, object]:
    """A synthetic disciplined clock as a request series (missing samples sent as null)."""
    clock = generate_clock(scenario, length, seed=seed)
    offsets = [None if np.isnan(v) else float(v) for v in clock.observed_offset_us]
    return {"offsets_us": offsets, "interval_s": 1.0, "id": f"clock-{seed}"}


def covariate_series(
    seed: int,
    horizon: int,
    future_load: float | None = None,
    *,
    length: int = 512,
    past_load: np.ndarray | None = None,
) -> dict[str, object]:
    """``clock_series`` with its past cpu_load (or ``past_load``) and temperature_c, and a known
    future cpu_load of ``future_load`` for ``horizon`` steps when one is given."""
    clock = generate_clock("server_load", length, seed=seed)
    load = clock.covariates["cpu_load"] if past_load is None else past_load
    cpu_load: dict[str, object] = {"past": np.asarray(load).tolist()}
    if future_load is not None:
        cpu_load["future"] = [future_load] * horizon
    return {
        **clock_series(seed, length),
        "covariates": {"cpu_load": cpu_load, "temperature_c": {"past": clock.covariates["temperature_c"].tolist()}},
    }


def random_walk_std(offsets_us: list[float | None], horizon: int) -> np.ndarray:
    """RMS of the context's h-step changes for h = 1..horizon, non-decreasing: the spread the kit
    gives a point forecaster asked to skip its backtests (``skip_spread_backtests``)."""
    context = np.array([np.nan if v is None else v for v in offsets_us])
    rms = []
    for h in range(1, horizon + 1):
        changes = context[h:] - context[:-h]
        rms.append(np.sqrt(np.mean(changes[np.isfinite(changes)] ** 2)))
    return np.maximum.accumulate(rms)


def predict(base_url: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{base_url}/predict", json=body, timeout=TIMEOUT_S)


def post_raw(base_url: str, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{base_url}/predict", content=content, headers={"content-type": "application/json"}, timeout=TIMEOUT_S
    )


def mean_of(base_url: str, body: dict[str, object]) -> np.ndarray:
    response = predict(base_url, body)
    assert response.status_code == 200, response.text
    return np.array(response.json()["forecasts"][0]["mean_us"])


async def _concurrently(base_url: str, bodies: list[dict[str, object]]) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S) as client:
        responses = await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


def answer_concurrently(base_url: str, bodies: list[dict[str, object]]) -> list[dict[str, object]]:
    """Send ``bodies`` all at once; every one must succeed."""
    return asyncio.run(_concurrently(base_url, bodies))


@dataclass(frozen=True)
class BatchCase:
    """One run of the batched-equals-alone test: which model, with covariates or not, how far ahead."""

    model: str
    covariates: bool = False
    horizon: int = 20
    id: str | None = None


class ServiceContract:
    """What every family service promises its clients. Subclass as ``Test<Family>Service``."""

    # --- what the family fills in -------------------------------------------------------------
    FAMILY: ClassVar[str]  # the family's name, as /info reports it
    APP: ClassVar[str]  # the ASGI app, "package.module:app"
    MODELS: ClassVar[tuple[str, ...]]  # every model served, in /info order; the first is the default
    # (past_covariates, future_covariates) as /info declares them, per model.
    COVARIATES: ClassVar[Mapping[str, tuple[bool, bool]]]
    MAX_HORIZON: ClassVar[int]  # the default model's longest horizon
    SERVICE_ENV: ClassVar[Mapping[str, str]] = {}  # per-family environment (offline flags, threads, ...)
    FORECAST_HORIZON: ClassVar[int] = 60
    # How the second series of the forecast test differs from the first (clock_series keyword arguments).
    SECOND_SERIES: ClassVar[Mapping[str, Any]] = {}
    # True where quantiles of distinct levels must differ (a parametric spread), not only not cross.
    STRICTLY_ORDERED_QUANTILES: ClassVar[bool] = False
    BATCH_REQUESTS: ClassVar[int] = 8
    BATCH_RTOL: ClassVar[float] = 1e-4
    BATCH_ATOL: ClassVar[float] = 1e-3
    # Further (body, field) cases of the bad-input test, as pytest.param(...).
    EXTRA_BAD_INPUTS: ClassVar[tuple[Any, ...]] = ()
    # Requests per model of the extreme-numbers property: real models on two shared cores.
    EXTREME_EXAMPLES: ClassVar[int] = 60
    # The copied-checkpoint test: which model, the settings class and its bundled checkpoints,
    # the variable that points the model elsewhere, and any more environment it needs.
    CHECKPOINT_MODEL: ClassVar[str]
    SETTINGS: ClassVar[type]
    BUNDLED_CHECKPOINTS: ClassVar[Mapping[str, str]]
    MODEL_ID_VAR: ClassVar[str]
    CHECKPOINT_ENV: ClassVar[Mapping[str, str]] = {}

    # --- hooks a family may override --------------------------------------------------------------
    def check_forecast(self, series: dict[str, object], forecast: dict[str, Any]) -> None:
        """Family-specific promises about one forecast of the forecast test (none by default)."""

    def batch_cases(self) -> list[BatchCase]:
        return [BatchCase(model) for model in self.MODELS]

    def batch_series(self, k: int, case: BatchCase) -> dict[str, object]:
        # Different lengths too: shorter contexts are padded inside a batch, which must not change them.
        length = 200 + 37 * k
        if case.covariates:
            return covariate_series(10 + k, case.horizon, 0.5, length=length)
        return clock_series(10 + k, length=length)

    def bad_inputs(self) -> list[Any]:
        one = {"offsets_us": [1.0] * 64, "interval_s": 1.0}
        return [
            pytest.param(
                {"series": [{"offsets_us": [1.0, 2.0, 3.0], "interval_s": 1.0}], "horizon": 5},
                "series.0.offsets_us",
                id="too-few-samples",
            ),
            pytest.param({"series": [one], "horizon": self.MAX_HORIZON + 1}, "horizon", id="horizon-beyond-model"),
            pytest.param({"series": [one], "horizon": 0}, "horizon", id="horizon-zero"),
            pytest.param({"series": [one], "horizon": -1}, "horizon", id="horizon-negative"),
            pytest.param(
                {"series": [{"offsets_us": ["a"] * 64, "interval_s": 1.0}], "horizon": 5},
                "series.0.offsets_us.0",
                id="offset-not-a-number",
            ),
            pytest.param(
                {"series": [{"offsets_us": [1.0] * 8, "interval_s": 1.0}] * 257, "horizon": 5},
                "series",
                id="too-many-series",
            ),
            pytest.param(
                {"series": [{"offsets_us": [1.0] * 8193, "interval_s": 1.0}], "horizon": 5},
                "series.0.offsets_us",
                id="series-too-long",
            ),
            pytest.param({"series": [], "horizon": 5}, "series", id="no-series"),
            pytest.param(
                {"series": [{"offsets_us": [None] * 64, "interval_s": 1.0}], "horizon": 5},
                "series.0",
                id="no-observed-sample",
            ),
            # Issue 15: finite numbers that once overflowed deep inside (500) are refused up front.
            pytest.param(
                {"series": [{"offsets_us": [1e300, -1e300] * 32, "interval_s": 1.0}], "horizon": 5},
                "series.0.offsets_us.0",
                id="offset-beyond-the-bound",
            ),
            pytest.param(
                {"series": [{**one, "interval_s": 1e-300}], "horizon": 5},
                "series.0.interval_s",
                id="interval-below-a-microsecond",
            ),
            pytest.param(
                {
                    "series": [{"offsets_us": [1.0] * 64, "timestamps_s": [1e300 + k * 1e286 for k in range(64)]}],
                    "horizon": 5,
                },
                "series.0.timestamps_s.0",
                id="timestamp-beyond-the-bound",
            ),
            *self.EXTRA_BAD_INPUTS,
        ]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Cases of the contract's parameterised tests, from the family's attributes. The argument
        names model, model_without_covariates, batch_case and bad_body are the contract's."""
        names = metafunc.fixturenames
        if "model" in names:
            metafunc.parametrize("model", self.MODELS)
        if "model_without_covariates" in names:
            refusing = [m for m in self.MODELS if not self.COVARIATES[m][0]]
            every_model_takes_them = pytest.param(
                None,
                id="every-model-takes-covariates",
                marks=pytest.mark.skip(reason=f"every {self.FAMILY} model takes covariates"),
            )
            metafunc.parametrize("model_without_covariates", refusing or [every_model_takes_them])
        if "batch_case" in names:
            cases = self.batch_cases()
            metafunc.parametrize("batch_case", cases, ids=[c.id or c.model for c in cases])
        if "bad_body" in names:
            metafunc.parametrize(("bad_body", "field"), self.bad_inputs())

    @pytest.fixture(scope="class")
    @classmethod
    def service(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
        """One real service process (uvicorn, real weights) for all of a family's tests: class scope,
        and each family's module holds one conforming class, so one process per module."""
        log = tmp_path_factory.mktemp(cls.FAMILY) / "service.log"
        with serve_in_process(cls.APP, env=dict(cls.SERVICE_ENV), log_path=log) as base_url:
            yield base_url

    # --- the contract ---------------------------------------------------------------------------------
    def test_info_lists_every_model_with_its_covariates_and_a_hashed_version(self, service: str) -> None:
        info = httpx.get(f"{service}/info").json()
        assert info["family"] == self.FAMILY
        assert [m["name"] for m in info["models"]] == list(self.MODELS)
        assert info["default_model"] == self.MODELS[0]
        covariates = {m["name"]: (m["past_covariates"], m["future_covariates"]) for m in info["models"]}
        assert covariates == dict(self.COVARIATES)
        assert info["models"][0]["max_horizon"] == self.MAX_HORIZON
        assert all(m["model_version"].startswith("sha256:") for m in info["models"])

    def test_each_model_forecasts_every_step_with_ordered_quantiles(self, service: str, model: str) -> None:
        horizon = self.FORECAST_HORIZON
        body = {
            "series": [clock_series(1), clock_series(2, **self.SECOND_SERIES)],
            "horizon": horizon,
            "model": model,
            "quantile_levels": LEVELS,
        }
        response = predict(service, body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["model"] == model and answer["quantile_levels"] == LEVELS
        assert len(answer["forecasts"]) == len(body["series"])
        for series, forecast in zip(body["series"], answer["forecasts"], strict=True):
            assert forecast["id"] == series["id"]
            quantiles = np.array(forecast["quantiles_us"])
            assert quantiles.shape == (len(LEVELS), horizon)
            steps = np.diff(quantiles, axis=0)
            assert np.all(steps > 0) if self.STRICTLY_ORDERED_QUANTILES else np.all(steps >= 0)
            assert len(forecast["mean_us"]) == horizon and np.all(np.array(forecast["std_us"]) > 0)
            # A forecast of a disciplined clock starts near where the clock is now.
            last = next(v for v in reversed(series["offsets_us"]) if v is not None)
            assert abs(forecast["mean_us"][0] - last) < 10 * (forecast["std_us"][0] + 1.0)
            self.check_forecast(series, forecast)

    def test_same_request_same_answer(self, service: str, model: str) -> None:
        body = {"series": [clock_series(3)], "horizon": 30, "model": model}
        first, second = predict(service, body), predict(service, body)
        assert first.status_code == second.status_code == 200, first.text
        assert first.json()["forecasts"] == second.json()["forecasts"]

    def test_skip_spread_backtests_keeps_the_forecast_and_gives_its_own_or_the_random_walk_spread(
        self, service: str, model: str
    ) -> None:
        """A model with native quantiles answers the same; a point forecaster keeps its point
        forecast and answers the context's random-walk spread instead of its residual spread."""
        horizon = 30
        series = clock_series(9)
        body = {"series": [series], "horizon": horizon, "model": model}
        plain, skipping = predict(service, body), predict(service, {**body, "skip_spread_backtests": True})
        assert plain.status_code == skipping.status_code == 200, skipping.text
        own, cheap = plain.json()["forecasts"][0], skipping.json()["forecasts"][0]
        np.testing.assert_allclose(cheap["mean_us"], own["mean_us"], rtol=self.BATCH_RTOL, atol=self.BATCH_ATOL)
        if not np.allclose(cheap["std_us"], own["std_us"], rtol=self.BATCH_RTOL, atol=self.BATCH_ATOL):
            np.testing.assert_allclose(cheap["std_us"], random_walk_std(series["offsets_us"], horizon), rtol=1e-6)

    def test_large_absolute_offsets_keep_their_precision(self, service: str) -> None:
        base = clock_series(4)
        shifted = {**base, "offsets_us": [None if v is None else v + 5e9 for v in base["offsets_us"]]}
        plain = mean_of(service, {"series": [base], "horizon": 10})
        far = mean_of(service, {"series": [shifted], "horizon": 10})
        np.testing.assert_allclose(far - 5e9, plain, atol=0.05)

    def test_models_without_covariates_refuse_them_with_a_reason(
        self, service: str, model_without_covariates: str
    ) -> None:
        model = model_without_covariates
        series = {**clock_series(6, length=64), "covariates": {"cpu_load": {"past": [0.5] * 64}}}
        response = predict(service, {"series": [series], "horizon": 10, "model": model})
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert f"model '{model}' does not use covariates" in problem["detail"]
        assert problem["errors"][0]["field"] == "series.0.covariates"

    def test_concurrent_requests_are_batched_and_answer_as_if_alone(self, service: str, batch_case: BatchCase) -> None:
        bodies = [
            {"series": [self.batch_series(k, batch_case)], "horizon": batch_case.horizon, "model": batch_case.model}
            for k in range(self.BATCH_REQUESTS)
        ]
        alone = []
        for body in bodies:
            response = predict(service, body)
            assert response.status_code == 200, response.text
            alone.append(response.json())
        together = answer_concurrently(service, bodies)
        assert max(answer["batch_series"] for answer in together) > 1
        tolerance = {"rtol": self.BATCH_RTOL, "atol": self.BATCH_ATOL}
        for a, b in zip(alone, together, strict=True):
            np.testing.assert_allclose(a["forecasts"][0]["mean_us"], b["forecasts"][0]["mean_us"], **tolerance)
            np.testing.assert_allclose(
                a["forecasts"][0]["quantiles_us"], b["forecasts"][0]["quantiles_us"], **tolerance
            )

    def test_missing_samples_and_timestamps_are_accepted(self, service: str) -> None:
        times = [float(t) for t in range(0, 400, 2)]
        offsets = [5.0 + 0.01 * t if i % 7 else None for i, t in enumerate(times)]
        del times[50], offsets[50]  # a sample that never arrived
        body = {"series": [{"offsets_us": offsets, "timestamps_s": times}], "horizon": 15}
        response = predict(service, body)
        assert response.status_code == 200, response.text
        forecast = response.json()["forecasts"][0]
        assert forecast["interval_s"] == 2.0
        assert np.all(np.isfinite(forecast["mean_us"]))

    def test_bad_input_is_422_naming_the_field(self, service: str, bad_body: dict[str, object], field: str) -> None:
        response = predict(service, bad_body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert any(e["field"].startswith(field) for e in response.json()["errors"])

    def test_horizon_beyond_the_default_model_names_it(self, service: str) -> None:
        body = {"series": [{"offsets_us": [1.0] * 64, "interval_s": 1.0}], "horizon": self.MAX_HORIZON + 1}
        response = predict(service, body)
        assert response.status_code == 422, response.text
        assert f"model '{self.MODELS[0]}'" in response.json()["errors"][0]["reason"]

    def test_extreme_numbers_get_a_finite_forecast_or_a_422_naming_the_field(self, service: str, model: str) -> None:
        """Issue 15: any finite number, however large or small, in any numeric field, is refused with
        a 422 naming the field or forecast with finite values; never a 5xx (see support.extreme_inputs)."""
        info = next(m for m in httpx.get(f"{service}/info").json()["models"] if m["name"] == model)

        @given(
            body=extreme_requests(
                max_horizon=min(info["max_horizon"], 24),
                min_length=info["min_context"],
                max_length=max(info["min_context"], 80),
                covariates=info["past_covariates"],
            )
        )
        @settings(
            max_examples=self.EXTREME_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        def answers(body: dict[str, object]) -> None:
            body = {**body, "model": model}
            assert_refused_or_finite(predict(service, body), body)

        answers()

    def test_nan_in_the_body_is_422(self, service: str) -> None:
        raw = b'{"series": [{"offsets_us": [' + b"1.0," * 20 + b'NaN], "interval_s": 1.0}], "horizon": 5}'
        assert post_raw(service, raw).status_code == 422

    def test_unknown_model_is_404_listing_the_models_served(self, service: str) -> None:
        body = {"series": [clock_series(7, 64)], "horizon": 5, "model": f"{self.FAMILY}-xl"}
        response = predict(service, body)
        assert response.status_code == 404
        assert ", ".join(self.MODELS) in response.json()["detail"]

    def test_body_over_two_megabytes_is_413(self, service: str) -> None:
        assert post_raw(service, b" " * (MAX_BODY_BYTES + 1)).status_code == 413

    def test_the_worker_survives_bad_input_and_still_forecasts(self, service: str) -> None:
        for raw in (b"{", b"[]", b'{"series": 3, "horizon": 5}', b"\xff\xfe"):
            assert post_raw(service, raw).status_code == 422
        assert predict(service, {"series": [clock_series(8, 64)], "horizon": 5}).status_code == 200

    def test_model_id_setting_points_a_model_at_another_checkpoint(self, tmp_path: Path) -> None:
        copied = tmp_path / f"my-{self.CHECKPOINT_MODEL}"
        shutil.copytree(self.SETTINGS().models_dir / self.BUNDLED_CHECKPOINTS[self.CHECKPOINT_MODEL], copied)
        env = {**self.SERVICE_ENV, **self.CHECKPOINT_ENV, self.MODEL_ID_VAR: str(copied)}
        with serve_in_process(self.APP, env=env) as base_url:
            info = httpx.get(f"{base_url}/info").json()
        assert [(m["name"], m["model_id"]) for m in info["models"]] == [(self.CHECKPOINT_MODEL, str(copied))]
