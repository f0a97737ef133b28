"""`/api/ramps/executions/retry-jobs`: authorize, parse, call one use case, serialize (SPEC 7)."""

from __future__ import annotations

from flask import Blueprint, current_app, request, url_for
from marshmallow import ValidationError as SchemaError

from app.auth.access import current_actor, require_role
from app.db import get_database
from app.errors import UnsupportedMediaType, ValidationError
from app.json_body import parse_json_body
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER
from app.retries import jobs
from app.retries.job_schemas import (
    MAX_IDEMPOTENCY_KEY,
    ControlRequestSchema,
    JobListQuerySchema,
    RetryJobListSchema,
    RetryJobSchema,
    load_job_request,
)

bp = Blueprint("retry_jobs", __name__)

BASE = "/api/ramps/executions/retry-jobs"


def _json_body(*, empty_is: dict | None = None):
    raw = request.get_data(cache=False)
    if not raw and empty_is is not None:
        return empty_is
    if not request.is_json:
        raise UnsupportedMediaType()
    return parse_json_body(raw)


def _load(schema, data):
    try:
        return schema.load(data)
    except SchemaError as exc:
        raise ValidationError(details=exc.messages) from exc


@bp.post(BASE)
@require_role(ROLE_ADMIN)
def create_retry_job():
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationError(details={"Idempotency-Key": [f"Must be 1 to {MAX_IDEMPOTENCY_KEY} characters."]})
    job, created = jobs.create_job(
        get_database().session_factory,
        load_job_request(_json_body()),
        current_actor(),
        idempotency_key=key,
        config=current_app.config["ONRAMP"],
    )
    location = url_for("retry_jobs.get_retry_job", job_id=job["job_id"])
    return RetryJobSchema().dump(job), 202 if created else 200, {"Location": location}


@bp.get(BASE)
@require_role(ROLE_VIEWER)
def list_retry_jobs():
    query = _load(JobListQuerySchema(), request.args.to_dict())
    found = jobs.list_jobs(get_database().session_factory, state=query["state"], limit=query["limit"])
    return RetryJobListSchema().dump({"jobs": found})


@bp.get(f"{BASE}/<job_id>")
@require_role(ROLE_VIEWER)
def get_retry_job(job_id: str):
    return RetryJobSchema().dump(jobs.get_job(get_database().session_factory, job_id))


@bp.post(f"{BASE}/<job_id>/<any(pause, resume, cancel):action>")
@require_role(ROLE_ADMIN)
def control_retry_job(job_id: str, action: str):
    body = _load(ControlRequestSchema(), _json_body(empty_is={}))
    job = jobs.control_job(
        get_database().session_factory,
        job_id,
        action,
        current_actor(),
        reason=body["reason"],
        config=current_app.config["ONRAMP"],
    )
    return RetryJobSchema().dump(job)
