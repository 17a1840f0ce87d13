"""What the gateway remembers of a clock: its report, forgetting it, and scoring its forecasts on
measurements posted without a forecast."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Path, Response

from chronotick.contract import CLOCK_ID_PATTERN, ClockObservations, ClockReport, ObservationsScored
from chronotick.grid import as_array
from chronotick.problems import ProblemError
from chronotick_gateway.clockstore import StoreUnavailable
from chronotick_gateway.routes import PROBLEMS, problem_responses
from chronotick_gateway.runtime import Gateway, running

_T = TypeVar("_T")
CLOCK_PROBLEMS = (
    problem_responses({404: "No clock of this id is remembered.", 503: "The clock memory cannot be reached."})
    | PROBLEMS
)
CLOCK_ID = Path(min_length=1, max_length=128, pattern=CLOCK_ID_PATTERN, description="The clock's id.")

router = APIRouter(prefix="/clocks", responses=CLOCK_PROBLEMS)


@router.get("/{clock_id}", response_model=ClockReport)
async def clock_report(clock_id: str = CLOCK_ID, gateway: Gateway = Depends(running)) -> ClockReport:
    """What the gateway remembers of a clock, per scored horizon: each member's weight and realised
    error, the fused error, and the realised coverage of the remembered 80 % and 95 % intervals."""
    report = await _from_store(gateway, gateway.memory.report(clock_id))
    if report is None:
        raise _unknown_clock(clock_id)
    return report


@router.delete("/{clock_id}", status_code=204)
async def forget_clock(clock_id: str = CLOCK_ID, gateway: Gateway = Depends(running)) -> Response:
    """Forget a clock (after a hardware change, say): its next request starts it afresh."""
    gateway.reuse.forget(clock_id)
    if not await _from_store(gateway, gateway.memory.forget(clock_id)):
        raise _unknown_clock(clock_id)
    return Response(status_code=204)


@router.post("/{clock_id}/observations", response_model=ObservationsScored)
async def observe_clock(
    observations: ClockObservations, clock_id: str = CLOCK_ID, gateway: Gateway = Depends(running)
) -> ObservationsScored:
    """Measurements of a remembered clock that score its pending forecasts, without a forecast."""
    clock = await _from_store(
        gateway,
        gateway.memory.observe(clock_id, np.asarray(observations.timestamps_s), as_array(observations.offsets_us)),
    )
    if clock is None:
        raise _unknown_clock(clock_id)
    return ObservationsScored(clock_id=clock_id, scored=clock.newly_scored, pending=len(clock.state.pending))


async def _from_store(gateway: Gateway, action: Awaitable[_T]) -> _T:
    try:
        return await action
    except StoreUnavailable as error:
        gateway.metrics.memory_unavailable.inc()
        raise ProblemError(503, "Clock memory unavailable", str(error), headers={"Retry-After": "1"}) from error


def _unknown_clock(clock_id: str) -> ProblemError:
    return ProblemError(
        404,
        "Unknown clock",
        f"no clock {clock_id!r} is remembered here (never asked about, expired after being idle, or forgotten)",
    )
