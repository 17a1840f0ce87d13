"""The gateway remembering clocks, over real HTTP: a real uvicorn gateway with the real chronos
service (real model code) and its classical members, its memory in process or in a real
redis-server. A clock is streamed in time order as an agent would send it."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import set_mode

from chronotick.synthetic import generate_clock
from chronotick_gateway import online_ar
from chronotick_gateway.app import create_app
from chronotick_gateway.memory import REPROBE_EVERY
from chronotick_gateway.settings import GatewaySettings
from support.redis_server import RedisServer
from support.servers import serve_in_thread

CONTEXT = 300
EVERY = 5  # an agent asking every 5 s
HORIZON = 10
WARM_AFTER = 8
CHRONOS_MODELS = 3


def settings_for(**extra: object) -> GatewaySettings:
    """Every model asked on every request (these tests count the calls), but where a test says otherwise."""
    extra = {"reuse_forecasts_s": 0.0, "reuse_when_busy_s": 0.0} | extra
    return GatewaySettings(health_interval_s=0.2, warm_after_scored=WARM_AFTER, **extra)  # type: ignore[arg-type]


class ClockStream:
    """One synthetic clock, asked about every ``EVERY`` seconds of its own time."""

    def __init__(self, clock_id: str, seed: int = 21) -> None:
        clock = generate_clock("server_load", 4000, seed=seed, missing_rate=0.0)
        self.clock_id = clock_id
        self.offsets = clock.observed_offset_us
        self.end = CONTEXT

    def body(self, end: int | None = None, **series: object) -> dict[str, object]:
        end = self.end if end is None else end
        window = self.offsets[end - CONTEXT : end]
        return {
            "series": [
                {
                    "offsets_us": window.tolist(),
                    "interval_s": 1.0,
                    "start_s": float(end - CONTEXT),
                    "clock_id": self.clock_id,
                    **series,
                }
            ],
            "horizon": HORIZON,
            "quantile_levels": [0.025, 0.1, 0.5, 0.9, 0.975],
            "deadline_s": 10.0,
        }

    def ask(self, gateway: str, **extra: object) -> dict[str, object]:
        response = httpx.post(f"{gateway}/predict", json=self.body(**extra), timeout=30.0)
        assert response.status_code == 200, response.text
        self.end += EVERY
        return response.json()

    def until_warm(self, gateway: str, limit: int = 40) -> list[dict[str, object]]:
        answers = []
        for _ in range(limit):
            answers.append(self.ask(gateway))
            if answers[-1]["memory"][0]["state"] == "remembered":
                return answers
        raise AssertionError(f"not warm after {limit} answers: {answers[-1]['memory']}")


def series_forecast_by_chronos(chronos_url: str) -> float:
    """Series the chronos service has forecast so far, over its models (its batch-size histogram)."""
    text = httpx.get(f"{chronos_url}/metrics").text
    return sum(float(v) for v in re.findall(r"^chronotick_batch_series_sum(?:\{[^}]*\})? (\S+)$", text, re.M))


@pytest.fixture(scope="module")
def gateway(chronos_url: str) -> Iterator[str]:
    with serve_in_thread(create_app(settings_for(services={"chronos": chronos_url}))) as url:
        yield url


def test_a_clock_hands_over_from_its_backtests_to_its_memory_and_then_skips_the_backtests(
    gateway: str, chronos_url: str
) -> None:
    stream = ClockStream("host-handover")
    before = series_forecast_by_chronos(chronos_url)
    first = stream.ask(gateway)
    cold_series = series_forecast_by_chronos(chronos_url) - before
    assert first["memory"][0] == {
        "clock_id": "host-handover",
        "state": "cold-start",
        "scored": 0,
        "newly_scored": 0,
        "handover": 0.0,
    }
    assert first["degraded"] is False, first["reasons"]
    answers = stream.until_warm(gateway)
    handovers = [a["memory"][0]["handover"] for a in answers]
    assert handovers == sorted(handovers) and 0 < handovers[len(handovers) // 2] < 1  # it grows, gradually
    assert sum(a["memory"][0]["newly_scored"] for a in answers) >= WARM_AFTER * 4  # four anchors in 10 s
    warm = answers[-1]
    assert warm["memory"][0]["scored"] >= WARM_AFTER
    # The warm path: each model forecast the live context only, no backtest cuts.
    before = series_forecast_by_chronos(chronos_url)
    warm = stream.ask(gateway)
    assert warm["memory"][0]["state"] == "remembered"
    warm_series = series_forecast_by_chronos(chronos_url) - before
    assert cold_series >= 4 * CHRONOS_MODELS  # the real origin and its backtest cuts
    assert warm_series == CHRONOS_MODELS
    forecast = warm["forecasts"][0]
    quantiles = np.array(forecast["quantiles_us"])
    assert np.all(np.diff(quantiles, axis=0) > 0)  # 2.5 % < 10 % < 50 % < 90 % < 97.5 %, every step
    weights = np.array([b["weights"][0] for b in warm["backends"] if b["status"] == "ok"])
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)


def test_a_member_that_is_always_wrong_is_left_out_on_a_warm_clock_but_asked_now_and_then(
    chronos_url: str, flaky_url: str
) -> None:
    """The line models answer 10 ms off the truth: once the clock is warm they carry no weight, so
    they are not asked, but on every 10th request of the clock (which keeps their record current)."""
    set_mode(flaky_url, "biased")
    try:
        with serve_in_thread(create_app(settings_for(services={"chronos": chronos_url, "flaky": flaky_url}))) as url:
            stream = ClockStream("host-biased", seed=30)
            stream.until_warm(url)
            calls_before = httpx.get(f"{flaky_url}/control").json()["predict_calls"]
            answers = [stream.ask(url) for _ in range(2 * REPROBE_EVERY)]
            calls = httpx.get(f"{flaky_url}/control").json()["predict_calls"] - calls_before
    finally:
        set_mode(flaky_url, "ok")
    lines = [{b["name"]: b for b in answer["backends"]}["line"] for answer in answers]
    asked = [line for line in lines if line["status"] == "ok"]
    left_out = [line for line in lines if line["status"] == "skipped"]
    assert len(asked) == 2 and len(left_out) == 2 * REPROBE_EVERY - 2, [line["status"] for line in lines]
    assert all("no remembered weight" in line["reason"] for line in left_out)
    assert calls == 2 * 2  # line and line-cov, on the two re-probes only
    assert all(not answer["degraded"] for answer in answers)  # left out is not a failure


def test_a_warm_clock_reuses_each_models_forecast_for_a_few_seconds_moved_to_the_newest_sample(
    chronos_url: str,
) -> None:
    """Asked every 5 s with forecasts reused for up to 10 s, the models forecast every third request;
    in between, each model's last fresh forecast answers, re-anchored at the new last sample."""
    with serve_in_thread(create_app(settings_for(services={"chronos": chronos_url}, reuse_forecasts_s=10.0))) as url:
        stream = ClockStream("host-reuse", seed=23)
        stream.until_warm(url)
        before = series_forecast_by_chronos(chronos_url)
        lasts, answers = [], []
        for _ in range(7):
            lasts.append(float(stream.offsets[stream.end - 1]))
            answers.append(stream.ask(url))
        asked = series_forecast_by_chronos(chronos_url) - before
        metrics = httpx.get(f"{url}/metrics").text
    models = [[b for b in answer["backends"] if b["service"] == "chronos"] for answer in answers]
    ages = [{b["forecast_age_s"] for b in answer} for answer in models]
    assert all(len(age) == 1 for age in ages), ages  # the models of a request: all fresh, or all reused
    ages = [age.pop() for age in ages]
    fresh = [i for i, age in enumerate(ages) if age is None]
    assert ages[fresh[0] : fresh[0] + 4] == [None, 5.0, 10.0, None], ages
    assert asked == CHRONOS_MODELS * len(fresh)  # a reused forecast costs the service nothing
    assert all(answer["memory"][0]["state"] == "remembered" and not answer["degraded"] for answer in answers)
    later, age = fresh[0] + 1, 5
    for kept, moved in zip(models[fresh[0]], models[later], strict=True):
        # The fresh answer shows the model's first HORIZON steps (it was asked 10 steps further): the
        # re-anchored one's first HORIZON - 5 steps are its path from its step 5 on, from the new sample.
        path = np.array(kept["forecasts"][0]["mean_us"])
        moved_path = np.array(moved["forecasts"][0]["mean_us"])
        np.testing.assert_allclose(moved_path[: HORIZON - age], lasts[later] + path[age:] - path[age - 1], atol=1e-3)
    reused = re.findall(r'^chronotick_gateway_forecasts_reused_total\{backend="[^"]+"\} (\S+)$', metrics, re.M)
    assert sum(float(v) for v in reused) == CHRONOS_MODELS * (len(answers) - len(fresh))


