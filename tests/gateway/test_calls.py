"""Requests in flight together ask a model in one call (``calls.CallCoalescer``), against a real
family service over HTTP: each request gets exactly the forecasts it would have got alone, an idle
model is asked at once, a refused call fails only the request at fault, and a request whose
deadline passed while it waited is not sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest

from chronotick.contract import SeriesForecast
from chronotick.kit import create_app as create_service
from chronotick_gateway.calls import CallCoalescer, CallKind
from chronotick_gateway.config import FleetConfig
from chronotick_gateway.fleet import BackendError, Fleet
from chronotick_gateway.metrics import GatewayMetrics
from chronotick_gateway.settings import GatewaySettings
from support.fleet_calls import metric_total
from support.line_family import LineFamily
from support.servers import serve_in_thread

HORIZON = 4
# The model's fixed cost per call: long enough that requests sent meanwhile find its call in flight.
CALL_S = 0.3


def series(seed: int, length: int = 24) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {"offsets_us": np.cumsum(rng.normal(0.0, 1.0, length)).tolist(), "interval_s": 1.0}


def kind_of(url: str, horizon: int = HORIZON) -> CallKind:
    return CallKind("line", url, "line", horizon, (), True)


def service_calls(url: str) -> float:
    """The /predict calls the service has answered so far."""
    return metric_total(httpx.get(f"{url}/metrics").text, "chronotick_requests")


Scenario = Callable[[CallCoalescer, str, Fleet], Awaitable[object]]


def run_with_service(scenario: Scenario, *, call_s: float = CALL_S) -> tuple[object, GatewayMetrics]:
    metrics = GatewayMetrics()

    async def main(url: str) -> object:
        settings = GatewaySettings(services={"line": url})
        async with httpx.AsyncClient() as http:
            fleet = Fleet(FleetConfig(settings, "1"), http, http, metrics)
            await fleet.poll_once()
            assert fleet.services["line"].ready
            return await scenario(CallCoalescer(fleet), url, fleet)

    with serve_in_thread(create_service(LineFamily(call_delay_s=call_s))) as url:
        return asyncio.run(main(url)), metrics


def means(forecasts: list[SeriesForecast]) -> list[list[float]]:
    return [list(f.mean_us) for f in forecasts]


def test_requests_that_want_a_model_while_its_call_is_out_go_together_in_the_next_each_answered_as_alone() -> None:
    async def scenario(calls: CallCoalescer, url: str, fleet: Fleet) -> object:
        loop = asyncio.get_running_loop()
        service = fleet.services["line"]
        deadline = loop.time() + 10.0
        settings = fleet.settings
        alone = [await calls.forecast(service, kind_of(url), [series(seed)], deadline, settings) for seed in range(5)]
        before = service_calls(url)
        started = time.perf_counter()
        first = asyncio.create_task(calls.forecast(service, kind_of(url), [series(0)], deadline, settings))
        await asyncio.sleep(CALL_S / 3)  # its call is out
        later = [
            asyncio.create_task(
                calls.forecast(service, kind_of(url), [series(seed), series(seed + 10)], deadline, settings)
            )
            for seed in range(1, 5)
        ]
        together = [await first] + [await task for task in later]
        return alone, together, service_calls(url) - before, time.perf_counter() - started

    (alone, together, sent, took_s), metrics = run_with_service(scenario)
    assert sent == 2  # the first request's call, then the four that came while it was out, in one
    assert took_s < 3 * CALL_S  # the second call went as soon as the first came back
    assert means(together[0][0]) == means(alone[0][0])
    for seed, (forecasts, retries) in enumerate(together[1:], start=1):
        assert retries == 0 and len(forecasts) == 2
        assert means(forecasts[:1]) == means(alone[seed][0])  # the same numbers as asked alone, in order
    text = generate_latest(metrics.registry).decode()
    assert metric_total(text, "chronotick_gateway_requests_per_call_count", backend="line") == 5 + 2
    assert metric_total(text, "chronotick_gateway_requests_per_call_sum", backend="line") == 5 + 1 + 4


def test_a_call_of_another_kind_never_waits_for_one_in_flight() -> None:
    async def scenario(calls: CallCoalescer, url: str, fleet: Fleet) -> object:
        deadline = asyncio.get_running_loop().time() + 10.0
        service = fleet.services["line"]
        first = asyncio.create_task(calls.forecast(service, kind_of(url), [series(1)], deadline, fleet.settings))
        await asyncio.sleep(CALL_S / 3)
        other = asyncio.create_task(
            calls.forecast(service, kind_of(url, HORIZON + 1), [series(2)], deadline, fleet.settings)
        )
        await asyncio.sleep(CALL_S / 3)
        sent_while_first_out = metric_total(
            generate_latest(fleet.metrics.registry).decode(), "chronotick_gateway_requests_per_call_count"
        )
        return await first, await other, sent_while_first_out

    (first, other, sent_while_first_out), _ = run_with_service(scenario)
    assert sent_while_first_out == 2  # the other horizon's call went out at once, not after the first
    assert len(first[0][0].mean_us) == HORIZON and len(other[0][0].mean_us) == HORIZON + 1


def test_a_call_the_service_refuses_is_asked_again_one_request_at_a_time_so_only_the_bad_one_fails() -> None:
    refused = {"offsets_us": [None, None, 1.0], "interval_s": 1.0}  # too few observed samples for the model

    async def scenario(calls: CallCoalescer, url: str, fleet: Fleet) -> object:
        deadline = asyncio.get_running_loop().time() + 10.0
        service = fleet.services["line"]
        first = asyncio.create_task(calls.forecast(service, kind_of(url), [series(1)], deadline, fleet.settings))
        await asyncio.sleep(CALL_S / 3)
        good = asyncio.create_task(calls.forecast(service, kind_of(url), [series(2)], deadline, fleet.settings))
        bad = asyncio.create_task(calls.forecast(service, kind_of(url), [refused], deadline, fleet.settings))
        await first
        with pytest.raises(BackendError) as problem:
            await bad
        return await good, problem.value, fleet.services["line"].breaker.state.value

    (good, problem, breaker), _ = run_with_service(scenario)
    assert len(good[0]) == 1 and len(good[0][0].mean_us) == HORIZON
    assert problem.status == "failed" and problem.refused and "HTTP 422" in problem.reason
    assert breaker == "closed"  # a refused request says nothing against the service


def test_a_request_whose_deadline_passes_while_it_waits_is_not_sent() -> None:
    async def scenario(calls: CallCoalescer, url: str, fleet: Fleet) -> object:
        loop = asyncio.get_running_loop()
        service = fleet.services["line"]
        before = service_calls(url)
        first = asyncio.create_task(
            calls.forecast(service, kind_of(url), [series(1)], loop.time() + 10.0, fleet.settings)
        )
        await asyncio.sleep(CALL_S / 3)
        with pytest.raises(BackendError) as problem:
            await calls.forecast(service, kind_of(url), [series(2)], loop.time() + CALL_S / 3, fleet.settings)
        await first
        return problem.value, service_calls(url) - before

    (problem, sent), _ = run_with_service(scenario)
    assert problem.status == "timeout" and "while the call waited" in problem.reason
    assert sent == 1


def test_a_model_whose_series_queue_behind_its_call_counts_as_busy_and_an_idle_one_does_not() -> None:
    async def scenario(calls: CallCoalescer, url: str, fleet: Fleet) -> object:
        loop = asyncio.get_running_loop()
        service = fleet.services["line"]
        await calls.forecast(service, kind_of(url), [series(0)], loop.time() + 10.0, fleet.settings)  # its pace
        idle = calls.busy(service, "line", remaining_s=1.0)
        out = [
            asyncio.create_task(
                calls.forecast(service, kind_of(url), [series(seed)], loop.time() + 10.0, fleet.settings)
            )
            for seed in range(1, 4)
        ]
        await asyncio.sleep(CALL_S / 3)  # one call of their three series out: another would wait for it
        queued = calls.busy(service, "line", remaining_s=1.0), calls.busy(service, "other", remaining_s=1.0)
        await asyncio.gather(*out)
        return idle, queued, calls.busy(service, "line", remaining_s=1.0)

    (idle, (line_queued, other_model), after), _ = run_with_service(scenario)
    assert not idle and line_queued and not other_model and not after
