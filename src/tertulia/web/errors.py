"""Errors to HTTP replies, in one place: DRF-shaped JSON bodies with a stable ``code``."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from tertulia.errors import Conflict, ServiceUnavailable, TertuliaError
from tertulia.web.deps import services
from tertulia.web.responses import JSONBody

log = structlog.get_logger(__name__)

_HTTP_CODES = {
    400: "invalid",
    403: "forbidden",
    404: "not_found",
    405: "method",
    413: "too_large",
    415: "media_type",
    416: "range",
    429: "throttled",
}


async def _tertulia_error(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, TertuliaError)
    if isinstance(exc, ServiceUnavailable):
        # (an outage, not a bug: a warning without traceback, one every few seconds)
        services(request).outages.warning(
            log,
            f"{exc.service} unreachable; answered 503",
            method=request.method,
            path=request.url.path,
            error=exc.reason,
        )
    elif isinstance(exc, Conflict):
        log.warning(
            "constraint refused a change; answered 409",
            method=request.method,
            path=request.url.path,
            reason=exc.reason,
        )
    return JSONBody(exc.body(), status_code=exc.status, headers=exc.headers())


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str | None:
    """The methods the request's path serves, asked of the routes one method at a time
    (None when no route answers for any: a mounted app's own 405, say).

    Starlette's 405 names only the methods of the first route matching the path, and a
    path here has several (one per method group, the hidden ``HEAD`` ones among them).
    """
    routes = request.app.router.routes
    served = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(served) or None


async def _http_error(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, HTTPException)
    detail: Any = exc.detail
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        detail = f'Method "{request.method}" not allowed.'
        allowed = _allowed_methods(request)
        if allowed is not None:
            headers = {**(headers or {}), "Allow": allowed}
    elif exc.status_code == 404 and detail == "Not Found":
        detail = "Not found."
    code = _HTTP_CODES.get(exc.status_code, "error")
    return JSONBody({"detail": detail, "code": code}, status_code=exc.status_code, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, RequestValidationError)
    body: dict[str, Any] = {}
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        body.setdefault(".".join(loc) or "non_field_errors", []).append(
            error.get("msg", "Invalid.")
        )
    body["code"] = "invalid"
    return JSONBody(body, status_code=400)


async def _unexpected(request: Request, exc: Exception) -> JSONBody:
    log.exception(
        "unexpected error",
        method=request.method,
        path=request.url.path,
        conversation_id=request.path_params.get("conversation_id"),
    )
    return JSONBody({"detail": "Internal server error.", "code": "internal"}, status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers (found by the exception's class MRO)."""
    app.add_exception_handler(TertuliaError, _tertulia_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
