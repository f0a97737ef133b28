"""The pages' query-string forms, read into the requests of the JSON API's own schemas.

A form is only a different spelling of the JSON body: the overview's window goes through
`ErrorSummaryQuerySchema`, the preview's scope through `RetryBatchRequestSchema` (as a dry run), so
the page and the API cannot disagree about what a valid scope is. What the visitor typed is kept
(`values`) to fill the form again, with the schema's messages per field (`errors`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import ValidationError as SchemaError

from app.retries.schemas import RetryBatchRequestSchema, RetryRequest
from app.retries.toolbox_schemas import ErrorSummaryQuerySchema

DEFAULT_WINDOW = timedelta(hours=24)
# Quick windows offered above the overview, (label, length).
QUICK_WINDOWS = (
    ("1 hour", timedelta(hours=1)),
    ("6 hours", timedelta(hours=6)),
    ("24 hours", timedelta(hours=24)),
    ("7 days", timedelta(days=7)),
)
PREVIEW_FIELDS = (
    "since",
    "until",
    "vendor_ids",
    "ramp_uuids",
    "error_pattern",
    "force_retry",
    "max_attempts",
    "workflow_version",
)
_SEPARATORS = re.compile(r"[\s,]+")


@dataclass
class Form:
    values: dict[str, str]
    errors: dict[str, list[str]] = field(default_factory=dict)
    request: Any = None
    submitted: bool = False


def iso(value: datetime) -> str:
    """A UTC time as the forms and links write it: `2026-05-11T12:30:00Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _messages(errors: Any) -> list[str]:
    """A schema's messages for one field as flat text (list items arrive as {index: [...]})."""
    if isinstance(errors, dict):
        return [f"item {int(k) + 1}: {m}" if isinstance(k, int) else m for k, v in errors.items() for m in _messages(v)]
    if isinstance(errors, list | tuple):
        return [m for item in errors for m in _messages(item)]
    return [str(errors)]


def _schema_errors(exc: SchemaError) -> dict[str, list[str]]:
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return {name: _messages(value) for name, value in messages.items()}


def window_form(args, *, now: datetime) -> Form:
    """The overview's `?since=&until=` (default: the last 24 hours up to now)."""
    now = now.replace(microsecond=0)
    values = {
        "since": (args.get("since") or "").strip() or iso(now - DEFAULT_WINDOW),
        "until": (args.get("until") or "").strip(),
    }
    # A blank `until` is this moment, fixed here so that the page's links repeat the same window.
    query = {"since": values["since"], "until": values["until"] or iso(now)}
    form = Form(values=values, submitted=True)
    try:
        form.request = ErrorSummaryQuerySchema().load(query)
    except SchemaError as exc:
        form.errors = _schema_errors(exc)
    return form


def quick_windows(now: datetime) -> list[tuple[str, str]]:
    now = now.replace(microsecond=0)
    return [(label, iso(now - length)) for label, length in QUICK_WINDOWS]


def _split(value: str) -> list[str]:
    return [part for part in _SEPARATORS.split(value) if part]


def preview_form(args, *, now: datetime) -> Form:
    """The preview's scope, as a dry-run `RetryRequest`; not submitted when no field was sent."""
    submitted = any(name in args for name in PREVIEW_FIELDS)
    values = {name: (args.get(name) or "").strip() for name in PREVIEW_FIELDS}
    if not submitted:
        values.update(
            since=iso(now.replace(microsecond=0) - DEFAULT_WINDOW), max_attempts="1", workflow_version="original"
        )
        return Form(values=values)
    form = Form(values=values, submitted=True)
    body: dict[str, Any] = {"dry_run": True, "force_retry": values["force_retry"] == "on"}
    for name in ("since", "until", "error_pattern", "workflow_version"):
        if values[name]:
            body[name] = values[name]
    if values["vendor_ids"]:
        parts = _split(values["vendor_ids"])
        bad = [part for part in parts if not part.isdigit()]
        if bad:
            form.errors["vendor_ids"] = [f"Not a vendor id: {part!r}." for part in bad]
        else:
            body["vendor_ids"] = [int(part) for part in parts]
    if values["ramp_uuids"]:
        body["ramp_uuids"] = _split(values["ramp_uuids"])
    if values["max_attempts"]:
        if values["max_attempts"].isdigit() and int(values["max_attempts"]) >= 1:
            body["max_attempts"] = int(values["max_attempts"])
        else:
            form.errors["max_attempts"] = ["Must be a whole number, 1 or more."]
    try:
        request: RetryRequest = RetryBatchRequestSchema().load(body)
    except SchemaError as exc:
        form.errors = {**_schema_errors(exc), **form.errors}
        return form
    if not form.errors:
        form.request = request
    return form
