"""Hostile input to the retry endpoint and the trigger webhook: every bad body is a 4xx in the one
JSON error shape, never a 500; `error_pattern` is a literal substring, never SQL or LIKE syntax."""

from __future__ import annotations

import json
import math
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
from tests.support import strategies
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


def _audit_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM or_retry_batches")).scalar_one()


def _field_error(response, field: str) -> list[str]:
    error = _error(response, 400, "validation_error")
    assert field in error["details"], error
    return error["details"][field]


# Raw JSON text, because json.dumps cannot write a lone surrogate escape, NaN or a repeated key
# the way a hostile client can.
@pytest.mark.parametrize("escaped", [r"\ud800", r"\udfff", r"x\ud800y", r"\udc00\ud800"])
def test_lone_surrogate_in_error_pattern_is_400_naming_the_field(client, admin, engine, escaped):
    raw = f'{{"since": "{iso(0)}", "error_pattern": "{escaped}"}}'.encode()
    assert "surrogate" in " ".join(_field_error(_raw(client, admin, raw), "error_pattern"))
    assert _audit_rows(engine) == 0


def test_a_valid_surrogate_pair_is_accepted(client, admin, engine):
    raw = f'{{"since": "{iso(0)}", "error_pattern": "\\ud83d\\ude00"}}'.encode()  # one emoji
    response = _raw(client, admin, raw)
    assert response.status_code == 200, response.get_json()
    assert _audit_rows(engine) == 1


@pytest.mark.parametrize("value", [2**63, 10**30, -(2**63) - 1])
def test_vendor_ids_beyond_bigint_are_400(client, admin, value):
    _field_error(post(client, admin, window(vendor_ids=[1, value])), "vendor_ids")


def test_largest_bigint_vendor_id_is_accepted(client, admin):
    response = post(client, admin, window(vendor_ids=[2**63 - 1]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["summary"]["matched"] == 0


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "execute"])
def test_max_attempts_beyond_integer_is_400(client, admin, dry_run):
    _field_error(post(client, admin, window(max_attempts=2**31, dry_run=dry_run)), "max_attempts")


def test_largest_max_attempts_executes(client, admin, load, engine):
    data, _ = _messages_world(["boom"])
    load(data)
    response = post(client, admin, window(max_attempts=2**31 - 1, dry_run=False))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["summary"]["selected"] == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("since", "0001-01-01T00:00:00+05:00"),
        ("since", "0001-01-01T04:59:59+05:00"),
        ("until", "9999-12-31T23:59:59-05:00"),
        ("until", "9999-12-31T19:00:00-05:00"),
    ],
)
def test_times_outside_the_utc_range_are_400(client, admin, field, value):
    body = {"since": "0001-01-01T00:00:00Z", field: value}
    assert "UTC" in " ".join(_field_error(post(client, admin, body), field))


