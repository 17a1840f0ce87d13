"""The running gateway: what lives from start-up to shutdown, and what its routes depend on.

``app.create_app`` makes one at start-up (its lifespan: the HTTP pools, the fleet's view, the clock
store, the classical helper's processes) and puts it on the app's state; a route takes it with
``Depends(running)``. The settings of a request are those in force when it started
(``fleet.config.settings``: a reload changes them); ``settings_at_start`` are those read once.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from chronotick_gateway.admission import Finishing
from chronotick_gateway.background import LoopLag
from chronotick_gateway.calls import CallCoalescer
from chronotick_gateway.classical_helper import ClassicalHelper
from chronotick_gateway.clocks import ClockMemory
from chronotick_gateway.fleet import Fleet
from chronotick_gateway.metrics import GatewayMetrics
from chronotick_gateway.reuse import ForecastReuse
from chronotick_gateway.settings import GatewaySettings


@dataclass(frozen=True)
class Gateway:
    settings_at_start: GatewaySettings
    metrics: GatewayMetrics
    loop_lag: LoopLag  # how late the event loop wakes lately: a request's deadline allows for it
    finishing: Finishing  # the requests in flight, and what finishing one takes after its members
    fleet: Fleet
    calls: CallCoalescer  # the model calls, shared by requests that want the same model
    memory: ClockMemory
    reuse: ForecastReuse  # warm clocks' kept model forecasts
    classical_helper: ClassicalHelper | None  # the classical members in other processes, if configured


def running(request: Request) -> Gateway:
    """The gateway serving ``request`` (a dependency of every route that needs it)."""
    gateway: Gateway = request.app.state.gateway
    return gateway
