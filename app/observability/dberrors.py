"""Database errors without the values PostgreSQL quotes in them.

`hide_parameters=True` keeps SQLAlchemy from appending the bound values to an error, but the
server's own message can still carry them: a unique violation's DETAIL (`Key (email)=(...)`),
the value of a failed cast in the message itself, the statement line that psycopg2 filled its
parameters into. So wherever an error leaves the process (log lines, Sentry events), a database
error is shown by what identifies it and nothing else: its class, SQLSTATE and condition name,
and the schema, table, column, constraint and type the server names in its diagnostics.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg2
from psycopg2 import errorcodes
from sqlalchemy.exc import DBAPIError

WITHHELD = "(message withheld: PostgreSQL's text can quote row values)"

# (field we log, attribute of psycopg2's Diagnostics): names of objects, never row values.
_DIAG_FIELDS = (
    ("schema", "schema_name"),
    ("table", "table_name"),
    ("column", "column_name"),
    ("constraint", "constraint_name"),
    ("datatype", "datatype_name"),
)
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def is_database_error(exc: object) -> bool:
    return isinstance(exc, (DBAPIError, psycopg2.Error))


def _driver_error(exc: BaseException) -> BaseException:
    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    return orig if isinstance(orig, BaseException) else exc


def database_error_fields(exc: BaseException) -> dict[str, str]:
    """What identifies a database error: class, SQLSTATE, condition, and the objects involved."""
    orig = _driver_error(exc)
    fields = {"error": type(orig).__name__}
    sqlstate = getattr(orig, "pgcode", None)
    if sqlstate:
        fields["sqlstate"] = sqlstate
        try:
            fields["condition"] = errorcodes.lookup(sqlstate).lower()
        except KeyError:
            pass  # a SQLSTATE newer than this psycopg2 (or an extension's own)
    diag = getattr(orig, "diag", None)
    for field, attribute in _DIAG_FIELDS:
        value = getattr(diag, attribute, None)
        if value:
            fields[field] = value
    return fields


def database_error_text(exc: BaseException) -> str:
    """One line to show instead of `str(exc)` for a database error."""
    fields = database_error_fields(exc)
    if "sqlstate" in fields:
        named = ", ".join(f"{key} {fields[key]}" for key, _ in _DIAG_FIELDS if key in fields)
        summary = f"SQLSTATE {fields['sqlstate']} {fields.get('condition', '')}".rstrip()
        summary = f"{summary} ({named}) {WITHHELD}" if named else f"{summary} {WITHHELD}"
    else:
        # No SQLSTATE: libpq or psycopg2 itself gave up (connection refused or lost, a value it
        # cannot adapt); that text describes the connection or a type, not a row.
        summary = str(_driver_error(exc)).strip().partition("\n")[0]
    if isinstance(exc, DBAPIError):
        orig_type = type(_driver_error(exc))
        return f"({orig_type.__module__}.{orig_type.__qualname__}) {summary}"
    return summary


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc`, then the exceptions it was raised from or while handling, newest first."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ if exc.__cause__ is not None or exc.__suppress_context__ else exc.__context__


def first_database_error(exc: BaseException | None) -> BaseException | None:
    return next((e for e in exception_chain(exc) if is_database_error(e)), None)


def format_exception(exc: BaseException) -> str:
    """`traceback.format_exception(exc)`, with database errors' messages replaced."""
    if first_database_error(exc) is None:
        return "".join(traceback.format_exception(exc))
    parts: list[str] = []
    for position, error in enumerate(reversed(list(exception_chain(exc)))):
        if position:
            parts.append(_CAUSE if error.__cause__ is not None else _CONTEXT)
        if not is_database_error(error):
            parts.extend(traceback.TracebackException.from_exception(error).format(chain=False))
            continue
        if error.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.StackSummary.extract(traceback.walk_tb(error.__traceback__)).format())
        kind = type(error)
        parts.append(f"{kind.__module__}.{kind.__qualname__}: {database_error_text(error)}\n")
    return "".join(parts)


def scrub_args(args: Any) -> Any:
    """Log-call arguments with database errors replaced by `database_error_text`."""
    if isinstance(args, Mapping):
        return {k: database_error_text(v) if is_database_error(v) else v for k, v in args.items()}
    if isinstance(args, tuple):
        return tuple(database_error_text(a) if is_database_error(a) else a for a in args)
    return args


def database_error_arg(args: Any) -> BaseException | None:
    """The first database error among log-call arguments, if any."""
    values = args.values() if isinstance(args, Mapping) else args if isinstance(args, tuple) else ()
    return next((v for v in values if is_database_error(v)), None)


def safe_message(msg: Any, args: Any) -> str:
    """`record.getMessage()` for a record whose arguments may hold database errors."""
    message = str(msg)
    if args:
        message = message % (scrub_args(args) if database_error_arg(args) is not None else args)
    return message
