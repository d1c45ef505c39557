"""Every error becomes a JSON answer ``{"error": {"type", "message"}}``; nothing leaks.

The Open Inference Protocol's routes (``/v2`` and below) answer in that protocol's own
error shape instead, ``{"error": "<message>"}``, and with 400 where the rest of the API
answers 422 (the protocol's "typically 400"); authentication, permission, size and rate
errors keep their status there too (401, 403, 413, 429).

User errors (:class:`~insightray.errors.InsightRayError`) keep their one-line message and get
a 4xx status by type (413 oversized, 415 wrong type, 422 malformed input, 401, 403, 404,
409, 429 with ``Retry-After``, 503 for a model or backend that is not there). Anything else is
a bug: it is logged with its type and place only (never its message, which could quote
patient data) and answered 500 without a stack trace. The service keeps running either way.
"""

from __future__ import annotations

import logging
import math
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from insightray.errors import (
    AuthenticationError,
    ConflictError,
    EmptyFileError,
    ImageSizeError,
    InputError,
    InsightRayError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    StorageError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
    UpstreamError,
)

__all__ = ["error_body", "error_response", "install_error_handlers", "is_oip_path", "status_of"]

log = logging.getLogger("insightray.serving")

#: HTTP status per error type; the most specific class in an error's MRO wins.
STATUS_BY_ERROR: dict[type[InsightRayError], int] = {
    PayloadTooLargeError: 413,
    ImageSizeError: 413,
    UnsupportedFormatError: 415,
    UnsupportedTransferSyntaxError: 415,
    EmptyFileError: 422,
    InputError: 422,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    RateLimitedError: 429,
    ServiceUnavailableError: 503,
    UpstreamError: 502,
    StorageError: 500,
}
#: Errors not listed (ConfigError from a request body, for instance) are the caller's: 422.
DEFAULT_STATUS = 422


def status_of(error: InsightRayError) -> int:
    """The HTTP status of a user-facing error."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return DEFAULT_STATUS


def error_body(kind: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON shape of every error answer outside the Open Inference Protocol."""
    return {"error": {"type": kind, "message": message}}


def is_oip_path(path: str) -> bool:
    """Whether ``path`` is one of the Open Inference Protocol's routes (``/v2...``)."""
    return path == "/v2" or path.startswith("/v2/")


def error_response(
    path: str, kind: str, message: str, status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error answer for a request on ``path``: the protocol's shape on ``/v2`` routes."""
    if is_oip_path(path):
        status = 400 if status == DEFAULT_STATUS else status
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return JSONResponse(error_body(kind, message), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(InsightRayError)
    async def insightray_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, InsightRayError)
        return _insightray_response(request.url.path, error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        problems = []
        for item in error.errors()[:5]:
            where = ".".join(str(part) for part in item.get("loc", ()))
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        message = "request: " + "; ".join(problems) + ". Fix the request and retry."
        return error_response(request.url.path, "ValidationError", message, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if isinstance(error.__cause__, InsightRayError):  # e.g. a body over the size limit
            return _insightray_response(request.url.path, error.__cause__)
        kind = {404: "NotFoundError", 405: "MethodNotAllowed"}.get(error.status_code, "HTTPError")
        detail = error.detail if isinstance(error.detail, str) else "request refused"
        message = f"{request.url.path}: {detail}."
        return error_response(
            request.url.path, kind, message, error.status_code, dict(error.headers or {})
        )

    @app.exception_handler(DataError)
    async def unstorable_value(request: Request, error: Exception) -> JSONResponse:
        # PostgreSQL refuses some values that SQLite takes: a NUL character in an id, a name
        message = (
            "request: it holds a value the database cannot look up or store (a NUL "
            "character?). Fix the request and retry."
        )
        return error_response(request.url.path, "InputError", message, 422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        frame = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
        place = f"{frame[0].filename}:{frame[0].lineno}" if frame else "?"
        log.error("internal error %s at %s on %s", type(error).__name__, place, request.url.path)
        message = "internal error: the request failed on the server. Report it; nothing was lost."
        return error_response(request.url.path, "InternalError", message, 500)


def _insightray_response(path: str, error: InsightRayError) -> JSONResponse:
    headers = {}
    if isinstance(error, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    if isinstance(error, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(path, type(error).__name__, str(error), status_of(error), headers)
