"""Schemathesis against the WSGI app, driven by `/api/openapi.json`: no generated request to the
retry endpoint or the trigger webhook gets a 500, and every answer matches the document.
Derandomized and bounded, so it is repeatable.

Strategies are drawn inside a plain hypothesis test (not schemathesis' pytest plugin, which does
not run under pytest 9)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.signing import SIGNATURE_HEADER, sign
from tests.support.retry_scenarios import SIGNING_SECRET, api_key_headers, backlog

pytestmark = pytest.mark.slow  # generated requests (schemathesis + hypothesis)

TRIGGER = "/api/ramps/{ramp_uuid}/trigger"
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


def _content_type(response) -> str:
    value = {k.lower(): v for k, v in response.headers.items()}["content-type"]
    return value[0] if isinstance(value, list) else value


def test_generated_retry_requests_never_get_a_500(api_schema, session_factory):
    admin = api_key_headers(session_factory)
    operation = api_schema["/api/ramps/executions/retry-batch"]["POST"]
    statuses: set[int] = set()

    @settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def check(case):
        # Admin credentials on every call, so retry-batch requests reach the parser and the use case.
        response = case.call(headers=admin)
        statuses.add(response.status_code)
        assert response.status_code < 500, (case.path, case.body, response.text[:500])
        assert _content_type(response).startswith("application/json"), _content_type(response)

    check()
    # Generated bodies both pass validation (and run) and get refused: the schema is exercised.
    assert {200, 400} <= statuses, statuses


def _sign_generated_body(context, case):
    """`map_case` hook: the CRM signs the exact bytes it sends, so freeze the generated body into
    those bytes and sign them; the request then passes the signature check and reaches the
    parser."""
    if isinstance(case.body, NotSet):
        raw = b""
    elif isinstance(case.body, bytes):
        raw = case.body
    else:
        raw = json.dumps(case.body).encode()
        case.body = raw
    case.headers = {**(case.headers or {}), SIGNATURE_HEADER: sign(SIGNING_SECRET, raw)}
    return case


def _expected_status(mode, request) -> set[int]:
    """What a correct handler answers, given what was really sent."""
    if SIGNATURE_HEADER not in request.headers:
        return {401}  # negative mode may drop the required header on purpose
    if mode == schemathesis.GenerationMode.POSITIVE:
        return {201}
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
    return {400} if content_type == "application/json" else {400, 415}


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE], ids=["valid", "invalid"]
)
def test_generated_signed_triggers_reach_the_handler(api_schema, load, mode):
    data = backlog(0)  # one active ramp whose vendor's integration signs with SIGNING_SECRET
    load(data)
    ramp_uuid = data["ramps"][0]["uuid"]
    api_schema.hook("map_case")(_sign_generated_body)
    operation = api_schema[TRIGGER]["POST"]
    statuses: Counter[int] = Counter()
    nul_refusals: list[bytes] = []

    @settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy(generation_mode=mode, path_parameters={"ramp_uuid": ramp_uuid}))
    def check(case):
        assert case.path_parameters["ramp_uuid"] == ramp_uuid  # the real ramp, not a 404
        response = case.call()
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CONFORMANCE)
        assert _content_type(response).startswith("application/json"), _content_type(response)
        expected = _expected_status(mode, response.request)
        if response.status_code == 400 and 201 in expected:
            # Schema-valid but refused: only a U+0000 somewhere, which PostgreSQL cannot store
            # (documented in the request body's description).
            assert "U+0000" in response.text, (case.body, response.text[:500])
            nul_refusals.append(case.body)
            return
        assert response.status_code in expected, (case.body, response.text[:500])

    check()
    total = sum(statuses.values())
    reached = total - statuses[401] - statuses[404]
    # A meaningful share got past the ramp lookup and the signature check into the handler.
    assert total >= 20 and reached >= total // 4, statuses
    if mode == schemathesis.GenerationMode.POSITIVE:
        assert statuses[201] >= total // 2, statuses  # valid bodies start executions
        assert statuses[201] + len(nul_refusals) == total, statuses
    else:
        assert statuses[400] >= total // 4, statuses  # invalid bodies are refused by the parser
