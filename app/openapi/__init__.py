"""`GET /api/openapi.json`: an OpenAPI 3 description of the public endpoints, generated from the
same marshmallow schemas the views load and dump, so the document cannot drift from the code.

Each endpoint is one `Operation` in `OPERATIONS` (app/openapi/operations.py). To document a new
one, add an entry there:

    Operation(
        "post", "/api/ramps/executions/dismiss-batch", "Dismiss failed executions without replay",
        request=Body(DismissBatchRequestSchema),
        responses={200: DismissBatchResponseSchema, **errors(400, 401, 403, 413, 415, 429, 503)},
        security=ADMIN,
    )

A request body the service accepts in several distinct forms lists them as `RequestShape`s; the
document then says `oneOf` those forms, each a subset of the schema's fields (see retry-batch).
Query parameters: `parameters=[{"in": "query", "schema": SomeQuerySchema}]` (apispec expands it).
"""

from __future__ import annotations

from flask import Blueprint, current_app

from app.openapi import document
from app.openapi.document import ADMIN, ERROR_COMPONENT, Body, Operation, RequestShape, errors
from app.openapi.operations import OPERATIONS

__all__ = [
    "ADMIN",
    "ERROR_COMPONENT",
    "OPERATIONS",
    "Body",
    "Operation",
    "RequestShape",
    "build_openapi_spec",
    "errors",
]

bp = Blueprint("openapi", __name__)


def build_openapi_spec(operations: tuple[Operation, ...] = OPERATIONS) -> dict:
    """The OpenAPI 3.0 document as a dict (every public endpoint unless told otherwise)."""
    return document.build_openapi_spec(operations)


@bp.get("/api/openapi.json")
def openapi_json():
    # Built once per app: the schemas do not change at run time.
    document = current_app.extensions.get("onramp_openapi")
    if document is None:
        document = current_app.extensions["onramp_openapi"] = build_openapi_spec()
    return document
