"""`POST /api/ramps/<ramp_uuid>/trigger`: the CRM webhook. Parse, call the use case, serialize."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from app.db import get_database
from app.signing import SIGNATURE_HEADER
from app.triggers.schemas import TriggerResponseSchema
from app.triggers.use_case import trigger_ramp

bp = Blueprint("triggers", __name__)


@bp.post("/api/ramps/<ramp_uuid>/trigger")
def trigger(ramp_uuid: str):
    # The signature covers the raw bytes, so the body is read as sent (not re-encoded JSON).
    # The use case opens its own session: one transaction, then delivery after the commit.
    result = trigger_ramp(
        get_database().session_factory,
        ramp_uuid,
        request.get_data(cache=False),
        request.headers.get(SIGNATURE_HEADER),
        config=current_app.config["ONRAMP"],
        content_type=request.content_type,
    )
    # 200 for a re-delivery of a key that already succeeded: nothing new was created.
    return TriggerResponseSchema().dump(result.as_response()), 200 if result.duplicate else 201
