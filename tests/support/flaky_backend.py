"""A real family service whose behaviour a test switches at run time, to make the gateway suffer.

``POST /control {"mode": ...}`` sets how ``/predict`` behaves from then on:
ok, slow (answers after 0.3 s), slow-series (after ``seconds_per_series`` for each series in the
call, 0.15 s unless the change names it: a backend whose work grows with what it is asked, which
the gateway cannot make cheaper by asking for several requests' series in one call), fail (503),
reject (422), hang (never answers), garbage (not JSON), nan (NaN in the forecast), biased (valid
forecasts BIAS_US off the line's: a member that is always wrong), down (``/health/ready`` and
``/predict`` both 503).
``GET /control`` says how many predict calls came.
Run it as ``uvicorn support.flaky_backend:app`` with ``tests`` on the path.
"""

from __future__ import annotations

import asyncio
import json
import re

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from chronotick.kit import create_app
from support.line_family import LineFamily

SLOW_S = 0.3
BIAS_US = 1e4
MODES = ("ok", "slow", "slow-series", "fail", "reject", "hang", "garbage", "nan", "biased", "down")
SECONDS_PER_SERIES = 0.15
_state: dict[str, object] = {"mode": "ok", "predict_calls": 0, "seconds_per_series": SECONDS_PER_SERIES}

app = create_app(LineFamily())


@app.middleware("http")
async def misbehave(request: Request, call_next):  # type: ignore[no-untyped-def]
    mode = _state["mode"]
    path = request.url.path
    if path == "/health/ready" and mode == "down":
        return JSONResponse({"detail": "down"}, status_code=503)
    if path != "/predict":
        return await call_next(request)
    _state["predict_calls"] = int(_state["predict_calls"]) + 1  # type: ignore[call-overload]
    if mode in ("fail", "down"):
        return JSONResponse({"detail": "backend unavailable"}, status_code=503)
    if mode == "reject":
        return JSONResponse({"detail": "refused"}, status_code=422)
    if mode == "hang":
        await asyncio.sleep(3600)
    if mode == "slow":
        await asyncio.sleep(SLOW_S)
    if mode == "slow-series":
        series = len(json.loads(await request.body())["series"])
        await asyncio.sleep(series * float(_state["seconds_per_series"]))  # type: ignore[arg-type]
    if mode == "garbage":
        return Response(b'{"forecasts": [', media_type="application/json")
    response = await call_next(request)
    if mode == "nan":
        body = b"".join([chunk async for chunk in response.body_iterator])
        poisoned = re.sub(rb'"mean_us":\[[-0-9.eE+]+', b'"mean_us":[NaN', body, count=1)
        return Response(poisoned, media_type="application/json")
    if mode == "biased":
        answer = json.loads(b"".join([chunk async for chunk in response.body_iterator]))
        for forecast in answer.get("forecasts", []):
            forecast["mean_us"] = [value + BIAS_US for value in forecast["mean_us"]]
            forecast["quantiles_us"] = [[value + BIAS_US for value in row] for row in forecast["quantiles_us"]]
        return JSONResponse(answer, status_code=response.status_code)
    return response


@app.post("/control")
async def control(change: dict[str, str]) -> dict[str, object]:
    if change.get("mode") not in MODES:
        return JSONResponse({"detail": f"mode must be one of {MODES}"}, status_code=422)  # type: ignore[return-value]
    _state["mode"] = change["mode"]
    _state["seconds_per_series"] = float(change.get("seconds_per_series", SECONDS_PER_SERIES))
    return dict(_state)


@app.get("/control")
async def control_state() -> dict[str, object]:
    return dict(_state)
