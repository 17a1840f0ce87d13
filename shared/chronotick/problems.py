"""Every error answer is RFC 9457 problem+json with a reason a client can act on.

Services and the gateway install the same handlers, so a client sees one error shape whichever
hop refused its request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chronotick.contract import Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"
logger = logging.getLogger("chronotick.problems")


class ProblemError(Exception):
    """Raise anywhere in a request to answer with this status and reason."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: Sequence[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(title=title, status=status, detail=detail, errors=list(errors) if errors else None)
        self.headers = headers


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def validation_problem(errors: Sequence[dict[str, str]]) -> ProblemError:
    first = errors[0]
    return ProblemError(
        422,
        "Invalid request",
        f"{first['field']}: {first['reason']}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        errors=errors,
    )


def _field_path(location: Sequence[Any]) -> str:
    # FastAPI prefixes body errors with "body"; clients think in terms of their JSON fields.
    parts = [str(p) for p in location if p != "body"]
    return ".".join(parts) or "body"


def _reason(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    # Pydantic wraps validator messages as "Value error, ..."; the prefix says nothing to a client.
    return message.removeprefix("Value error, ")


async def _on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": _field_path(e.get("loc", ())), "reason": _reason(e)} for e in exc.errors()]
    return _as_response(validation_problem(errors or [{"field": "body", "reason": "invalid"}]))


async def _on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    title = {404: "Not found", 405: "Method not allowed", 413: "Request too large"}.get(exc.status_code, "HTTP error")
    return problem_response(
        Problem(title=title, status=exc.status_code, detail=str(exc.detail)),
        headers=getattr(exc, "headers", None),
    )


def _as_response(exc: ProblemError) -> JSONResponse:
    return problem_response(exc.problem, exc.headers)


async def _on_problem(_: Request, exc: ProblemError) -> JSONResponse:
    return _as_response(exc)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(Problem(title="Internal error", status=500, detail=f"{type(exc).__name__}: {exc}"))


def install_problem_handlers(app: FastAPI, on_error: Callable[[int], None] | None = None) -> None:
    """Route every error through problem+json; ``on_error`` sees each status (for metrics)."""

    def counted(handler: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(request: Request, exc: Exception) -> JSONResponse:
            response: JSONResponse = await handler(request, exc)
            if on_error is not None:
                on_error(response.status_code)
            return response

        return wrapper

    app.add_exception_handler(RequestValidationError, counted(_on_validation_error))
    app.add_exception_handler(StarletteHTTPException, counted(_on_http_error))
    app.add_exception_handler(ProblemError, counted(_on_problem))
    app.add_exception_handler(Exception, counted(_on_unexpected))
