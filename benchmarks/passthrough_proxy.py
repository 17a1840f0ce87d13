"""The floor of any gateway built from uvicorn, FastAPI and one pooled ``httpx.AsyncClient``: a
proxy that forwards each POST /predict body to one backend (``CHRONOTICK_PROXY_BACKEND``) and
returns the backend's bytes, with no parsing, cleaning, planning or fusion in between.
``gateway_speed.py`` times it on the gateway's own member requests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response

BACKEND = os.environ["CHRONOTICK_PROXY_BACKEND"].rstrip("/")
_client: dict[str, httpx.AsyncClient] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with httpx.AsyncClient() as http:
        _client["http"] = http
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/predict")
async def predict(request: Request) -> Response:
    answer = await _client["http"].post(
        f"{BACKEND}/predict", content=await request.body(), headers={"content-type": "application/json"}
    )
    return Response(answer.content, status_code=answer.status_code, media_type="application/json")