def test_the_clock_report_says_what_the_memory_learned_per_horizon(gateway: str) -> None:
    stream = ClockStream("host-report", seed=22)
    stream.until_warm(gateway)
    for _ in range(4):
        stream.ask(gateway)
    report = httpx.get(f"{gateway}/clocks/host-report").json()
    assert report["clock_id"] == "host-report" and report["interval_s"] == 1.0
    assert report["pending_forecasts"] > 0 and 0 < report["state_bytes"] < 64_000
    reached = [h for h in report["horizons"] if h["horizon_s"] <= HORIZON]
    assert [h["horizon_s"] for h in reached] == [1.0, 2.0, 5.0, 10.0]
    for horizon in reached:
        assert horizon["scored"] >= WARM_AFTER
        assert sum(horizon["weights"].values()) == pytest.approx(1.0)
        assert {"fused", "last-value", "kalman", "chronos-bolt"} <= set(horizon["mae_us"])
        assert horizon["rule"] in ("ml-poly", "inverse-mse") and horizon["error_scale_us"] > 0
    assert set(reached[0]["coverage"]) == {"0.8", "0.95"}  # answers with remembered bounds were scored
    assert all(h["scored"] == 0 for h in report["horizons"] if h["horizon_s"] > HORIZON)


def test_a_warm_clock_gets_its_own_autoregression_once_it_has_learned_enough(gateway: str) -> None:
    """online-ar learns from every sample the clock's requests bring; skipped (not a failure) while
    the clock is cold or the regression still learning, then a member whose forecasts are scored."""
    stream = ClockStream("host-autoregression", seed=26)
    answers = stream.until_warm(gateway)
    for _ in range(80):
        answers.append(stream.ask(gateway))
        if {b["name"]: b for b in answers[-1]["backends"]}[online_ar.NAME]["status"] == "ok":
            break
    members = [{b["name"]: b for b in answer["backends"]}[online_ar.NAME] for answer in answers]
    assert members[-1]["status"] == "ok", members[-1]
    assert members[0]["status"] == "skipped" and "not warm yet" in members[0]["reason"]
    assert any("still learning this clock" in (m["reason"] or "") for m in members)
    assert not any(answer["degraded"] for answer in answers)
    forecast = members[-1]["forecasts"][0]
    assert len(forecast["mean_us"]) == HORIZON and all(s > 0 for s in forecast["std_us"])
    window = stream.offsets[stream.end - EVERY - CONTEXT : stream.end - EVERY]
    assert abs(forecast["mean_us"][0] - window[-1]) < 10 * np.mean(np.abs(np.diff(window)))
    for _ in range(4):  # its first forecasts meet their truth
        stream.ask(gateway)
    report = httpx.get(f"{gateway}/clocks/host-autoregression").json()
    assert online_ar.NAME in report["horizons"][0]["mae_us"]
    stateless = httpx.post(
        f"{gateway}/predict",
        json={**stream.body(), "series": [{k: v for k, v in stream.body()["series"][0].items() if k != "clock_id"}]},
    ).json()
    assert online_ar.NAME not in {b["name"] for b in stateless["backends"]}  # no clock, no member


