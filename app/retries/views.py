"""The synchronous retry endpoints: retry-batch (SPEC 3, 6, 10), the error summary (SPEC 8) and
dismiss-batch (SPEC 9). Each view authorizes, parses, calls one use case and serializes."""

from __future__ import annotations

from flask import Blueprint, current_app, request
from marshmallow import ValidationError as MarshmallowValidationError

from app.auth.access import current_actor, require_role
from app.db import get_database
from app.errors import UnsupportedMediaType, ValidationError
from app.json_body import parse_json_body
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER
from app.retries.batch import retry_batch
from app.retries.dismiss import dismiss_batch
from app.retries.schemas import RetryBatchRequestSchema, RetryBatchResponseSchema
from app.retries.summary import error_summary
from app.retries.toolbox_schemas import (
    DismissRequestSchema,
    DismissResponseSchema,
    ErrorSummaryQuerySchema,
    ErrorSummarySchema,
)

bp = Blueprint("retries", __name__)


def _load(schema, data):
    try:
        return schema.load(data)
    except MarshmallowValidationError as exc:
        raise ValidationError(details=exc.messages) from exc


def _query() -> dict:
    """The query string as a dict; a parameter given twice is refused, never resolved silently."""
    repeated = sorted(key for key, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise ValidationError(details={key: ["Given more than once."] for key in repeated})
    return request.args.to_dict()


def _json_body():
    if not request.is_json:
        raise UnsupportedMediaType()
    return parse_json_body(request.get_data(cache=False))


@bp.post("/api/ramps/executions/retry-batch")
@require_role(ROLE_ADMIN)
def retry_batch_view():
    retry_request = _load(RetryBatchRequestSchema(), _json_body())
    # The use case opens its own sessions: one short transaction per replayed row.
    result = retry_batch(
        get_database().session_factory,
        retry_request,
        current_actor(),
        config=current_app.config["ONRAMP"],
    )
    return RetryBatchResponseSchema().dump(result), 200


@bp.get("/api/ramps/executions/error-summary")
@require_role(ROLE_VIEWER)
def error_summary_view():
    query = _load(ErrorSummaryQuerySchema(), _query())
    return ErrorSummarySchema().dump(error_summary(get_database().session_factory, query))


@bp.post("/api/ramps/executions/dismiss-batch")
@require_role(ROLE_ADMIN)
def dismiss_batch_view():
    dismiss_request = _load(DismissRequestSchema(), _json_body())
    result = dismiss_batch(get_database().session_factory, dismiss_request, current_actor())
    return DismissResponseSchema().dump(result), 200
