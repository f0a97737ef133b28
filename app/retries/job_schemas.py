"""Request and response schemas of the retry-job endpoints (SPEC section 7).

A job's body is a retry-batch body (a scope with its filters, or `plan_token`) without `dry_run`,
plus the pace and the brake. The scope part is validated by the retry-batch schema itself, so the
two endpoints cannot disagree about what a scope is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from marshmallow import RAISE, Schema, fields, validate
from marshmallow import ValidationError as SchemaError

from app.errors import ValidationError
from app.models.jobs import JOB_STATES
from app.retries.schemas import RetryBatchRequestSchema, RetryRequest

MAX_RATE = 200.0
# SPEC section 7 says only "0 < x": a rate near 0 put the next pace slot beyond PostgreSQL's
# timestamps (the lane broke) or decades away (the job never ran). One replay every 1,000 s is
# the slowest pace that still means something.
MIN_RATE = 0.001
MAX_IDEMPOTENCY_KEY = 255
MAX_LIST_LIMIT = 100


class StrictNumber(fields.Float):
    """A JSON number only (no strings, no booleans)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class JobControlsSchema(Schema):
    class Meta:
        unknown = RAISE

    max_replays_per_second = StrictNumber(
        load_default=5.0,
        validate=validate.Range(min=MIN_RATE, max=MAX_RATE),
    )
    halt_error_rate = StrictNumber(load_default=0.2, validate=validate.Range(min=0, max=1))
    halt_window = fields.Integer(strict=True, load_default=25, validate=validate.Range(min=1, max=1000))


class RetryJobRequestSchema(RetryBatchRequestSchema, JobControlsSchema):
    """The job body as documented (OpenAPI): retry-batch's fields without `dry_run`, plus the
    controls. `load_job_request` validates a body with the two parent schemas themselves."""

    class Meta:
        exclude = ("dry_run",)
        unknown = RAISE


@dataclass(frozen=True)
class JobRequest:
    retry: RetryRequest  # the scope and filters (or a plan_token call), as retry-batch reads them
    max_replays_per_second: float
    halt_error_rate: float
    halt_window: int
    body_sha256: str  # of the body as sent, for Idempotency-Key


def body_fingerprint(body: dict) -> str:
    """SHA-256 of the body as sent, independent of key order and spacing."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_job_request(body) -> JobRequest:
    """The job request, or a 400 naming every bad field of the body."""
    if not isinstance(body, dict):
        raise ValidationError(details={"body": ["Must be a JSON object."]})
    control_names = set(JobControlsSchema().fields)
    controls = {k: v for k, v in body.items() if k in control_names}
    scope = {k: v for k, v in body.items() if k not in control_names}
    errors: dict = {}
    if "dry_run" in scope:
        errors["dry_run"] = ["Not accepted here: preview with POST /api/ramps/executions/retry-batch."]
        scope.pop("dry_run")
    loaded_controls: dict = {}
    retry: RetryRequest | None = None
    try:
        loaded_controls = JobControlsSchema().load(controls)
    except SchemaError as exc:
        errors.update(exc.messages)
    try:
        retry = RetryBatchRequestSchema().load({**scope, "dry_run": False})
    except SchemaError as exc:
        errors.update(exc.messages)
    if errors:
        raise ValidationError(details=errors)
    return JobRequest(retry=retry, body_sha256=body_fingerprint(body), **loaded_controls)


class ControlRequestSchema(Schema):
    """Body of pause / resume / cancel: `{}` or `{"reason": "..."}`."""

    class Meta:
        unknown = RAISE

    reason = fields.String(load_default=None, validate=validate.Length(min=1, max=500))


class JobListQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    state = fields.String(load_default=None, validate=validate.OneOf(JOB_STATES))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_LIST_LIMIT))


# ---- response ---------------------------------------------------------------------------------


class ProgressSchema(Schema):
    total = fields.Integer()
    done = fields.Integer()
    success = fields.Integer()
    error = fields.Integer()
    skipped = fields.Integer()
    remaining = fields.Integer()
    skipped_by_reason = fields.Dict(keys=fields.String(), values=fields.Integer())


class RecentErrorSchema(Schema):
    execution_uuid = fields.String()
    at = fields.DateTime()
    error = fields.Dict()


class RetryJobSchema(Schema):
    job_id = fields.String()
    state = fields.String()
    state_reason = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    request = fields.Dict()
    plan_token = fields.String()
    max_replays_per_second = fields.Float()
    halt_error_rate = fields.Float()
    halt_window = fields.Integer()
    progress = fields.Nested(ProgressSchema)
    rate_per_second = fields.Float()
    eta_seconds = fields.Float(allow_none=True)
    recent_errors = fields.List(fields.Nested(RecentErrorSchema))


class RetryJobListSchema(Schema):
    jobs = fields.List(fields.Nested(RetryJobSchema))
