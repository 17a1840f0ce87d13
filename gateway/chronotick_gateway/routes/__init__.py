"""The gateway's HTTP side: one router per concern, thin over the functions that do the work.

``predict`` (POST /predict), ``clocks`` (what is remembered of a clock), ``operations`` (health,
the fleet's models, Prometheus metrics). ``app.create_app`` includes them; the API key, where one
is set, guards ``predict`` and ``clocks`` (``api_key_guard``).
"""

from __future__ import annotations

import secrets

from fastapi import Depends, Security
from fastapi.params import Depends as Dependency
from fastapi.security import APIKeyHeader

from chronotick.contract import Problem
from chronotick.problems import PROBLEM_MEDIA_TYPE, ProblemError


def problem_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for problem+json answers of these statuses."""
    return {
        status: {"model": Problem, "description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}
        for status, description in descriptions.items()
    }


PROBLEMS = problem_responses(
    {
        401: "Missing or wrong API key.",
        413: "Request body too large.",
        422: "Invalid request: each field and the reason.",
    }
)


def api_key_guard(api_key: str | None) -> list[Dependency]:
    """The dependencies that demand ``api_key`` in X-API-Key; none without a key. The schema
    advertises the key only when there is one: a client (or schemathesis) reading it must not be
    told to authenticate against a gateway that accepts anyone."""
    if api_key is None:
        return []
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The gateway's API key.")

    # async: a plain def would be sent to a worker thread on every request, for a string compare.
    async def require_api_key(given: str | None = Security(header)) -> None:
        if not secrets.compare_digest(given or "", api_key):
            raise ProblemError(
                401, "Unauthorized", "missing or wrong X-API-Key header", headers={"WWW-Authenticate": "APIKey"}
            )

    return [Depends(require_api_key)]
