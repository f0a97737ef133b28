"""`GET /api/openapi.json` describes both public POST endpoints from the live marshmallow schemas."""

from __future__ import annotations

import pytest

from app.retries.schemas import RetryBatchRequestSchema, RetryBatchResponseSchema
from app.triggers.schemas import TriggerRequestSchema

RETRY = "/api/ramps/executions/retry-batch"
TRIGGER = "/api/ramps/{ramp_uuid}/trigger"


def _resolve(document: dict, ref: str) -> dict:
    assert ref.startswith("#/components/schemas/"), ref
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _all_refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _all_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _all_refs(item)


def test_openapi_document_describes_retry_and_trigger(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = response.get_json()

    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert {RETRY, TRIGGER} <= set(doc["paths"])
    # Every reference points at a component that exists.
    for ref in _all_refs(doc):
        _resolve(doc, ref)

    retry = doc["paths"][RETRY]["post"]
    full = _resolve(doc, "#/components/schemas/RetryBatchRequest")
    assert set(full["properties"]) == set(RetryBatchRequestSchema().fields)
    window, picked, plan = _retry_shapes(doc)
    every = set(RetryBatchRequestSchema().fields)
    assert set(window["properties"]) == every - {"plan_token", "payload_patches"}
    assert set(picked["properties"]) == every - {"plan_token"}
    assert set(plan["properties"]) == {"plan_token", "dry_run", "suppress_notifications"}
    for shape in (window, picked, plan):
        assert shape["properties"]["dry_run"]["type"] == "boolean"
        assert shape["additionalProperties"] is False
    assert picked["properties"]["execution_uuids"]["maxItems"] == 500
    ok = _resolve(doc, retry["responses"]["200"]["content"]["application/json"]["schema"]["$ref"])
    assert set(ok["properties"]) == set(RetryBatchResponseSchema().fields)
    assert {"400", "401", "403", "413", "415"} <= set(retry["responses"])

    trigger = doc["paths"][TRIGGER]["post"]
    body = _resolve(doc, trigger["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert set(body["properties"]) == set(TriggerRequestSchema().fields)
    assert set(body["required"]) == {"trigger_key", "data"}
    assert "201" in trigger["responses"]
    assert [p["name"] for p in trigger["parameters"] if p["in"] == "path"] == ["ramp_uuid"]


def test_openapi_document_needs_no_credentials_and_is_stable(client):
    first = client.get("/api/openapi.json").get_json()
    assert client.get("/api/openapi.json").get_json() == first


def _retry_shapes(doc: dict) -> list[dict]:
    schema = doc["paths"][RETRY]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return [_resolve(doc, alternative["$ref"]) for alternative in schema["oneOf"]]


def _only_null(prop: dict) -> bool:
    return prop.get("enum") == [None] and prop.get("nullable") is True


def test_retry_request_has_three_shapes_window_hand_picked_or_plan(client):
    window, picked, plan = _retry_shapes(client.get("/api/openapi.json").get_json())
    assert plan["required"] == ["plan_token"]

    # Window scope: since required (and not null), execution_uuids only as null.
    assert window["required"] == ["since"]
    assert "nullable" not in window["properties"]["since"]
    assert window["properties"]["since"]["format"] == "date-time"
    assert _only_null(window["properties"]["execution_uuids"])
    assert window["properties"]["vendor_ids"]["items"]["maximum"] == 2**63 - 1
    # The ordering rule JSON Schema cannot state is described where it applies.
    assert "later than `since`" in window["properties"]["until"]["description"]
    assert "[since, until)" in window["properties"]["until"]["description"]

    # Hand-picked: execution_uuids required, no window and no other scope.
    assert picked["required"] == ["execution_uuids"]
    assert "nullable" not in picked["properties"]["execution_uuids"]
    for name in ("since", "until", "vendor_ids", "ramp_uuids"):
        assert _only_null(picked["properties"][name]), name
    assert picked["properties"]["max_attempts"]["maximum"] == 2**31 - 1


@pytest.mark.parametrize(
    "path",
    ["/api/ramps/executions/retry-batch", "/api/ramps/5b0c7c1e-0000-4000-8000-000000000001/trigger"],
    ids=["retry-batch", "trigger"],
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_an_unsupported_method_is_405_with_allow(client, path, method):
    response = client.open(path, method=method)

    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert "POST" in allowed and method not in allowed


def test_a_new_operation_takes_a_few_lines():
    from marshmallow import Schema, fields

    from app.openapi import OPERATIONS, Body, Operation, RequestShape, build_openapi_spec, errors

    class ArchiveRequestSchema(Schema):
        execution_uuids = fields.List(fields.UUID(), required=True)
        reason = fields.String(required=True)
        plan_token = fields.String()

    class ArchiveResponseSchema(Schema):
        dismissed = fields.List(fields.String())

    extra = Operation(
        "post",
        "/api/ramps/executions/archive-batch",
        "Archive",
        request=Body(
            ArchiveRequestSchema,
            shapes=(
                RequestShape("ArchiveByUuids", "By uuids", "...", required=("execution_uuids", "reason")),
                RequestShape("ArchiveByPlan", "By plan", "...", required=("plan_token",), allowed=()),
            ),
        ),
        responses={200: ArchiveResponseSchema, **errors(400, 401)},
    )
    doc = build_openapi_spec((*OPERATIONS, extra))

    assert {RETRY, TRIGGER, "/api/ramps/executions/archive-batch"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert set(schemas["ArchiveByPlan"]["properties"]) == {"plan_token"}
    assert schemas["ArchiveByUuids"]["required"] == ["execution_uuids", "reason"]
    ok = doc["paths"]["/api/ramps/executions/archive-batch"]["post"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ArchiveResponse"}
