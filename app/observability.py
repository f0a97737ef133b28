"""Structured logging and error reporting (Sentry).

Logs: one JSON object per line on stderr, each carrying the request id (`X-Request-ID`, accepted
from the caller or generated, echoed in the response) so a support ticket can be followed through
every line a request wrote. Outside a request the id comes from `request_id_context()` (CLI
commands, after-commit delivery), else it is null.

Sentry: on only when `SENTRY_DSN` is set. Flask and SQLAlchemy integrations, release and
environment tags, no default PII, and a scrubber that removes credentials, cookies, request
bodies and trigger payloads before anything leaves the process. Without a DSN nothing is sent and
`capture_replay_failure` is a harmless no-op.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import traceback
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request

from app.config import Config

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_FILTERED = "[Filtered]"

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


def _accept_request_id(incoming: str) -> str:
    # Accept a caller's id only if it is short and made of safe characters; it ends up in logs
    # and headers, so never echo arbitrary input.
    if 0 < len(incoming) <= 64 and all(c.isalnum() or c in "-_.:" for c in incoming):
        return incoming
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- JSON logs


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
    """One JSON object per record: ts, level, logger, message, request_id, then any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = _jsonable(value)
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
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


def log_batch_summary(
    *,
    batch_id: str,
    actor: str | None,
    dry_run: bool,
    summary: Mapping[str, Any],
    duration_ms: int | None = None,
    request: Mapping[str, Any] | None = None,
    logger: logging.Logger | None = None,
) -> None:
    """One INFO line per retry-batch call with its counts, for dashboards and the on-call log.

    `request` may be the normalised request; only its scope fields are logged (never payloads).
    """
    fields: dict[str, Any] = {
        "event": "retry_batch.summary",
        "batch_id": str(batch_id),
        "actor": actor,
        "dry_run": bool(dry_run),
    }
    for key in ("matched", "eligible", "selected", "skipped", "success", "error", "remaining"):
        if key in summary:
            fields[key] = summary[key]
    if summary.get("skipped_by_reason") is not None:
        fields["skipped_by_reason"] = dict(summary["skipped_by_reason"])
    if duration_ms is not None:
        fields["duration_ms"] = int(duration_ms)
    if request:
        for key in (
            "since",
            "until",
            "vendor_ids",
            "ramp_uuids",
            "error_pattern",
            "suppress_notifications",
            "force_retry",
            "max_attempts",
            "workflow_version",
        ):
            if key in request:
                fields[key] = request[key]
        if request.get("execution_uuids") is not None:
            fields["execution_uuids_count"] = len(request["execution_uuids"])
    (logger or logging.getLogger("app.retries")).info(
        "retry batch %s: %s matched, %s selected, %s success, %s error, %s remaining%s",
        fields["batch_id"],
        summary.get("matched"),
        summary.get("selected"),
        summary.get("success"),
        summary.get("error"),
        summary.get("remaining"),
        " (dry run)" if dry_run else "",
        extra=fields,
    )


# --------------------------------------------------------------------------- Sentry scrubbing

# Header names compared lower-cased with '-' and '_' folded together (WSGI environ keys use '_').
_SECRET_HEADERS = frozenset(
    h.replace("-", "_")
    for h in (
        "authorization",
        "proxy-authorization",
        "or-internal-api-auth-secret",
        "x-onramp-signature",
        "cookie",
        "set-cookie",
        "x-api-key",
    )
)
# Keys whose values never leave the process, wherever they appear in extra/contexts/breadcrumbs.
_SECRET_KEY_PARTS = (
    "secret",
    "password",
    "passwd",
    "token",
    "authorization",
    "cookie",
    "session",
    "signature",
    "api_key",
    "apikey",
    "credential",
    "private_key",
)
_PAYLOAD_KEYS = frozenset({"trigger_payload", "payload", "data", "body", "db.params", "request_body"})


def _is_secret_key(key: str) -> bool:
    k = key.lower().replace("-", "_")
    if k in _SECRET_HEADERS or k in _PAYLOAD_KEYS:
        return True
    return any(part in k for part in _SECRET_KEY_PARTS)


def _scrub(value: Any, depth: int = 0) -> Any:
    """Replace secret-like and payload-like keys anywhere below `value`."""
    if depth > 20:
        return _FILTERED
    if isinstance(value, dict):
        return {
            k: (_FILTERED if isinstance(k, str) and _is_secret_key(k) else _scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v, depth + 1) for v in value]
    return value


