"""Error reporting to Sentry: on only when `SENTRY_DSN` is set.

Flask and SQLAlchemy integrations, release and environment tags, no default PII, and a scrubber
that removes credentials, cookies, request bodies and trigger payloads before anything leaves the
process. Without a DSN nothing is sent.
"""

from __future__ import annotations

import warnings
from typing import Any

from app.config import Config
from app.observability import dberrors

FILTERED = "[Filtered]"

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
        return FILTERED
    if isinstance(value, dict):
        return {
            k: (FILTERED if isinstance(k, str) and _is_secret_key(k) else _scrub(v, depth + 1))
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
            req[key] = FILTERED
    headers = req.get("headers")
    if isinstance(headers, dict):
        req["headers"] = {
            k: (FILTERED if k.lower().replace("-", "_") in _SECRET_HEADERS or _is_secret_key(k) else v)
            for k, v in headers.items()
        }
    return req


def _scrub_breadcrumb_data(crumb: dict) -> dict:
    crumb = dict(crumb)
    if isinstance(crumb.get("data"), dict):
        # Keep a breadcrumb's shape (category, message) but scrub what is inside its data.
        crumb["data"] = _scrub(crumb["data"])
    return crumb


def _reachable(exc: BaseException | None) -> list[BaseException]:
    """`exc` and every exception it was raised from or while handling."""
    found: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        pending += [current.__cause__, current.__context__]
    return found


def _is_database_error_type(module: Any, name: Any) -> bool:
    if not isinstance(module, str) or not isinstance(name, str):
        return False
    if module.partition(".")[0] == "psycopg2":
        return True
    if module == "sqlalchemy.exc":
        import sqlalchemy.exc

        cls = getattr(sqlalchemy.exc, name, None)
        return isinstance(cls, type) and issubclass(cls, sqlalchemy.exc.DBAPIError)
    return False


def _scrub_database_errors(event: dict, hint: dict) -> None:
    """Replace PostgreSQL's text (which can quote row values) in exception values and log entries."""
    exc_info = hint.get("exc_info")
    raised = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None
    unmatched = [e for e in _reachable(raised) if dberrors.is_database_error(e)]
    for value in (event.get("exception") or {}).get("values") or []:
        match = next(
            (
                e
                for e in unmatched
                if type(e).__name__ == value.get("type") and type(e).__module__ == value.get("module")
            ),
            None,
        )
        if match is not None:
            unmatched.remove(match)
            value["value"] = dberrors.database_error_text(match)
        elif _is_database_error_type(value.get("module"), value.get("type")):
            value["value"] = dberrors.WITHHELD
    record = hint.get("log_record")
    logentry = event.get("logentry")
    if record is not None and isinstance(logentry, dict) and dberrors.database_error_arg(record.args) is not None:
        params = dberrors.scrub_args(record.args)
        logentry["params"] = list(params) if isinstance(params, tuple) else params
        logentry["formatted"] = dberrors.safe_message(record.msg, record.args)


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """`before_send`: strip credentials, bodies, cookies, payloads and PostgreSQL's error text
    from an error event."""
    _scrub_database_errors(event, hint or {})
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
    record = (hint or {}).get("log_record")
    if record is not None and dberrors.database_error_arg(record.args) is not None:
        crumb = {**crumb, "message": dberrors.safe_message(record.msg, record.args)}
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
