"""Which members a request asks: those it names (or the configuration names for its horizon), less
those whose service cannot answer now, and, on the warm path, less those its clocks give no weight.
"""

from __future__ import annotations

from chronotick.contract import BackendResult, BackendStatus, ModelInfo
from chronotick.problems import validation_problem
from chronotick_gateway import online_ar
from chronotick_gateway.clocks import RecalledClock
from chronotick_gateway.fleet import Fleet, Service
from chronotick_gateway.members import CLASSICAL_BY_NAME
from chronotick_gateway.memory import REPROBE_EVERY, weightless_members


def select_members(
    fleet: Fleet, wanted: list[str] | None, *, configured: bool = False
) -> tuple[list[tuple[Service, ModelInfo]], list[str], list[BackendResult]]:
    """The remote members and classical members to ask, and results for those that cannot answer.

    An unknown name in a request is the client's mistake (422); in the configuration
    (``configured``) it is a member whose service has not told its models yet: absent, not an error.
    """
    remote: list[tuple[Service, ModelInfo]] = []
    absent: list[BackendResult] = []
    known = set(CLASSICAL_BY_NAME) | {online_ar.NAME} | set(fleet.services)
    for service in fleet.services.values():
        known |= {m.name for m in service.info.models} if service.info else set()
    if wanted is not None:
        unknown = [name for name in wanted if name not in known]
        if unknown and not configured:
            raise validation_problem(
                [{"field": "backends", "reason": f"unknown backends {unknown}; known: {sorted(known)}"}]
            )
        absent += [
            BackendResult(
                name=name,
                service=None,
                status="not_ready",
                reason="configured for this horizon, but no ready service offers it",
            )
            for name in unknown
        ]
    for service in fleet.services.values():
        models = service.info.models if service.info else []
        chosen = [m for m in models if wanted is None or service.name in wanted or m.name in wanted]
        if wanted is not None and not chosen and service.name not in wanted:
            continue
        if not service.ready or not service.breaker.allows_requests:
            status: BackendStatus = "not_ready" if not service.ready else "circuit_open"
            reason = service.last_error if not service.ready else "circuit breaker open after repeated failures"
            names = [m.name for m in chosen] or [service.name]
            absent += [BackendResult(name=n, service=service.name, status=status, reason=reason) for n in names]
            continue
        remote += [(service, model) for model in chosen]
    classical = [name for name in CLASSICAL_BY_NAME if wanted is None or name in wanted]
    return remote, classical, absent


def rest_weightless(
    remote: list[tuple[Service, ModelInfo]],
    classical: list[str],
    warm: list[RecalledClock],
    horizon: int,
) -> tuple[list[tuple[Service, ModelInfo]], list[BackendResult]]:
    """The remote members worth asking, and those left out: on the warm path (``warm``: the request's
    clocks), members that carry no remembered weight at this forecast's horizons on any of its clocks
    are not asked, but on every REPROBE_EVERY-th request of a clock, which keeps their record current."""
    if not warm or any(c.state.requests % REPROBE_EVERY == 0 for c in warm):
        return remote, []
    names = [model.name for _, model in remote] + classical
    resting = set.intersection(*(weightless_members(c.state, names, horizon) for c in warm))
    reason = f"no remembered weight on this clock at these horizons; asked again every {REPROBE_EVERY}th request"
    return (
        [(service, model) for service, model in remote if model.name not in resting],
        [
            BackendResult(name=model.name, service=service.name, status="skipped", reason=reason)
            for service, model in remote
            if model.name in resting
        ],
    )
