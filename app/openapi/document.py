"""The pieces an OpenAPI operation is described with, and the builder that turns them into the
document (apispec with the marshmallow plugin)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema

# Every JSON body goes through app/json_body.py, which refuses what JSON Schema here cannot say.
BODY_LIMITS = (
    "Strings anywhere in the body, keys included, must not contain U+0000 or a lone UTF-16 "
    "surrogate (PostgreSQL cannot store either); numbers must be finite (no NaN, Infinity or "
    "1e400); a key must not appear twice in one object; the body must not be nested absurdly deep. "
    "Each is answered with 400, `details` naming the place by its JSON path (`data.company.name`)."
)

# Security requirements (alternatives): internal API key + secret, or a signed-in browser session.
ADMIN = [{"apiKey": [], "apiSecret": []}, {"sessionCookie": []}]

ERROR_COMPONENT = "Error"
_ERROR_SCHEMA = {
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
}
_SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "Authorization"},
    "apiSecret": {"type": "apiKey", "in": "header", "name": "or-internal-api-auth-secret"},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session"},
}


@dataclass(frozen=True)
class RequestShape:
    """One form of a request body: the schema's fields, minus `excluded`, with `required` present
    (and not null). Fields in `null_only` may appear only as null, which the service reads as
    absent. `allowed`, when given, keeps only those fields (plus `required` and `null_only`)."""

    component: str
    title: str
    description: str
    required: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    null_only: tuple[str, ...] = ()
    allowed: tuple[str, ...] | None = None
    # Extra words for single fields, e.g. rules between fields that JSON Schema cannot state.
    notes: dict[str, str] = field(default_factory=dict)
    example: dict | None = None


@dataclass(frozen=True)
class Body:
    """A JSON request body loaded with `schema`; `shapes` when it comes in several forms."""

    schema: type[Schema]
    shapes: tuple[RequestShape, ...] = ()
    description: str = BODY_LIMITS
    # name -> example body (the shapes' own examples are added to these)
    examples: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    request: Body | None = None
    # status -> marshmallow schema of the body, or ERROR_COMPONENT
    responses: dict[int, type[Schema] | str] = field(default_factory=dict)
    security: list[dict] | None = None
    parameters: list[dict] = field(default_factory=list)
    description: str | None = None


def errors(*statuses: int) -> dict[int, str]:
    """Responses in the one JSON error shape."""
    return dict.fromkeys(statuses, ERROR_COMPONENT)


def _component_name(schema: type[Schema]) -> str:
    return schema.__name__.removesuffix("Schema")


def _shape_schema(full: dict, shape: RequestShape) -> dict:
    keep = set(full["properties"]) - set(shape.excluded)
    if shape.allowed is not None:
        keep &= set(shape.allowed) | set(shape.required) | set(shape.null_only)
    properties: dict[str, Any] = {}
    for name, prop in full["properties"].items():
        if name not in keep:
            continue
        if name in shape.null_only:
            properties[name] = {"nullable": True, "enum": [None], "description": "Only null here (same as absent)."}
            continue
        prop = copy.deepcopy(prop)
        if name in shape.required:
            prop.pop("nullable", None)
            prop.pop("default", None)
        if name in shape.notes:
            prop["description"] = shape.notes[name]
        properties[name] = prop
    return {
        "type": "object",
        "title": shape.title,
        "description": shape.description,
        "properties": properties,
        "required": sorted(shape.required),
        "additionalProperties": False,
    }


def _schema_ref(spec: APISpec, schema: type[Schema] | str) -> str:
    """The component name for `schema`, registered on first use."""
    name = schema if isinstance(schema, str) else _component_name(schema)
    if name not in spec.components.schemas:
        spec.components.schema(name, schema=schema)
    return name


def _request_body(spec: APISpec, body: Body) -> dict:
    name = _schema_ref(spec, body.schema)
    if body.shapes:
        full = spec.to_dict()["components"]["schemas"][name]
        for shape in body.shapes:
            spec.components.schema(shape.component, _shape_schema(full, shape))
        schema: Any = {"oneOf": [{"$ref": f"#/components/schemas/{s.component}"} for s in body.shapes]}
    else:
        schema = name
    media: dict[str, Any] = {"schema": schema}
    examples = {**body.examples, **{s.component: s.example for s in body.shapes if s.example is not None}}
    if examples:
        media["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"required": True, "description": body.description, "content": {"application/json": media}}


def _responses(spec: APISpec, responses: dict[int, type[Schema] | str]) -> dict:
    documented = {}
    for status, schema in sorted(responses.items()):
        name = _schema_ref(spec, schema)
        description = "Error" if name == ERROR_COMPONENT else "OK"
        documented[str(status)] = {"description": description, "content": {"application/json": {"schema": name}}}
    return documented


def build_openapi_spec(operations: tuple[Operation, ...]) -> dict:
    """The OpenAPI 3.0 document as a dict."""
    spec = APISpec(title="Onramp API", version="1.0.0", openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema(ERROR_COMPONENT, _ERROR_SCHEMA)
    for name, scheme in _SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    by_path: dict[str, dict[str, dict]] = {}
    for op in operations:
        documented: dict[str, Any] = {"summary": op.summary}
        if op.description:
            documented["description"] = op.description
        if op.security is not None:
            documented["security"] = op.security
        if op.parameters:
            documented["parameters"] = op.parameters
        if op.request is not None:
            documented["requestBody"] = _request_body(spec, op.request)
        documented["responses"] = _responses(spec, op.responses)
        by_path.setdefault(op.path, {})[op.method] = documented
    for path, methods in by_path.items():
        spec.path(path=path, operations=methods)
    return spec.to_dict()