def test_observations_score_pending_forecasts_without_a_forecast(gateway: str) -> None:
    stream = ClockStream("host-observed", seed=23)
    stream.ask(gateway)
    origin = stream.end - EVERY  # the last sample of that answer's window is at origin - 1
    times = [float(origin - 1 + k) for k in range(1, 11)]
    response = httpx.post(
        f"{gateway}/clocks/host-observed/observations",
        json={"timestamps_s": times, "offsets_us": stream.offsets[origin : origin + 10].tolist()},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"clock_id": "host-observed", "scored": 4, "pending": 0}  # 1, 2, 5 and 10 s
    unknown = httpx.post(f"{gateway}/clocks/nobody/observations", json={"timestamps_s": [1.0], "offsets_us": [0.0]})
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"


def test_a_forgotten_clock_starts_afresh(gateway: str) -> None:
    stream = ClockStream("host-forgotten", seed=24)
    for _ in range(6):
        stream.ask(gateway)
    assert httpx.delete(f"{gateway}/clocks/host-forgotten").status_code == 204
    assert httpx.get(f"{gateway}/clocks/host-forgotten").status_code == 404
    assert httpx.delete(f"{gateway}/clocks/host-forgotten").status_code == 404
    assert stream.ask(gateway)["memory"][0]["scored"] == 0


@pytest.mark.parametrize(
    ("series", "field"),
    [
        ({"clock_id": "no-times", "start_s": None}, "series.0"),
        ({"clock_id": "has space"}, "series.0.clock_id"),
        ({"clock_id": "x" * 129}, "series.0.clock_id"),
    ],
)
def test_a_clock_without_sample_times_or_with_a_bad_id_is_refused(
    gateway: str, series: dict[str, object], field: str
) -> None:
    body = ClockStream("refused").body(**series)
    response = httpx.post(f"{gateway}/predict", json=body)
    assert response.status_code == 422
    assert any(e["field"].startswith(field) for e in response.json()["errors"]), response.json()
    assert httpx.get(f"{gateway}/clocks/bad%2Fid").status_code in (404, 422)


