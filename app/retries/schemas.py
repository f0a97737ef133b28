"""Request and response schemas of `POST /api/ramps/executions/retry-batch` (SPEC section 3).

The request schema turns the JSON body into a frozen `RetryRequest` with every default filled in
(`until` defaults to the moment of parsing, so one call works on one fixed window).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from marshmallow import RAISE, Schema, ValidationError, fields, post_dump, post_load, validate, validates_schema

# Caps on list fields, so one request cannot make an unbounded SQL array.
MAX_LIST_ITEMS = 500
MAX_ERROR_PATTERN_LENGTH = 500
MAX_PATCH_BYTES = 64 * 1024
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
    suppress_notifications: bool | None = False  # None only on a plan call that did not send it
    force_retry: bool = False
    max_attempts: int = 1
    workflow_version: str = "original"
    dry_run: bool = True
    # Set on a call that works on a plan: then only `dry_run` and `suppress_notifications` come
    # from the call (None: the plan's own), everything else from the plan's stored request.
    plan_token: str | None = None
    # Hand-picked calls only: execution uuid -> JSON merge patch of its stored trigger payload.
    payload_patches: Mapping[str, dict] | None = None

    @property
    def hand_picked(self) -> bool:
        return self.execution_uuids is not None

    @classmethod
    def from_normalised(cls, stored: dict, **overrides) -> RetryRequest:
        """The request `normalised()` stored (a plan's), with `overrides` applied."""

        def when(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        def uuids(values) -> tuple[uuid.UUID, ...] | None:
            return tuple(uuid.UUID(v) for v in values) if values is not None else None

        fields = dict(
            since=when(stored.get("since")),
            until=when(stored.get("until")),
            vendor_ids=tuple(stored["vendor_ids"]) if stored.get("vendor_ids") is not None else None,
            ramp_uuids=uuids(stored.get("ramp_uuids")),
            execution_uuids=uuids(stored.get("execution_uuids")),
            error_pattern=stored.get("error_pattern"),
            suppress_notifications=bool(stored.get("suppress_notifications", False)),
            force_retry=bool(stored.get("force_retry", False)),
            max_attempts=int(stored.get("max_attempts", 1)),
            workflow_version=stored.get("workflow_version", "original"),
            dry_run=bool(stored.get("dry_run", True)),
            payload_patches=stored.get("payload_patches"),
        )
        return cls(**(fields | overrides))

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
            **({"plan_token": self.plan_token} if self.plan_token is not None else {}),
            **({"payload_patches": dict(self.payload_patches)} if self.payload_patches else {}),
        }


def _check_patches(patches, picked) -> dict | list | None:
    """Errors of `payload_patches`, by key: each key one of `execution_uuids`, each value a JSON
    object of at most MAX_PATCH_BYTES."""
    if not isinstance(patches, dict):
        return ["Must be an object of execution uuid -> JSON merge patch."]
    if picked is None:
        return ["Only with execution_uuids (a hand-picked call)."]
    wanted = {str(u) for u in picked}
    errors: dict[str, list[str]] = {}
    for key, patch in patches.items():
        try:
            known = str(uuid.UUID(key)) in wanted
        except (ValueError, TypeError, AttributeError):
            known = False
        if not known:
            errors[key] = ["Not one of execution_uuids."]
        elif not isinstance(patch, dict):
            errors[key] = ["Must be a JSON object (a merge patch of the trigger payload)."]
        elif len(json.dumps(patch, ensure_ascii=False, separators=(",", ":")).encode()) > MAX_PATCH_BYTES:
            errors[key] = [f"Over {MAX_PATCH_BYTES // 1024} KB."]
    return errors or None


# The fields a call may send beside `plan_token`.
PLAN_CALL_FIELDS = frozenset({"plan_token", "dry_run", "suppress_notifications"})


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
    plan_token = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    # Each value a JSON object; the keys and sizes are checked in `_check_patches`, which names
    # the bad key.
    payload_patches = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=None)

    # Runs even when single fields failed, so one answer names every bad field.
    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _check_scope(self, data, original_data, **kwargs):
        if not isinstance(original_data, dict):
            return  # marshmallow already reports "Invalid input type."
        errors: dict[str, list[str]] = {}
        given = original_data
        if given.get("plan_token") is not None:
            # The plan fixed its scope and filters; only these may change per call.
            for name in sorted(set(given) - PLAN_CALL_FIELDS):
                errors[name] = ["Cannot be combined with plan_token: the plan fixed it."]
            if errors:
                raise ValidationError(errors)
            return
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
        if given.get("payload_patches") is not None:
            patch_errors = _check_patches(given["payload_patches"], data.get("execution_uuids"))
            if patch_errors:
                errors["payload_patches"] = patch_errors
        if errors:
            raise ValidationError(errors)

    @post_load(pass_original=True)
    def _make_request(self, data, original_data, **kwargs) -> RetryRequest:
        if data["plan_token"] is not None:
            given = original_data.get("suppress_notifications")
            return RetryRequest(
                plan_token=data["plan_token"],
                dry_run=data["dry_run"],
                # Not sent: the plan's own setting applies (resolved when the plan is loaded).
                suppress_notifications=data["suppress_notifications"] if given is not None else None,
            )
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
            payload_patches=(
                {str(uuid.UUID(key)): patch for key, patch in data["payload_patches"].items()}
                if data["payload_patches"]
                else None
            ),
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
    # Only on rows a payload patch changes: the payload the row runs (or would run) with.
    payload = fields.Dict()

    @post_dump
    def _drop_unpatched_payload(self, data, **kwargs):
        if data.get("payload") is None:
            data.pop("payload", None)
        return data


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
    # Dry runs: the plan holding every eligible row of this preview (SPEC section 6).
    plan_token = fields.String(allow_none=True)
    plan_expires_at = fields.DateTime(allow_none=True)
    summary = fields.Nested(SummarySchema)
    eligible = fields.List(fields.Nested(EligibleRowSchema))
    skipped = fields.List(fields.Nested(SkippedRowSchema))
    skipped_truncated = fields.Boolean()
