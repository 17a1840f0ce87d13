"""The agent's measuring step against a real UDP NTP server: rejected replies are counted and never
become measurements, and a failing source is left alone until its backoff has passed. Its forecast
step against a real HTTP stand-in of the gateway: the request names the agent's clock."""

from __future__ import annotations

import asyncio

from chronotick.agent.metrics import AgentMetrics
from chronotick.agent.runner import Agent, Backoff, build_source
from chronotick.agent.settings import AgentSettings
from chronotick.agent.state import Slot
from chronotick.client import AsyncClient
from support.clock_memory import ClockMemoryStandIn, clock_memory_app
from support.ntp_server import Reply, ntp_server, server_reply
from support.servers import free_port, serve_in_thread


def test_rejected_replies_are_counted_never_measured_and_the_source_backs_off() -> None:
    async def scenario(port: int, replies: list[Reply]) -> tuple[Agent, list[float | None]]:
        settings = AgentSettings(
            source="ntp",
            ntp_server="127.0.0.1",
            ntp_port=port,
            source_timeout_s=0.5,
            covariates=False,
            gateway_url=f"http://127.0.0.1:{free_port()}",
        )
        async with AsyncClient(str(settings.gateway_url)) as client:
            agent = Agent(settings, build_source(settings), client, AgentMetrics())
            await agent.measure_once()
            good = agent.last_measurement
            replies.append(server_reply(stratum=16))
            await agent.measure_once()  # rejected: the window gets a missing slot, nothing else
            assert agent.last_measurement is good
            await agent.measure_once()  # within the backoff: the source is not asked
        return agent, [slot.offset_us for slot in agent.window.slots()]

    with ntp_server() as (port, replies):
        agent, offsets = asyncio.run(scenario(port, replies))
    value = agent.metrics.registry.get_sample_value
    assert value("chronotick_agent_measurements_total") == 1.0
    assert value("chronotick_agent_rejected_replies_total", {"reason": "stratum"}) == 1.0
    assert offsets[0] is not None and offsets[1:] == [None, None]


def test_backoff_doubles_up_to_its_cap_and_says_when_it_grew() -> None:
    backoff = Backoff(base_s=1.0, max_s=5.0)
    assert [backoff.failed() for _ in range(5)] == [(1.0, True), (2.0, True), (4.0, True), (5.0, True), (5.0, False)]
    assert backoff.succeeded() == 5
    assert backoff.failed() == (1.0, True)


def test_the_forecast_request_names_the_agents_clock_and_when_its_window_starts() -> None:
    async def scenario(url: str) -> Agent:
        settings = AgentSettings(source="ntp", covariates=False, gateway_url=url, clock_id="host-a.eth0")
        async with AsyncClient(url) as client:
            agent = Agent(settings, build_source(settings), client, AgentMetrics())
            for i in range(10):
                agent.window.append(Slot(1_700_000_000.0 + i, float(i), {}))
            await agent.forecast_once("short", Backoff(1.0, 5.0))
        return agent

    stand_in = ClockMemoryStandIn()
    with serve_in_thread(clock_memory_app(stand_in)) as url:
        agent = asyncio.run(scenario(url))
    [(_, path, body)] = stand_in.requests
    assert path == "/predict"
    assert body["series"][0]["clock_id"] == "host-a.eth0"
    assert body["series"][0]["start_s"] == 1_700_000_000.0 and body["series"][0]["interval_s"] == 1.0
    assert stand_in.clocks == {"host-a.eth0": 1}
    assert len(agent.forecasts) == 1 and agent.forecasts[0].origin_s == 1_700_000_009.0
