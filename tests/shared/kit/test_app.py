"""The kit's HTTP behaviour, over a real uvicorn server, with a small numpy model family."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from chronotick.contract import TIMEOUT_HEADER
from chronotick.kit import ModelBatch, ServiceSettings, create_app
from chronotick.problems import validation_problem
from support.line_family import LineFamily, LineModel
from support.servers import serve_in_thread, wait_until_ready

SERIES = {"offsets_us": [10.0, 11.0, 12.0, None, 14.0, 15.0], "interval_s": 1.0}


@pytest.fixture
def served(family: LineFamily) -> Iterator[str]:
    app = create_app(family, ServiceSettings(batch_window_ms=5.0, max_body_bytes=64 * 1024))
    with serve_in_thread(app) as base_url:
        yield base_url


def test_forecast_extends_the_line_and_carries_requested_quantiles(served: str) -> None:
    body = {"series": [SERIES], "horizon": 3, "quantile_levels": [0.1, 0.5, 0.9]}
    answer = httpx.post(f"{served}/predict", json=body).json()
    forecast = answer["forecasts"][0]
    assert forecast["mean_us"] == pytest.approx([16.0, 17.0, 18.0])
    assert forecast["std_us"] == pytest.approx([1.0, 2.0, 3.0])
    low, median, high = forecast["quantiles_us"]
    assert median == pytest.approx(forecast["mean_us"])
    assert all(lo < mid < hi for lo, mid, hi in zip(low, median, high, strict=True))
    assert answer["model"] == "line" and answer["model_version"] == "sha256:test"


def test_invalid_input_is_422_problem_json_naming_the_field(served: str) -> None:
    response = httpx.post(f"{served}/predict", json={"series": [SERIES], "horizon": 0})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"][0]["field"] == "horizon"
    assert problem["detail"].startswith("horizon:")


def test_malformed_json_is_422_not_500(served: str) -> None:
    response = httpx.post(f"{served}/predict", content=b'{"series": [', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_unknown_model_is_404_listing_the_models(served: str) -> None:
    response = httpx.post(f"{served}/predict", json={"series": [SERIES], "horizon": 3, "model": "nope"})
    assert response.status_code == 404
    assert "line, line-cov" in response.json()["detail"]


def test_body_over_the_limit_is_413_with_or_without_content_length(served: str) -> None:
    big = b"[" + b"1.0," * 40_000 + b"1.0]"
    declared = httpx.post(f"{served}/predict", content=big, headers={"content-type": "application/json"})
    streamed = httpx.post(
        f"{served}/predict", content=iter([big[:30_000], big[30_000:]]), headers={"content-type": "application/json"}
    )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["title"] == "Request too large"


def test_covariates_reach_a_model_that_takes_them(served: str) -> None:
    series = {**SERIES, "covariates": {"load": {"past": [0.1] * 6, "future": [0.2] * 3}}}
    response = httpx.post(f"{served}/predict", json={"series": [series], "horizon": 3, "model": "line-cov"})
    assert response.status_code == 200, response.text


def test_info_reports_models_limits_and_versions(served: str) -> None:
    info = httpx.get(f"{served}/info").json()
    assert info["default_model"] == "line"
    assert {m["name"] for m in info["models"]} == {"line", "line-cov"}
    assert info["models"][0]["max_horizon"] == 16
    assert "numpy" in info["versions"] and "python" in info["versions"]


def test_metrics_count_requests_by_status_and_batch_sizes(served: str) -> None:
    httpx.post(f"{served}/predict", json={"series": [SERIES], "horizon": 3})
    httpx.post(f"{served}/predict", json={"series": [SERIES], "horizon": 0})
    text = httpx.get(f"{served}/metrics").text
    assert 'chronotick_requests_total{status="200"} 1.0' in text
    assert 'chronotick_requests_total{status="422"} 1.0' in text
    assert "chronotick_batch_series_bucket" in text
    assert "chronotick_ready 1.0" in text


def test_not_ready_until_weights_load_then_ready() -> None:
    class SlowFamily(LineFamily):
        def load(self):  # type: ignore[no-untyped-def]
            time.sleep(1.0)
            return super().load()

    app = create_app(SlowFamily())
    with serve_in_thread(app, ready=False) as base_url:
        assert httpx.get(f"{base_url}/health/live").status_code == 200
        not_ready = httpx.get(f"{base_url}/health/ready")
        assert not_ready.status_code == 503 and not_ready.headers["retry-after"] == "1"
        assert httpx.post(f"{base_url}/predict", json={"series": [SERIES], "horizon": 3}).status_code == 503
        wait_until_ready(base_url, timeout_s=10.0)
        assert httpx.post(f"{base_url}/predict", json={"series": [SERIES], "horizon": 3}).status_code == 200


def test_a_family_that_fails_to_load_stays_unready_and_says_why() -> None:
    class BrokenFamily(LineFamily):
        def load(self):  # type: ignore[no-untyped-def]
            raise FileNotFoundError("no weights at /nowhere")

    with serve_in_thread(create_app(BrokenFamily()), ready=False) as base_url:
        time.sleep(0.3)
        response = httpx.get(f"{base_url}/health/ready")
        assert response.status_code == 503
        assert "no weights at /nowhere" in response.json()["detail"]


async def _post_concurrently(base_url: str, bodies: list[dict[str, object]]) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        responses = await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


def _bodies(count: int) -> list[dict[str, object]]:
    return [
        {
            "series": [{"offsets_us": [float(i), i + 0.5 * k, None, i + 1.5 * k, i + 2.0 * k], "interval_s": 1.0}],
            "horizon": 4,
        }
        for k, i in enumerate(range(count), start=1)
    ]


def test_concurrent_requests_share_model_calls_and_answer_as_if_alone() -> None:
    family = LineFamily(call_delay_s=0.05)
    app = create_app(family, ServiceSettings(batch_window_ms=20.0))
    bodies = _bodies(12)
    with serve_in_thread(app) as base_url:
        alone = [httpx.post(f"{base_url}/predict", json=b).json() for b in bodies]
        calls_before = len(family.models["line"].calls)
        together = asyncio.run(_post_concurrently(base_url, bodies))
    calls = family.models["line"].calls[calls_before:]
    assert sum(calls) == 12 and len(calls) < 12 and max(calls) > 1
    assert max(answer["batch_series"] for answer in together) > 1
    for a, b in zip(alone, together, strict=True):
        assert a["forecasts"] == b["forecasts"]


def test_a_lone_request_does_not_wait_out_the_batch_window() -> None:
    # The meter announces each request before its body is parsed and the endpoint closes that
    # announcement once the request is queued; a batch waits only while one is still open. Were
    # the handoff lost, the request would sit in the queue for the whole window.
    app = create_app(LineFamily(), ServiceSettings(batch_window_ms=100.0))
    with serve_in_thread(app) as base_url:
        answers = [httpx.post(f"{base_url}/predict", json=body).json() for body in _bodies(5)]
    assert all(answer["batch_series"] == 1 for answer in answers)
    assert statistics.median(answer["timings"]["queue_ms"] for answer in answers) < 50.0


def test_with_batching_off_every_request_runs_alone() -> None:
    family = LineFamily(call_delay_s=0.02)
    app = create_app(family, ServiceSettings(batching=False))
    with serve_in_thread(app) as base_url:
        calls_before = len(family.models["line"].calls)
        asyncio.run(_post_concurrently(base_url, _bodies(6)))
    assert family.models["line"].calls[calls_before:] == [1] * 6


def test_requests_with_different_horizons_are_never_merged() -> None:
    family = LineFamily(call_delay_s=0.05)
    app = create_app(family, ServiceSettings(batch_window_ms=20.0))
    bodies = _bodies(6)
    for body in bodies[::2]:
        body["horizon"] = 7
    with serve_in_thread(app) as base_url:
        answers = asyncio.run(_post_concurrently(base_url, bodies))
    assert [len(a["forecasts"][0]["mean_us"]) for a in answers] == [7, 4, 7, 4, 7, 4]


def test_a_request_still_queued_after_its_callers_time_limit_is_dropped_unanswered() -> None:
    # One slow batch holds the model; requests that queue behind it with a 50 ms limit expire
    # there, and the model never computes them; the model then serves the next request as usual.
    family = LineFamily(call_delay_s=1.5)  # long enough that the limited ones surely queue behind it
    app = create_app(family, ServiceSettings(batching=False))
    bodies = _bodies(4)

    async def scenario(base_url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            calls = len(family.models["line"].calls)
            first = asyncio.create_task(client.post("/predict", json=bodies[0]))
            while len(family.models["line"].calls) == calls:  # until the first batch is running
                await asyncio.sleep(0.005)
            limited = [client.post("/predict", json=b, headers={TIMEOUT_HEADER: "50"}) for b in bodies[1:3]]
            expired = await asyncio.gather(*limited)
            return [await first, *expired, await client.post("/predict", json=bodies[3])]

    with serve_in_thread(app) as base_url:
        calls_before = len(family.models["line"].calls)
        first, *expired, patient = asyncio.run(scenario(base_url))
        malformed = httpx.post(f"{base_url}/predict", json=bodies[0], headers={TIMEOUT_HEADER: "soon"})
    assert first.status_code == 200 and patient.status_code == 200
    for response in expired:
        assert response.status_code == 504, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "time limit passed" in response.json()["detail"]
    assert family.models["line"].calls[calls_before:] == [1, 1]  # the two expired ones never ran
    assert malformed.status_code == 422 and TIMEOUT_HEADER in malformed.text


def test_a_refusal_raised_inside_the_model_call_answers_its_request_and_the_worker_goes_on() -> None:
    class PickyModel(LineModel):
        def forecast(self, batch: ModelBatch):  # type: ignore[no-untyped-def]
            if batch.horizon == 5:
                raise validation_problem([{"field": "horizon", "reason": "this model refuses 5 steps"}])
            return super().forecast(batch)

    family = LineFamily()
    family.models["line"] = PickyModel("line")
    with serve_in_thread(create_app(family)) as base_url:
        refused = httpx.post(f"{base_url}/predict", json={"series": [SERIES], "horizon": 5})
        answered = httpx.post(f"{base_url}/predict", json={"series": [SERIES], "horizon": 3})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == "horizon: this model refuses 5 steps"
    assert answered.status_code == 200, answered.text


def test_docs_page_is_served_with_its_own_assets(served: str) -> None:
    page = httpx.get(f"{served}/docs").text
    assert "/static-offline-docs/swagger-ui-bundle.js" in page
    assert httpx.get(f"{served}/static-offline-docs/swagger-ui.css").status_code == 200