def _scrub_request(req: dict) -> dict:
    # Bodies may hold trigger payloads; cookies hold sessions; query strings may hold tokens.
    req = dict(req)
    for key in ("data", "cookies", "query_string", "env"):
        if key in req:
            req[key] = _FILTERED
    headers = req.get("headers")
    if isinstance(headers, dict):
        req["headers"] = {
            k: (_FILTERED if k.lower().replace("-", "_") in _SECRET_HEADERS or _is_secret_key(k) else v)
            for k, v in headers.items()
        }
    return req


def _scrub_breadcrumb_data(crumb: dict) -> dict:
    crumb = dict(crumb)
    if isinstance(crumb.get("data"), dict):
        # Keep a breadcrumb's shape (category, message) but scrub what is inside its data.
        crumb["data"] = _scrub(crumb["data"])
    return crumb


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """`before_send`: strip credentials, bodies, cookies and payloads from an error event."""
    if isinstance(event.get("request"), dict):
        event["request"] = _scrub_request(event["request"])
    for key in ("extra", "contexts", "tags"):
        if isinstance(event.get(key), dict):
            event[key] = _scrub(event[key])
    crumbs = event.get("breadcrumbs")
    if isinstance(crumbs, dict) and isinstance(crumbs.get("values"), list):
        crumbs["values"] = [_scrub_breadcrumb_data(c) if isinstance(c, dict) else c for c in crumbs["values"]]
    elif isinstance(crumbs, list):
        event["breadcrumbs"] = [_scrub_breadcrumb_data(c) if isinstance(c, dict) else c for c in crumbs]
    # Frame locals can hold a payload or an integration object; they are not collected at all
    # (include_local_variables=False), this is the belt to those braces.
    for exc in (event.get("exception") or {}).get("values") or []:
        for frame in (exc.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    return event


def scrub_breadcrumb(crumb: dict, hint: dict | None = None) -> dict:
    """`before_breadcrumb`: the same rules, applied as breadcrumbs are recorded."""
    return _scrub_breadcrumb_data(crumb)


def sentry_options(config: Config) -> dict[str, Any]:
    """The keyword arguments `sentry_sdk.init` gets for this config."""
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

    return dict(
        dsn=config.sentry_dsn,
        release=config.release,
        environment=config.environment,
        integrations=[FlaskIntegration(), SqlalchemyIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        traces_sample_rate=0.0,
    )


def init_sentry(config: Config, **overrides: Any) -> bool:
    """Initialise Sentry when a DSN is configured; returns whether it is on.

    `overrides` go straight to `sentry_sdk.init` (tests pass an in-memory `transport`).
    """
    if not config.sentry_dsn:
        return False
    import sentry_sdk

    with warnings.catch_warnings():
        # 2.x deprecates send_default_pii in favour of data_collection; we keep the explicit,
        # widely understood False (same effect) and do not want the warning in every log.
        warnings.filterwarnings("ignore", message="The send_default_pii option is deprecated")
        sentry_sdk.init(**{**sentry_options(config), **overrides})
    return True


def capture_replay_failure(exc: BaseException, *, tags: dict[str, str], actor: str | None) -> None:
    """Report a failed replay to Sentry (a no-op when Sentry is not initialised).

    `tags`: batch_id, execution_uuid, vendor_id, ramp_uuid, error_category (values are stringified).
    `actor`: who ran the batch (user email or `api_key:<name>`), sent as the Sentry user.
    Never raises: reporting must not break the batch.
    """
    try:
        import sentry_sdk

        client = sentry_sdk.get_client()
        if not client.is_active() or client.transport is None:
            return
        with sentry_sdk.new_scope() as scope:
            for key, value in tags.items():
                if value is not None:
                    scope.set_tag(key, str(value))
            scope.set_tag("replay", "failed")
            if actor:
                scope.set_user({"id": actor, "username": actor})
            sentry_sdk.capture_exception(exc)
    except Exception:  # pragma: no cover - defensive: Sentry trouble is logged, never raised
        log.warning("could not report replay failure to Sentry", exc_info=True)


# --------------------------------------------------------------------------- Flask wiring


def init_app(app: Flask, config: Config) -> None:
    configure_logging()
    if init_sentry(config):
        log.info("sentry enabled", extra={"environment": config.environment, "release": config.release})

    @app.before_request
    def _request_id():
        g.request_id = _accept_request_id(request.headers.get(REQUEST_ID_HEADER, ""))
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
