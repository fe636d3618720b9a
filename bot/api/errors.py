"""Errors of the REST API: one JSON shape for every failure, never a stack trace.

Every error answers ``{"error": {"code": ..., "message": ..., "field": ...}}``
(``field`` when one field of the request is at fault).  :class:`ApiError` is
raised by the routes; :func:`install` maps FastAPI's own errors (404, 405,
request validation) to the same shape, and :class:`SafeRoute` turns any
unexpected exception into a 500 with a generic message (logged by type only:
exception texts may quote personal data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["KEY_TO_CHECK", "ApiError", "ErrorBody", "SafeRoute", "error_responses", "install"]

log = logging.getLogger(__name__)

KEY_TO_CHECK = "api_key_to_check"  # the request state's attribute holding a bot.api.deps.KeyToCheck


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="A stable, machine-readable error code.", examples=["invalid"])
    message: str = Field(description="What is wrong, for people; never quotes personal data.",
                         examples=["missing required value"])
    field: str | None = Field(default=None, description="The request field at fault, when there is one.",
                              examples=["country"])


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"error": {"code": "invalid", "message": "unknown country 'XX'", "field": "country"}}]})

    error: ErrorDetail


class ApiError(Exception):
    """An error answered as JSON with ``status``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers)


_DESCRIPTIONS = {
    401: "No API key, or an unknown or revoked one (`Authorization: Bearer KEY`).",
    403: "The API key lacks the scope this operation needs.",
    404: "No such resource.",
    409: "Conflicts with what is stored (e.g. the same payment_id with different values).",
    422: "The request is not valid; `field` names the field at fault.",
    500: "An unexpected error (no details are given).",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses (plus 401, 422 and 500, which any call can get)."""
    wanted = sorted({401, 422, 500, *statuses})
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in wanted}


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
               422: "invalid"}


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in {"body", "query", "path", "header"}]
    return ".".join(parts) or None


def _validation_message(err: dict[str, Any]) -> str:
    kind = str(err.get("type", ""))
    if kind == "missing":
        return "missing required value"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "json_invalid":
        return "the body is not valid JSON"
    # pydantic's messages name the expected type, never echo the input value
    return str(err.get("msg", "invalid value"))


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    pending = getattr(request.state, KEY_TO_CHECK, None)
    if pending is not None:  # a key not checked yet answers its 401 or 403 before the 422
        try:
            await run_in_threadpool(pending.check_alone)
        except ApiError as err:
            return await _on_api_error(request, err)
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    field = None if first.get("type") == "json_invalid" else _field(tuple(first.get("loc", ())))
    return error_response(422, "invalid", _validation_message(first), field)


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, exc.message, exc.field, headers)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI's "error parsing the body": not UTF-8 or not JSON
        return error_response(422, "invalid", "the body is not valid JSON (UTF-8)")
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = {404: "no such resource", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}) or None)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http)


class SafeRoute(APIRoute):
    """A route whose unexpected exceptions become a JSON 500 (never re-raised, never a trace)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def safe(request: Request) -> Response:
            try:
                return await handler(request)
            except (ApiError, StarletteHTTPException, RequestValidationError):
                raise
            except Exception as exc:
                log.error("api %s %s failed (%s)", request.method, self.path, type(exc).__name__)
                return error_response(500, "internal", "an unexpected error occurred")

        return safe
