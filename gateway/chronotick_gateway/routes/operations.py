"""What operators and load balancers ask: liveness, readiness, the fleet's models, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chronotick.contract import FleetModels
from chronotick.problems import ProblemError
from chronotick_gateway import online_ar
from chronotick_gateway.members import CLASSICAL_BY_NAME
from chronotick_gateway.routes import problem_responses
from chronotick_gateway.runtime import Gateway, running

router = APIRouter()


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get("/health/ready", responses=problem_responses({503: "The view of the fleet is stale."}))
async def ready(gateway: Gateway = Depends(running)) -> dict[str, object]:
    """Ready while the view of the fleet is current: the gateway can always answer (its classical
    members need no backend), but with a stale view it would send calls to services it
    wrongly thinks dead or alive, so it says 503 and a load balancer can send clients elsewhere."""
    fleet = gateway.fleet
    age_s = fleet.view_age_s()
    if fleet.view_is_stale():
        detail = (
            "no health-poll round has completed yet"
            if age_s is None
            else (f"the view of the fleet is stale: the last health-poll round completed {age_s:.1f} s ago")
        )
        raise ProblemError(503, "Not ready", detail, headers={"Retry-After": "1"})
    services = fleet.services.values()
    return {"status": "ready", "services_ready": [s.name for s in services if s.ready], "fleet_view_age_s": age_s}


@router.get("/models", response_model=FleetModels)
async def models(gateway: Gateway = Depends(running)) -> FleetModels:
    """Backends, their models and versions, breaker state, and the configuration version in force."""
    return FleetModels(
        services=[s.status() for s in gateway.fleet.services.values()],
        classical=list(CLASSICAL_BY_NAME),
        per_clock=[online_ar.NAME],
        config_version=gateway.fleet.config.version,
    )


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(gateway: Gateway = Depends(running)) -> Response:
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)
