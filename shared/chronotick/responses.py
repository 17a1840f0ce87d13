"""Answers built from contract models, serialised once.

FastAPI, given a model to return, validates it again against the route's ``response_model`` and
serialises it in a second pass. Our answers are contract models built by our own code, already
valid: ``model_json_response`` writes them in one pass of pydantic-core, on every forecast's path.
The route keeps its ``response_model`` for the OpenAPI schema.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def model_json_response(model: BaseModel) -> Response:
    """``model`` as a 200 JSON answer (NaN and infinities as ``null``, as FastAPI would write them)."""
    return Response(model.model_dump_json(), media_type="application/json")
