"""The agent's measuring step against a real UDP NTP server: rejected replies are counted and never
become measurements, and a failing source is left alone until its backoff has passed."""

from __future__ import annotations

import asyncio

from chronotick.agent.metrics import AgentMetrics
from chronotick.agent.runner import Agent, Backoff, build_source
from chronotick.agent.settings import AgentSettings
from chronotick.client import AsyncClient
from support.ntp_server import Reply, ntp_server, server_reply
from support.servers import free_port


def test_rejected_replies_are_counted_never_measured_and_the_source_backs_off() -> None:
    async def scenario(port: int, replies: list[Reply]) -> tuple[Agent, list[float | None]]:
        settings = AgentSettings(source="ntp", ntp_server="127.0.0.1", ntp_port=port, source_timeout_s=0.5,
                                 covariates=False, gateway_url=f"http://127.0.0.1:{free_port()}")
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
