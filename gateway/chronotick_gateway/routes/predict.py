"""POST /predict: the fused forecast of a request's series (its path: ``chronotick_gateway.predict``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from chronotick.contract import FusedPredictRequest, FusedPredictResponse
from chronotick_gateway import predict as path
from chronotick_gateway.routes import PROBLEMS
from chronotick_gateway.runtime import Gateway, running

router = APIRouter()


@router.post("/predict", response_model=FusedPredictResponse, responses=PROBLEMS)
async def predict(query: FusedPredictRequest, request: Request, gateway: Gateway = Depends(running)) -> Response:
    """Forecast every series with the requested backends (by default those configured for its
    horizon, else every ready one) and fuse them by calibrated inverse variance."""
    gateway.finishing.in_flight += 1
    try:
        # Noted by app.StampArrival before the body was read: the deadline counts from then.
        return await path.answer(gateway, query, getattr(request.state, "arrived_at", None))
    finally:
        gateway.finishing.in_flight -= 1
