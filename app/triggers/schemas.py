"""Request and response schemas of the trigger webhook (also the source for the OpenAPI doc)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class TriggerRequestSchema(Schema):
    """Body of `POST /api/ramps/<ramp_uuid>/trigger`; unknown fields are rejected."""

    trigger_key = fields.String(required=True, validate=validate.Length(min=1, max=255))
    data = fields.Dict(keys=fields.String(), required=True)


class TriggerErrorSchema(Schema):
    type = fields.String(required=True)
    category = fields.String(required=True, validate=validate.OneOf(("config", "integration", "runtime")))
    message = fields.String(required=True)


class TriggerResponseSchema(Schema):
    """201 body: the webhook was accepted, whatever the execution's outcome."""

    execution_uuid = fields.UUID(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("SUCCESS", "ERROR")))
    project_uuid = fields.UUID(required=True, allow_none=True)
    error = fields.Nested(TriggerErrorSchema, required=True, allow_none=True)
    # True (answered 200): the trigger key had already succeeded; this is that execution, and
    # nothing ran again.
    duplicate = fields.Boolean(required=True)