def test_the_widest_utc_window_is_accepted(client, admin):
    body = {"since": "0001-01-01T05:00:00+05:00", "until": "9999-12-31T18:59:59-05:00"}
    response = post(client, admin, body)
    assert response.status_code == 200, response.get_json()
    response = post(client, admin, {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999999Z"})
    assert response.status_code == 200, response.get_json()


def _signed_trigger(client, ramp_uuid: str, raw: bytes):
    return client.post(
        f"/api/ramps/{ramp_uuid}/trigger",
        data=raw,
        content_type="application/json",
        headers={"X-Onramp-Signature": sign(sc.SIGNING_SECRET, raw)},
    )


def _executions(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM or_ramp_executions")).scalar_one()


@pytest.mark.parametrize("literal", ['"\\ud800"', '"a\\udbff"', "NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_trigger_data_the_database_cannot_store_is_400_naming_the_path(client, trigger_ramp_uuid, engine, literal):
    raw = f'{{"trigger_key": "k-1", "data": {{"company": {{"id": "c-1", "name": {literal}}}}}}}'.encode()
    _field_error(_signed_trigger(client, trigger_ramp_uuid, raw), "data.company.name")
    assert _executions(engine) == 0


def test_bad_values_in_lists_and_keys_are_named_by_path(client, trigger_ramp_uuid):
    raw = b'{"trigger_key": "k-1", "data": {"tags": ["ok", NaN], "\\ud800": 1}}'
    error = _error(_signed_trigger(client, trigger_ramp_uuid, raw), 400, "validation_error")
    assert "data.tags[1]" in error["details"], error
    # The bad key itself is named in escaped form: the answer never carries a lone surrogate.
    assert 'data["\\ud800"]' in error["details"], error


def test_every_bad_value_is_named_in_one_answer(client, admin):
    raw = f'{{"since": "{iso(0)}", "error_pattern": "\\ud800", "max_attempts": NaN}}'.encode()
    error = _error(_raw(client, admin, raw), 400, "validation_error")
    assert {"error_pattern", "max_attempts"} <= set(error["details"]), error


@pytest.mark.parametrize(
    "raw, path",
    [
        (b'{"since": "2026-05-11T12:30:00Z", "dry_run": true, "dry_run": false}', "dry_run"),
        (b'{"since": "2026-05-11T12:30:00Z", "dry_run": false, "dry_run": true}', "dry_run"),
        (b'{"since": "2026-05-11T12:30:00Z", "since": "2026-05-11T12:30:00Z"}', "since"),
    ],
)
def test_repeated_key_in_a_retry_body_is_400_and_nothing_runs(client, admin, load, engine, raw, path):
    data, _ = _messages_world(["boom"])
    load(data)
    error = _error(_raw(client, admin, raw), 400, "validation_error")
    assert path in error["details"], error
    assert _audit_rows(engine) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM or_workflow_history")).scalar_one() == 0


def test_repeated_key_in_trigger_data_is_400_naming_the_path(client, trigger_ramp_uuid, engine):
    raw = b'{"trigger_key": "k-1", "data": {"company": {"id": "c-1", "name": "A", "id": "c-2"}}}'
    error = _error(_signed_trigger(client, trigger_ramp_uuid, raw), 400, "validation_error")
    assert "data.company.id" in error["details"], error
    assert _executions(engine) == 0


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

_UNSTORABLE = strategies.UNSTORABLE
_text = strategies.hostile_text
_edge_integers = strategies.EDGE_INTEGERS
_json_scalars = strategies.JSON_SCALARS
_json = strategies.JSON
_retry_keys = st.sampled_from(list(RetryBatchRequestSchema().fields)) | _text(12)
_iso_times = strategies.ISO_TIMES
_retry_values = (
    _json
    | _iso_times
    | st.lists(st.uuids().map(str), max_size=3)
    | st.lists(st.integers() | _edge_integers, max_size=3)
)
# Well-typed bodies whose values sit at (or beyond) what the database can hold: they get past
# the type checks, so they test the ranges and what reaches PostgreSQL.
_edge_bodies = st.fixed_dictionaries(
    {"since": _iso_times},
    optional={
        "until": _iso_times,
        "vendor_ids": st.lists(st.integers(min_value=1) | _edge_integers, min_size=1, max_size=3),
        "max_attempts": st.integers(min_value=1, max_value=5) | _edge_integers,
        "error_pattern": _text(12).filter(bool),
        "dry_run": st.booleans(),
    },
)


@pytest.mark.slow  # 300 hypothesis examples
@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(_retry_keys, _retry_values, max_size=6) | _edge_bodies | _json)
def test_retry_schema_load_either_returns_or_raises_validation_error(document):
    try:
        result = RetryBatchRequestSchema().load(document)
    except ValidationError:
        return
    assert isinstance(result, RetryRequest)


@pytest.mark.slow  # 300 hypothesis examples
@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(["trigger_key", "data"]) | _text(8), _json, max_size=4) | _json)
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
        | _text(8),
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
_retry_documents |= _edge_bodies


@pytest.mark.slow  # hypothesis examples through the endpoint
def test_retry_endpoint_never_answers_500_on_arbitrary_json(client, admin, engine):
    statuses: set[int] = set()

    @_ENDPOINT_SETTINGS
    @given(_retry_documents)
    def check(document):
        audited = _audit_rows(engine)
        response = _raw(client, admin, json.dumps(document).encode())
        statuses.add(response.status_code)
        assert response.status_code in (200, 400), (document, response.get_json())
        # Every answered call has its audit row; a refused one never started.
        assert _audit_rows(engine) == audited + (response.status_code == 200), document
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
    st.fixed_dictionaries({"trigger_key": _text(20), "data": st.dictionaries(_text(8), _json, max_size=3)})
    | st.dictionaries(_text(10), _json, max_size=4)
    | _json
    # Runnable payloads carrying one value PostgreSQL may not store.
    | st.builds(
        lambda key, value: {"trigger_key": key, "data": {"company": {"id": "c-1", "name": value}}},
        _text(8).filter(bool),
        st.sampled_from([math.nan, math.inf, -math.inf]) | _UNSTORABLE.map("a{}b".format) | _json_scalars,
    )
)


@pytest.mark.slow  # hypothesis examples through the endpoint
def test_trigger_endpoint_never_answers_500_on_arbitrary_signed_json(client, trigger_ramp_uuid, engine):
    statuses: set[int] = set()

    @_ENDPOINT_SETTINGS
    @given(_trigger_documents)
    def check(document):
        executions = _executions(engine)
        response = _signed_trigger(client, trigger_ramp_uuid, json.dumps(document).encode())
        statuses.add(response.status_code)
        assert response.status_code in (200, 201, 400), (document, response.get_json())
        if response.status_code == 200:  # a generated key that had already succeeded: nothing ran
            assert response.get_json()["duplicate"] is True, document
        assert _executions(engine) == executions + (response.status_code == 201), document

    check()
    assert {201, 400} <= statuses  # signed bodies both ran and were refused


def test_trigger_deeply_nested_signed_json_is_400(client, trigger_ramp_uuid):
    raw = b'{"trigger_key": "k", "data": {"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}"
    response = client.post(
        f"/api/ramps/{trigger_ramp_uuid}/trigger",
        data=raw,
        content_type="application/json",
        headers={"X-Onramp-Signature": sign(sc.SIGNING_SECRET, raw)},
    )
    _error(response, 400, "validation_error")


def _object_text(pairs: list[tuple[str, object]]) -> str:
    """A JSON object written pair by pair, so a key can appear twice (json.dumps cannot)."""
    return "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"


_retry_pairs = st.lists(
    st.tuples(
        st.sampled_from(["since", "until", "dry_run", "max_attempts", "error_pattern", "force_retry"]), _retry_values
    ),
    min_size=1,
    max_size=5,
)


def test_retry_endpoint_never_resolves_a_repeated_key(client, admin, engine):
    repeated_seen = 0

    @_ENDPOINT_SETTINGS
    @given(_retry_pairs)
    def check(pairs):
        nonlocal repeated_seen
        keys = [k for k, _ in pairs]
        repeated = {k for k in keys if keys.count(k) > 1}
        audited = _audit_rows(engine)
        response = _raw(client, admin, _object_text([("since", iso(0)), *pairs]).encode())
        if not repeated and "since" not in keys:
            assert response.status_code in (200, 400), (pairs, response.get_json())
            return
        repeated_seen += 1
        error = _error(response, 400, "validation_error")
        assert (repeated | ({"since"} if "since" in keys else set())) <= set(error["details"]), (pairs, error)
        assert _audit_rows(engine) == audited

    check()
    assert repeated_seen >= 10


_trigger_data_pairs = st.lists(st.tuples(st.sampled_from(["id", "name", "x"]), _json), min_size=2, max_size=4)


def test_trigger_never_resolves_a_repeated_key_in_data(client, trigger_ramp_uuid, engine):
    @_ENDPOINT_SETTINGS
    @given(_trigger_data_pairs)
    def check(pairs):
        keys = [k for k, _ in pairs]
        repeated = {f"data.company.{k}" for k in keys if keys.count(k) > 1}
        # A fresh key each time: a key that already succeeded is answered as a duplicate.
        raw = f'{{"trigger_key": "k-{uuid.uuid4().hex}", "data": {{"company": {_object_text(pairs)}}}}}'.encode()
        executions = _executions(engine)
        response = _signed_trigger(client, trigger_ramp_uuid, raw)
        if repeated:
            error = _error(response, 400, "validation_error")
            assert repeated <= set(error["details"]), (pairs, error)
            assert _executions(engine) == executions
        else:
            assert response.status_code in (201, 400), (pairs, response.get_json())

    check()
