"""`GET /api/openapi.json` describes both public POST endpoints from the live marshmallow schemas."""

from __future__ import annotations

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
    request = _resolve(doc, retry["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert set(request["properties"]) == set(RetryBatchRequestSchema().fields)
    assert request["properties"]["dry_run"]["type"] == "boolean"
    assert request["properties"]["execution_uuids"]["maxItems"] == 500
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
