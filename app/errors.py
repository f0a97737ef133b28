"""Typed errors and the one JSON error shape.

Every error the service answers with looks like:

    {"error": {"code": "validation_error", "message": "...", "details": {...}},
     "request_id": "..."}

Use cases raise `AppError` subclasses; `register_error_handlers` maps them (and Werkzeug's and
marshmallow's errors) to HTTP in one place.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify
from marshmallow import ValidationError as MarshmallowValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from app.observability.dberrors import database_error_fields, database_error_text

log = logging.getLogger(__name__)


# What a 503 tells the caller to wait before trying again.
RETRY_AFTER_SECONDS = 5


class AppError(Exception):
    status_code = 500
    code = "internal_error"
    message = "Internal server error"

    def __init__(self, message: str | None = None, *, details: Any = None, headers: dict | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = headers or {}


class ValidationError(AppError):
    status_code = 400
    code = "validation_error"
    message = "The request is not valid"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    message = "Authentication required"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    message = "You do not have the role this action requires"


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    message = "Not found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    message = "Conflict"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"
    message = "The request body must be JSON (Content-Type: application/json)"


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"
    message = "Too many attempts; slow down"


class PlanNotFound(NotFound):
    code = "plan_not_found"
    message = "No plan has this token"


class PlanExpired(AppError):
    status_code = 410
    code = "plan_expired"
    message = "This plan has expired; preview again for a new one"


class JobNotFound(NotFound):
    code = "not_found"
    message = "No retry job has this id"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    message = "The job cannot make this move from its current state"


class IdempotencyKeyReused(AppError):
    status_code = 422
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used with a different request"


class TriggerKeyBusy(AppError):
    status_code = 503
    code = "trigger_key_busy"
    message = "A replay of this trigger key is still running; deliver the trigger again shortly"

    def __init__(self, message: str | None = None, *, details: Any = None):
        super().__init__(message, details=details, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class DatabaseUnavailable(AppError):
    """PostgreSQL cannot be reached (refused, lost, restarting): nothing was decided, re-send."""

    status_code = 503
    code = "database_unavailable"
    message = "The database is unavailable; try again shortly"

    def __init__(self, message: str | None = None, *, details: Any = None):
        super().__init__(message, details=details, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def error_body(code: str, message: str, details: Any = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error, "request_id": g.get("request_id")}


def error_response(code: str, message: str, status: int, details: Any = None, headers=None):
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


# SQLSTATEs that mean "the server is not there for us right now": connection exceptions (08xxx)
# and the server shutting down, crashing or still starting (57P01..57P03).
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def is_database_unavailable(exc: BaseException) -> bool:
    """True for a lost or refused database connection, not for a failed statement."""
    # A statement that failed because the connection died surfaces later as another error (e.g.
    # SQLAlchemy's PendingRollbackError on the next use): look along the chain for the cause.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and _lost_connection(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _lost_connection(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "pgcode", None)
    if sqlstate is None:
        # libpq gave up before the server answered (refused, reset, timed out).
        return isinstance(exc, OperationalError)
    return sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(exc: AppError):
        return error_response(exc.code, exc.message, exc.status_code, exc.details, exc.headers)

    @app.errorhandler(MarshmallowValidationError)
    def _schema_error(exc: MarshmallowValidationError):
        return error_response("validation_error", "The request is not valid", 400, exc.messages)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        # RFC 9110: a 405 must say which methods the resource supports.
        allow = {k: v for k, v in exc.get_headers() if k == "Allow"} if status == 405 else None
        return error_response(_HTTP_CODES.get(status, "http_error"), exc.description or exc.name, status, headers=allow)

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        if not is_database_unavailable(exc):
            return _unexpected(exc)
        # Never the full text: it carries the SQL, and PostgreSQL's message can quote row values.
        log.error("database unavailable: %s", database_error_text(exc), extra={"db_error": database_error_fields(exc)})
        return _app_error(DatabaseUnavailable())

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if is_database_unavailable(exc):
            # E.g. SQLAlchemy's PendingRollbackError after the connection died mid-transaction.
            return _app_error(DatabaseUnavailable())
        # Sentry's Flask integration has already seen the exception; log it with the request id.
        # A database error's text is withheld on the way out, in the JSON formatter and in Sentry's
        # before_send (app/observability/dberrors.py); its SQLSTATE and table are logged instead.
        log.exception("unhandled error")
        return error_response("internal_error", "Internal server error", 500)
