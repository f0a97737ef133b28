"""Schemathesis against the WSGI app, driven by `/api/openapi.json`: no generated request to the
retry endpoint or the trigger webhook gets a 500. Derandomized and bounded, so it is repeatable.

Strategies are drawn inside a plain hypothesis test (not schemathesis' pytest plugin, which does
not run under pytest 9)."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.retry_scenarios import api_key_headers


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


@pytest.mark.parametrize(
    "path", ["/api/ramps/executions/retry-batch", "/api/ramps/{ramp_uuid}/trigger"], ids=["retry", "trigger"]
)
def test_generated_requests_never_get_a_500(api_schema, session_factory, path):
    admin = api_key_headers(session_factory)
    operation = api_schema[path]["POST"]
    statuses: set[int] = set()

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def check(case):
        # Admin credentials on every call, so retry-batch requests reach the parser and the use case.
        response = case.call(headers=admin)
        statuses.add(response.status_code)
        assert response.status_code < 500, (case.path, case.body, response.text[:500])
        content_type = {k.lower(): v for k, v in response.headers.items()}["content-type"]
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/json"), content_type

    check()
    if path.endswith("retry-batch"):
        # Generated bodies both pass validation (and run) and get refused: the schema is exercised.
        assert {200, 400} <= statuses, statuses
