"""Hostile input to the toolbox endpoints (error summary, dismiss-batch, payload patches): every
bad request is a 400 in the one JSON error shape, never a 500, and a refused call changes nothing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.models.identity import ROLE_VIEWER
from tests.support import strategies
from tests.support.retry_scenarios import URL, api_key_headers, backlog

SUMMARY = "/api/ramps/executions/error-summary"
DISMISS = "/api/ramps/executions/dismiss-batch"
_SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
pytestmark = pytest.mark.slow  # hypothesis examples through the endpoints


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="toolbox-hostile")


@pytest.fixture
def viewer(session_factory):
    return api_key_headers(session_factory, name="toolbox-hostile-viewer", role=ROLE_VIEWER)


def _count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


_query_values = (
    strategies.hostile_text(30)
    | strategies.ISO_TIMES
    | st.lists(st.integers() | strategies.EDGE_INTEGERS, min_size=1, max_size=3).map(lambda v: ",".join(map(str, v)))
    | st.lists(st.sampled_from(["vendor", "ramp", "category", "error_type", "planet", ""]), max_size=4).map(",".join)
)
_queries = st.dictionaries(
    st.sampled_from(["since", "until", "vendor_ids", "group_by"]) | strategies.hostile_text(8),
    _query_values,
    max_size=4,
)


def test_the_summary_answers_200_or_400_to_any_query(client, viewer, load):
    load(backlog(5))
    statuses: set[int] = set()

    @_SETTINGS
    @given(_queries | st.fixed_dictionaries({"since": strategies.ISO_TIMES}, optional={"group_by": _query_values}))
    def check(query):
        response = client.get(SUMMARY, query_string=query, headers=viewer)
        statuses.add(response.status_code)
        assert response.status_code in (200, 400), (query, response.get_json())
        if response.status_code == 400:
            assert response.get_json()["error"]["code"] == "validation_error"

    check()
    assert statuses == {200, 400}


_dismiss_documents = (
    st.dictionaries(
        st.sampled_from(["execution_uuids", "reason", "dry_run"]) | strategies.hostile_text(8),
        strategies.JSON | st.lists(st.uuids().map(str), max_size=3),
        max_size=4,
    )
    | st.fixed_dictionaries(
        {
            "execution_uuids": st.lists(st.uuids().map(str), min_size=1, max_size=3),
            "reason": strategies.hostile_text(20),
        },
        optional={"dry_run": st.booleans()},
    )
    | strategies.JSON
)


def test_dismiss_answers_200_or_400_to_any_body_and_audits_only_what_it_ran(client, admin, engine):
    statuses: set[int] = set()

    @_SETTINGS
    @given(_dismiss_documents)
    def check(document):
        audited = _count(engine, "SELECT count(*) FROM or_retry_batches")
        response = client.post(DISMISS, data=json.dumps(document), content_type="application/json", headers=admin)
        statuses.add(response.status_code)
        assert response.status_code in (200, 400), (document, response.get_json())
        assert _count(engine, "SELECT count(*) FROM or_retry_batches") == audited + (response.status_code == 200)

    check()
    assert statuses == {200, 400}


def test_payload_patches_of_any_shape_are_200_or_400_and_never_touch_a_refused_row(client, admin, load, engine):
    data = backlog(1)
    load(data)
    row = data["executions"][0]["uuid"]
    stored = _payload(engine, row)
    statuses: set[int] = set()

    @_SETTINGS
    @given(st.dictionaries(st.just(row) | strategies.hostile_text(40), strategies.JSON, max_size=2) | strategies.JSON)
    def check(patches):
        body = {"execution_uuids": [row], "payload_patches": patches, "force_retry": True}
        response = client.post(URL, data=json.dumps(body), content_type="application/json", headers=admin)
        statuses.add(response.status_code)
        assert response.status_code in (200, 400), (patches, response.get_json())

    check()
    assert statuses == {200, 400}
    assert _payload(engine, row) == stored  # dry runs only: the stored payload is what it was


def _payload(engine, execution_uuid: str) -> dict:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT trigger_payload FROM or_ramp_executions WHERE uuid = :u"), {"u": execution_uuid}
        ).scalar_one()
