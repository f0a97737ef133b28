"""Request and response schemas of `POST /api/ramps/executions/retry-batch` (SPEC section 3).

The request schema turns the JSON body into a frozen `RetryRequest` with every default filled in
(`until` defaults to the moment of parsing, so one call works on one fixed window).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

# Caps on list fields, so one request cannot make an unbounded SQL array.
MAX_LIST_ITEMS = 500
MAX_ERROR_PATTERN_LENGTH = 500
WORKFLOW_VERSIONS = ("original", "latest")
# The columns these values are compared with: or_vendors.id is bigint, replay_attempts integer.
BIGINT_MAX = 2**63 - 1
INTEGER_MAX = 2**31 - 1


def utc_representable(value: datetime) -> None:
    """Times are stored and compared in UTC; an offset can push a valid local time out of range."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(
            "Must lie between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z once converted to UTC."
        ) from None


class StrictBoolean(fields.Boolean):
    """JSON true/false only: marshmallow's Boolean also takes 1, "yes", "on"..."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            return value
        raise self.make_error("invalid")


def _list_of(inner: fields.Field) -> fields.List:
    return fields.List(
        inner,
        validate=validate.Length(min=1, max=MAX_LIST_ITEMS),
        load_default=None,
    )


@dataclass(frozen=True)
class RetryRequest:
    since: datetime | None = None
    until: datetime | None = None
    vendor_ids: tuple[int, ...] | None = None
    ramp_uuids: tuple[uuid.UUID, ...] | None = None
    execution_uuids: tuple[uuid.UUID, ...] | None = None
    error_pattern: str | None = None
    suppress_notifications: bool = False
    force_retry: bool = False
    max_attempts: int = 1
    workflow_version: str = "original"
    dry_run: bool = True

    @property
    def hand_picked(self) -> bool:
        return self.execution_uuids is not None

    def normalised(self) -> dict:
        """The request as the audit record stores it: defaults filled, times in UTC ISO-8601."""

        def iso(value: datetime | None) -> str | None:
            return value.astimezone(UTC).isoformat() if value else None

        def strs(values) -> list[str] | None:
            return [str(v) for v in values] if values is not None else None

        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "vendor_ids": list(self.vendor_ids) if self.vendor_ids is not None else None,
            "ramp_uuids": strs(self.ramp_uuids),
            "execution_uuids": strs(self.execution_uuids),
            "error_pattern": self.error_pattern,
            "suppress_notifications": self.suppress_notifications,
            "force_retry": self.force_retry,
            "max_attempts": self.max_attempts,
            "workflow_version": self.workflow_version,
            "dry_run": self.dry_run,
        }


def _dedupe(values):
    return tuple(dict.fromkeys(values)) if values is not None else None


class RetryBatchRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    # Naive datetimes are read as UTC.
    since = fields.AwareDateTime(default_timezone=UTC, load_default=None, validate=utc_representable)
    until = fields.AwareDateTime(default_timezone=UTC, load_default=None, validate=utc_representable)
    vendor_ids = _list_of(fields.Integer(strict=True, validate=validate.Range(min=1, max=BIGINT_MAX)))
    ramp_uuids = _list_of(fields.UUID())
    execution_uuids = _list_of(fields.UUID())
    error_pattern = fields.String(load_default=None, validate=validate.Length(min=1, max=MAX_ERROR_PATTERN_LENGTH))
    suppress_notifications = StrictBoolean(load_default=False)
    force_retry = StrictBoolean(load_default=False)
    max_attempts = fields.Integer(strict=True, load_default=1, validate=validate.Range(min=1, max=INTEGER_MAX))
    workflow_version = fields.String(load_default="original", validate=validate.OneOf(WORKFLOW_VERSIONS))
    dry_run = StrictBoolean(load_default=True)

    # Runs even when single fields failed, so one answer names every bad field.
    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _check_scope(self, data, original_data, **kwargs):
        if not isinstance(original_data, dict):
            return  # marshmallow already reports "Invalid input type."
        errors: dict[str, list[str]] = {}
        given = original_data
        picked = data.get("execution_uuids") is not None or given.get("execution_uuids") is not None
        if picked:
            for name in ("since", "until"):
                if data.get(name) is not None:
                    errors[name] = ["Cannot be combined with execution_uuids."]
            # Hand-picked means exactly those rows; a second scope would silently drop some.
            for name in ("vendor_ids", "ramp_uuids"):
                if data.get(name) is not None:
                    errors[name] = ["Cannot be combined with execution_uuids."]
        elif given.get("since") is None:
            errors["since"] = ["Required unless execution_uuids is given."]
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and until <= since:
            errors["until"] = ["Must be later than since."]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _make_request(self, data, **kwargs) -> RetryRequest:
        if data["execution_uuids"] is None and data["until"] is None:
            data["until"] = datetime.now(UTC)
        for name in ("since", "until"):
            if data[name] is not None:
                data[name] = data[name].astimezone(UTC)
        return RetryRequest(
            since=data["since"],
            until=data["until"],
            vendor_ids=_dedupe(data["vendor_ids"]),
            ramp_uuids=_dedupe(data["ramp_uuids"]),
            execution_uuids=_dedupe(data["execution_uuids"]),
            error_pattern=data["error_pattern"],
            suppress_notifications=data["suppress_notifications"],
            force_retry=data["force_retry"],
            max_attempts=data["max_attempts"],
            workflow_version=data["workflow_version"],
            dry_run=data["dry_run"],
        )


# ---- response ---------------------------------------------------------------------------------


class ReplayErrorSchema(Schema):
    type = fields.String()
    category = fields.String()
    message = fields.String()


class EligibleRowSchema(Schema):
    execution_uuid = fields.String()
    vendor_id = fields.Integer()
    ramp_uuid = fields.String()
    created_at = fields.DateTime()
    error_message = fields.String(allow_none=True)
    workflow_version_drift = fields.Boolean()
    outcome = fields.String()
    error = fields.Nested(ReplayErrorSchema, allow_none=True)
    project_uuid = fields.String(allow_none=True)


class SkippedRowSchema(Schema):
    execution_uuid = fields.String()
    reason = fields.String()
    detail = fields.String(allow_none=True)


class SummarySchema(Schema):
    matched = fields.Integer()
    eligible = fields.Integer()
    selected = fields.Integer()
    skipped = fields.Integer()
    skipped_by_reason = fields.Dict(keys=fields.String(), values=fields.Integer())
    success = fields.Integer()
    error = fields.Integer()
    remaining = fields.Integer()


class RetryBatchResponseSchema(Schema):
    batch_id = fields.String()
    dry_run = fields.Boolean()
    summary = fields.Nested(SummarySchema)
    eligible = fields.List(fields.Nested(EligibleRowSchema))
    skipped = fields.List(fields.Nested(SkippedRowSchema))
    skipped_truncated = fields.Boolean()