def test_the_memory_survives_a_gateway_restart_through_its_state_file(chronos_url: str, tmp_path: Path) -> None:
    settings = settings_for(services={"chronos": chronos_url}, clock_state_file=str(tmp_path / "clocks.json"))
    stream = ClockStream("host-restarted", seed=25)
    with serve_in_thread(create_app(settings)) as gateway:
        stream.until_warm(gateway)
        before = httpx.get(f"{gateway}/clocks/host-restarted").json()
    with serve_in_thread(create_app(settings)) as gateway:
        assert httpx.get(f"{gateway}/clocks/host-restarted").json() == before
        assert stream.ask(gateway)["memory"][0]["state"] == "remembered"


def test_a_state_file_that_cannot_be_read_is_discarded_with_a_log_line(
    chronos_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "clocks.json"
    path.write_text("{not json")
    settings = settings_for(services={"chronos": chronos_url}, clock_state_file=str(path))
    with (
        caplog.at_level(logging.WARNING, logger="chronotick.gateway.memory"),
        serve_in_thread(create_app(settings)) as gateway,
    ):
        assert ClockStream("host-fresh", seed=26).ask(gateway)["memory"][0]["state"] == "cold-start"
    assert any("unreadable" in record.getMessage() for record in caplog.records)


# --- In Redis ----------------------------------------------------------------------------------


def test_two_gateways_on_one_redis_share_a_clock(chronos_url: str, redis_server: RedisServer) -> None:
    settings = settings_for(services={"chronos": chronos_url}, clock_store_url=redis_server.url)
    stream = ClockStream("host-shared", seed=27)
    with serve_in_thread(create_app(settings)) as first, serve_in_thread(create_app(settings)) as second:
        scored = []
        for k in range(14):
            answer = stream.ask(first if k % 2 == 0 else second)
            scored.append(answer["memory"][0]["scored"])
        assert scored == sorted(scored) and scored[-1] >= WARM_AFTER  # each went on from the other's state
        time.sleep(0.2)  # the last save runs after the answer
        assert httpx.get(f"{first}/clocks/host-shared").json() == httpx.get(f"{second}/clocks/host-shared").json()
    assert redis_server.client().ttl("chronotick:clock:host-shared") > 0


def test_without_redis_the_gateway_answers_statelessly_and_comes_back_on_its_own(
    chronos_url: str, redis_server: RedisServer
) -> None:
    settings = settings_for(services={"chronos": chronos_url}, clock_store_url=redis_server.url)
    stream = ClockStream("host-outage", seed=28)
    with serve_in_thread(create_app(settings)) as gateway:
        for _ in range(5):
            stream.ask(gateway)
        time.sleep(0.2)
        redis_server.stop()
        outage = [stream.ask(gateway) for _ in range(3)]
        for answer in outage:
            assert answer["memory"][0] == {
                "clock_id": "host-outage",
                "state": "unavailable",
                "scored": 0,
                "newly_scored": 0,
                "handover": 0.0,
            }
            assert answer["degraded"] is True
            assert any("clock memory unavailable" in r for r in answer["reasons"]), answer["reasons"]
        assert httpx.get(f"{gateway}/clocks/host-outage").status_code == 503
        redis_server.start()  # its append-only file brings the clock back
        deadline = time.monotonic() + 5.0
        while (answer := stream.ask(gateway))["memory"][0]["state"] == "unavailable":
            assert time.monotonic() < deadline, "the gateway did not reconnect to Redis"
            time.sleep(0.2)
        assert answer["degraded"] is False
        assert answer["memory"][0]["clock_id"] == "host-outage" and answer["memory"][0]["newly_scored"] > 0


def test_a_state_in_redis_that_cannot_be_read_is_discarded(
    chronos_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.client().set("chronotick:clock:host-garbled", b"\x00not a state")
    settings = settings_for(services={"chronos": chronos_url}, clock_store_url=redis_server.url)
    with (
        caplog.at_level(logging.WARNING, logger="chronotick.gateway.memory"),
        serve_in_thread(create_app(settings)) as gateway,
    ):
        answer = ClockStream("host-garbled", seed=29).ask(gateway)
    assert answer["memory"][0]["state"] == "cold-start" and answer["degraded"] is False
    assert any("host-garbled" in r.getMessage() and "discarded" in r.getMessage() for r in caplog.records)
