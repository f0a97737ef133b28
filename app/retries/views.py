"""`POST /api/ramps/executions/retry-batch`: authorize, parse, call the use case, serialize."""

from __future__ import annotations

from flask import Blueprint, current_app, request
from marshmallow import ValidationError as MarshmallowValidationError

from app.auth.access import current_actor, require_role
from app.db import get_database
from app.errors import UnsupportedMediaType, ValidationError
from app.json_body import parse_json_body
from app.models.identity import ROLE_ADMIN
from app.retries.batch import retry_batch
from app.retries.schemas import RetryBatchRequestSchema, RetryBatchResponseSchema

bp = Blueprint("retries", __name__)


@bp.post("/api/ramps/executions/retry-batch")
@require_role(ROLE_ADMIN)
def retry_batch_view():
    if not request.is_json:
        raise UnsupportedMediaType()
    body = parse_json_body(request.get_data(cache=False))
    try:
        retry_request = RetryBatchRequestSchema().load(body)
    except MarshmallowValidationError as exc:
        raise ValidationError(details=exc.messages) from exc
    # The use case opens its own sessions: one short transaction per replayed row.
    result = retry_batch(
        get_database().session_factory,
        retry_request,
        current_actor(),
        config=current_app.config["ONRAMP"],
    )
    return RetryBatchResponseSchema().dump(result), 200
