"""`GET /api/openapi.json`: an OpenAPI 3 description of the public endpoints, generated from the
same marshmallow schemas the views load and dump, so the document cannot drift from the code."""

from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app

from app.retries.schemas import RetryBatchRequestSchema, RetryBatchResponseSchema
from app.triggers.schemas import TriggerRequestSchema, TriggerResponseSchema

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}


# Both bodies go through app/json_body.py, which refuses what JSON Schema here cannot say.
_BODY_LIMITS = (
    "Strings anywhere in the body, keys included, must not contain U+0000 (PostgreSQL cannot store "
    "it), and the body must not be nested absurdly deep; either is answered with 400."
)


def _request_body(schema: str) -> dict:
    return {"required": True, "description": _BODY_LIMITS, "content": {"application/json": {"schema": schema}}}


def _error_responses(*statuses: int) -> dict:
    return {str(s): {"description": "Error", "content": {"application/json": {"schema": _ERROR}}} for s in statuses}


def build_openapi_spec() -> dict:
    """The OpenAPI 3.0 document as a dict."""
    spec = APISpec(
        title="Onramp API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
    )
    spec.components.schema("RetryBatchRequest", schema=RetryBatchRequestSchema)
    spec.components.schema("RetryBatchResponse", schema=RetryBatchResponseSchema)
    spec.components.schema("TriggerRequest", schema=TriggerRequestSchema)
    spec.components.schema("TriggerResponse", schema=TriggerResponseSchema)
    spec.components.schema(
        "Error",
        {
            "type": "object",
            "required": ["error", "request_id"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
                },
                "request_id": {"type": "string", "nullable": True},
            },
        },
    )
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header", "name": "Authorization"})
    spec.components.security_scheme(
        "apiSecret", {"type": "apiKey", "in": "header", "name": "or-internal-api-auth-secret"}
    )
    spec.components.security_scheme("sessionCookie", {"type": "apiKey", "in": "cookie", "name": "session"})
    spec.path(
        path="/api/ramps/executions/retry-batch",
        operations={
            "post": {
                "summary": "Replay (or dry-run) failed executions in bulk",
                "security": [{"apiKey": [], "apiSecret": []}, {"sessionCookie": []}],
                "requestBody": _request_body("RetryBatchRequest"),
                "responses": {
                    "200": {
                        "description": "The batch result",
                        "content": {"application/json": {"schema": "RetryBatchResponse"}},
                    },
                    **_error_responses(400, 401, 403, 413, 415, 429, 503),
                },
            }
        },
    )
    spec.path(
        path="/api/ramps/{ramp_uuid}/trigger",
        operations={
            "post": {
                "summary": "CRM webhook: start an execution of the ramp",
                "parameters": [
                    {
                        "name": "ramp_uuid",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    {
                        "name": "X-Onramp-Signature",
                        "in": "header",
                        "required": True,
                        "description": "sha256=<hex HMAC-SHA256 of the raw body with the integration's secret>",
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": _request_body("TriggerRequest"),
                "responses": {
                    "201": {
                        "description": "The execution was recorded and run",
                        "content": {"application/json": {"schema": "TriggerResponse"}},
                    },
                    **_error_responses(400, 401, 404, 409, 413, 415, 503),
                },
            }
        },
    )
    return spec.to_dict()


@bp.get("/api/openapi.json")
def openapi_json():
    # Built once per app: the schemas do not change at run time.
    document = current_app.extensions.get("onramp_openapi")
    if document is None:
        document = current_app.extensions["onramp_openapi"] = build_openapi_spec()
    return document
