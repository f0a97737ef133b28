"""JSON logs with request ids.

One JSON object per line on stderr, each carrying the request id (`X-Request-ID`, accepted from
the caller or generated, echoed in the response) so a support ticket can be followed through
every line a request wrote. Outside a request the id comes from `request_id_context()` (CLI
commands, after-commit delivery), else it is null.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request

from app.observability import dberrors

REQUEST_ID_HEADER = "X-Request-ID"

# --------------------------------------------------------------------------- request ids

_request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("onramp_request_id", default=None)


def current_request_id() -> str | None:
    if has_request_context():
        rid = g.get("request_id")
        if rid:
            return rid
    return _request_id_var.get()


@contextmanager
def request_id_context(request_id: str | None = None) -> Iterator[str]:
    """Give log lines written outside a Flask request (CLI, workers) a correlation id."""
    rid = request_id or uuid.uuid4().hex
    token = _request_id_var.set(rid)
    try:
        yield rid
    finally:
        _request_id_var.reset(token)


def accept_request_id(incoming: str) -> str:
    # Accept a caller's id only if it is short and made of safe characters; it ends up in logs
    # and headers, so never echo arbitrary input.
    if 0 < len(incoming) <= 64 and all(c.isalnum() or c in "-_.:" for c in incoming):
        return incoming
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- JSON lines


class RequestIdFilter(logging.Filter):
    """Stamps every record with `request_id` (None outside a request and any id context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
    "request_id",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, request_id, then any extras.

    A database error, raised or passed as an argument, is shown without PostgreSQL's text (see
    `dberrors`); `db_error` then carries its SQLSTATE, condition, table and constraint.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": dberrors.safe_message(record.msg, record.args),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = _jsonable(value)
        exc = record.exc_info[1] if record.exc_info else None
        database_error = dberrors.first_database_error(exc) or dberrors.database_error_arg(record.args)
        if database_error is not None and "db_error" not in entry:
            entry["db_error"] = dberrors.database_error_fields(database_error)
        if exc is not None:
            entry["exc_type"] = type(exc).__name__
            entry["exc"] = dberrors.format_exception(exc).rstrip()
        return json.dumps(entry, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


_HANDLER_MARK = "_onramp_json_handler"


def configure_logging(level: int = logging.INFO) -> logging.Handler:
    """Install (once per process) the JSON handler on the root logger and return it."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, _HANDLER_MARK, False):
            return handler
    handler = _StderrHandler()
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    # Alembic announces each of its plugins at INFO on every `db upgrade`; only its real work matters.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # Plain-text handlers someone else installed would print every line twice, unstamped.
    for other in list(root.handlers):
        if other is not handler and type(other) is logging.StreamHandler:
            root.removeHandler(other)
    return handler


# --------------------------------------------------------------------------- request hooks


def install_request_hooks(app: Flask) -> None:
    """Give each request its id (header, Sentry tag) and write one access line per request."""

    @app.before_request
    def _request_id():
        g.request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER, ""))
        g.request_started = time.perf_counter()
        try:
            import sentry_sdk

            sentry_sdk.set_tag("request_id", g.request_id)
        except Exception:  # pragma: no cover
            pass

    @app.after_request
    def _echo_request_id(response):
        if g.get("request_id"):
            response.headers[REQUEST_ID_HEADER] = g.request_id
        started = g.get("request_started")
        if request.path != "/healthz":
            # The path only: a query string may carry whatever a caller pasted into the URL.
            logging.getLogger("app.request").info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
                },
            )
        return response
