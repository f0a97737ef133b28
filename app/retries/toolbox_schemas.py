"""Schemas of the error summary (SPEC section 8) and of dismiss-batch (SPEC section 9)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from app.retries.eligibility import SUMMARY_GROUPS
from app.retries.schemas import StrictBoolean, utc_representable
from app.retries.summary import DEFAULT_GROUP_BY, SummaryRequest

MAX_DISMISS = 500
MAX_REASON = 500


class CommaSeparated(fields.Field):
    """`a,b,c` in a query string, each part loaded by `inner`."""

    def __init__(self, inner: fields.Field, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        parts = [part.strip() for part in value.split(",")]
        if not all(parts):
            raise ValidationError("Empty item in a comma-separated list.")
        return tuple(self.inner.deserialize(part) for part in parts)


class QueryInteger(fields.Integer):
    """An integer written in a query string (digits only), within PostgreSQL's bigint."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not value.isdigit() or int(value) > 2**63 - 1 or int(value) < 1:
            raise ValidationError(f"Not a positive integer: {value!r}.")
        return int(value)


class ErrorSummaryQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    since = fields.AwareDateTime(default_timezone=UTC, required=True, validate=utc_representable)
    until = fields.AwareDateTime(default_timezone=UTC, load_default=None, validate=utc_representable)
    vendor_ids = CommaSeparated(QueryInteger(), load_default=None)
    group_by = CommaSeparated(fields.String(validate=validate.OneOf(tuple(SUMMARY_GROUPS))), load_default=None)

    @validates_schema(skip_on_field_errors=True)
    def _check(self, data, **kwargs):
        until = data.get("until")
        if until is not None and until <= data["since"]:
            raise ValidationError({"until": ["Must be later than since."]})

    @post_load
    def _make(self, data, **kwargs) -> SummaryRequest:
        return SummaryRequest(
            since=data["since"].astimezone(UTC),
            until=(data["until"] or datetime.now(UTC)).astimezone(UTC),
            vendor_ids=tuple(dict.fromkeys(data["vendor_ids"])) if data["vendor_ids"] else None,
            group_by=tuple(dict.fromkeys(data["group_by"] or DEFAULT_GROUP_BY)),  # a repeat means nothing more
        )


class SummaryGroupSchema(Schema):
    vendor_id = fields.Integer()
    ramp_uuid = fields.String(allow_none=True)
    ramp_name = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    error_type = fields.String(allow_none=True)
    count = fields.Integer()
    eligible = fields.Integer()
    first_at = fields.DateTime()
    last_at = fields.DateTime()
    sample_message = fields.String(allow_none=True)


class ErrorSummarySchema(Schema):
    since = fields.DateTime()
    until = fields.DateTime()
    total = fields.Integer()
    eligible = fields.Integer()
    groups = fields.List(fields.Nested(SummaryGroupSchema))
    groups_truncated = fields.Boolean()


# ---- dismiss-batch ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DismissRequest:
    execution_uuids: tuple[uuid.UUID, ...]
    reason: str
    dry_run: bool = True

    def normalised(self) -> dict:
        return {
            "execution_uuids": [str(u) for u in self.execution_uuids],
            "reason": self.reason,
            "dry_run": self.dry_run,
        }


class DismissRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    execution_uuids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1, max=MAX_DISMISS))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=MAX_REASON))
    dry_run = StrictBoolean(load_default=True)

    @post_load
    def _make(self, data, **kwargs) -> DismissRequest:
        reason = data["reason"].strip()
        if not reason:
            raise ValidationError({"reason": ["Must not be blank."]})
        return DismissRequest(tuple(dict.fromkeys(data["execution_uuids"])), reason, data["dry_run"])


class DismissSkippedSchema(Schema):
    execution_uuid = fields.String()
    reason = fields.String()
    detail = fields.String(allow_none=True)


class DismissSummarySchema(Schema):
    matched = fields.Integer()
    dismissed = fields.Integer()
    skipped = fields.Integer()


class DismissResponseSchema(Schema):
    batch_id = fields.String()
    dry_run = fields.Boolean()
    summary = fields.Nested(DismissSummarySchema)
    dismissed = fields.List(fields.String())
    skipped = fields.List(fields.Nested(DismissSkippedSchema))
