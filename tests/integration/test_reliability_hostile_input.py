"""Hostile input to the retry endpoint and the trigger webhook: every bad body is a 4xx in the one
JSON error shape, never a 500; `error_pattern` is a literal substring, never SQL or LIKE syntax."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from sqlalchemy import text

from app.retries.schemas import MAX_LIST_ITEMS, RetryBatchRequestSchema, RetryRequest
from app.signing import sign
from app.triggers.schemas import TriggerRequestSchema
from tests.support import scenarios as sc
from tests.support.retry_scenarios import (
    URL,
    api_key_headers,
    execution,
    iso,
    post,
    ramp,
    vendor,
    window,
    world,
)


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert set(body) == {"error", "request_id"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def _raw(client, headers, data: bytes, content_type: str = "application/json"):
    return client.post(URL, data=data, content_type=content_type, headers=headers)


def test_body_over_max_content_length_is_413(client, admin, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 1024 * 1024
    padding = "x" * (limit + 1)
    _error(
        _raw(client, admin, json.dumps({"since": iso(0), "error_pattern": padding}).encode()), 413, "payload_too_large"
    )


def test_uuid_list_over_the_cap_is_400_naming_the_field(client, admin):
    # Well over the cap but under 1 MiB, so it is the cap (not the size limit) that answers.
    uuids = [str(uuid.uuid4()) for _ in range(MAX_LIST_ITEMS * 20)]
    error = _error(post(client, admin, {"execution_uuids": uuids}), 400, "validation_error")
    assert "execution_uuids" in error["details"]


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"since": "2026-05-11T12:30:00Z", "vendor_ids": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    ],
    ids=["nested-lists", "nested-in-field", "nested-objects"],
)
def test_deeply_nested_json_is_400_not_500(client, admin, raw):
    _error(_raw(client, admin, raw), 400, "validation_error")


@pytest.mark.parametrize(
    "raw",
    [b'{"since": "\xff\xfe2026"}', b"\xc3\x28", b'{"error_pattern": "\xed\xa0\x80"}'],
    ids=["bad-bytes-in-string", "bad-sequence", "surrogate"],
)
def test_invalid_utf8_is_400(client, admin, raw):
    _error(_raw(client, admin, raw), 400, "validation_error")


def test_nul_character_in_error_pattern_is_not_a_500(client, admin):
    # PostgreSQL text cannot hold NUL: refused up front instead of failing at INSERT time.
    _error(post(client, admin, window(error_pattern="bad\u0000pattern")), 400, "validation_error")


def _messages_world(messages: list[str]) -> tuple[dict, dict[str, str]]:
    r = ramp(1)
    rows = [execution(r, minutes=1 + i, error_message=m) for i, m in enumerate(messages)]
    return world([vendor(1)], [r], rows), {row["error_message"]: row["uuid"] for row in rows}


@pytest.mark.parametrize(
    "pattern, matching",
    [
        ("%_d", ["job 50%_done"]),
        ("50%", ["job 50%_done", "job 50% done"]),
        ("_", ["job 50%_done", "a_b", "x'; drop table or_projects; -- y"]),
        ("%", ["job 50%_done", "job 50% done"]),
        ("'; DROP TABLE or_projects; --", ["x'; drop table or_projects; -- y"]),
        ("\\", ["back\\slash"]),
    ],
)
def test_error_pattern_is_a_literal_substring(client, admin, load, engine, pattern, matching):
    messages = ["job 50%_done", "job 50% done", "road", "a_b", "x'; drop table or_projects; -- y", "back\\slash"]
    data, by_message = _messages_world(messages)
    load(data)

    response = post(client, admin, window(error_pattern=pattern, max_attempts=5))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert sorted(e["execution_uuid"] for e in body["eligible"]) == sorted(by_message[m] for m in matching)
    assert body["summary"]["skipped_by_reason"]["error_pattern_mismatch"] == len(messages) - len(matching)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('or_projects')")).scalar_one() is not None


# ---- property tests ---------------------------------------------------------------------------

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_retry_keys = st.sampled_from(list(RetryBatchRequestSchema().fields)) | st.text(max_size=12)
_iso_times = st.datetimes().map(lambda d: d.isoformat())
_retry_values = _json | _iso_times | st.lists(st.uuids().map(str), max_size=3) | st.lists(st.integers(), max_size=3)


@pytest.mark.slow  # 300 hypothesis examples
@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(_retry_keys, _retry_values, max_size=6) | _json)
def test_retry_schema_load_either_returns_or_raises_validation_error(document):
    try:
        result = RetryBatchRequestSchema().load(document)
    except ValidationError:
        return
    assert isinstance(result, RetryRequest)


@pytest.mark.slow  # 300 hypothesis examples
@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(["trigger_key", "data"]) | st.text(max_size=8), _json, max_size=4) | _json)
def test_trigger_schema_load_either_returns_or_raises_validation_error(document):
    try:
        TriggerRequestSchema().load(document)
    except ValidationError:
        return


_ENDPOINT_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_retry_documents = (
    st.dictionaries(
        st.sampled_from(["since", "until", "execution_uuids", "vendor_ids", "error_pattern", "dry_run", "max_attempts"])
        | st.text(max_size=8),
        _retry_values,
        max_size=5,
    )
    | _json
)
# Valid-looking bodies with a few random extras, so some requests get past validation.
_retry_documents |= st.dictionaries(
    st.sampled_from(["until", "error_pattern", "dry_run", "max_attempts", "vendor_ids", "force_retry"]),
    _retry_values,
    max_size=2,
).map(lambda extra: {"since": iso(0), **extra})


@pytest.mark.slow  # hypothesis examples through the endpoint
def test_retry_endpoint_never_answers_500_on_arbitrary_json(client, admin):
    statuses: set[int] = set()

    @_ENDPOINT_SETTINGS
    @given(_retry_documents)
    def check(document):
        response = _raw(client, admin, json.dumps(document).encode())
        statuses.add(response.status_code)
        assert response.status_code in (200, 400), (document, response.get_json())
        if response.status_code == 400:
            assert response.get_json()["error"]["code"] == "validation_error"

    check()
    assert statuses == {200, 400}  # both accepted and refused bodies were generated


@pytest.fixture
def trigger_ramp_uuid(load):
    # No network step: arbitrary payloads fail or succeed locally and fast.
    data = sc.scenario(ramp_steps=["find_or_create_account", "create_project"])
    load(data)
    return data["ramps"][0]["uuid"]


_trigger_documents = (
    st.fixed_dictionaries(
        {"trigger_key": st.text(max_size=20), "data": st.dictionaries(st.text(max_size=8), _json, max_size=3)}
    )
    | st.dictionaries(st.text(max_size=10), _json, max_size=4)
    | _json
)


@pytest.mark.slow  # hypothesis examples through the endpoint
def test_trigger_endpoint_never_answers_500_on_arbitrary_signed_json(client, trigger_ramp_uuid):
    statuses: set[int] = set()

    @_ENDPOINT_SETTINGS
    @given(_trigger_documents)
    def check(document):
        raw = json.dumps(document).encode()
        response = client.post(
            f"/api/ramps/{trigger_ramp_uuid}/trigger",
            data=raw,
            content_type="application/json",
            headers={"X-Onramp-Signature": sign(sc.SIGNING_SECRET, raw)},
        )
        statuses.add(response.status_code)
        assert response.status_code in (201, 400), (document, response.get_json())

    check()
    assert statuses == {201, 400}  # signed bodies both ran and were refused


def test_trigger_deeply_nested_signed_json_is_400(client, trigger_ramp_uuid):
    raw = b'{"trigger_key": "k", "data": {"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}"
    response = client.post(
        f"/api/ramps/{trigger_ramp_uuid}/trigger",
        data=raw,
        content_type="application/json",
        headers={"X-Onramp-Signature": sign(sc.SIGNING_SECRET, raw)},
    )
    _error(response, 400, "validation_error")
