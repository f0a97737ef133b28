"""The request contract of the retry endpoint: auth, content type, and every validation rule."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.models import RetryBatch
from app.models.identity import ROLE_VIEWER
from app.retries.schemas import MAX_LIST_ITEMS
from tests.support.retry_scenarios import URL, api_key_headers, iso, post


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory)


def batches(session_factory) -> int:
    with session_factory() as session, session.begin():
        return session.scalar(select(func.count()).select_from(RetryBatch))


def bad(client, admin, body) -> dict:
    response = post(client, admin, body)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    return error["details"]


SINCE = iso(0)
UNTIL = iso(60)
SOME_UUID = str(uuid.uuid4())


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "since"),
        ({"until": UNTIL}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": 1715430600}, "since"),
        ({"since": SINCE, "until": SINCE}, "until"),
        ({"since": UNTIL, "until": SINCE}, "until"),
        ({"execution_uuids": [SOME_UUID], "since": SINCE}, "since"),
        ({"execution_uuids": [SOME_UUID], "until": UNTIL}, "until"),
        ({"execution_uuids": [SOME_UUID], "vendor_ids": [1]}, "vendor_ids"),
        ({"execution_uuids": ["not-a-uuid"]}, "execution_uuids"),
        ({"execution_uuids": SOME_UUID}, "execution_uuids"),
        ({"execution_uuids": []}, "execution_uuids"),
        ({"since": SINCE, "vendor_ids": ["1"]}, "vendor_ids"),
        ({"since": SINCE, "vendor_ids": [1.5]}, "vendor_ids"),
        ({"since": SINCE, "vendor_ids": [True]}, "vendor_ids"),
        ({"since": SINCE, "vendor_ids": 1}, "vendor_ids"),
        ({"since": SINCE, "ramp_uuids": ["x"]}, "ramp_uuids"),
        ({"since": SINCE, "error_pattern": ""}, "error_pattern"),
        ({"since": SINCE, "error_pattern": 42}, "error_pattern"),
        ({"since": SINCE, "suppress_notifications": "true"}, "suppress_notifications"),
        ({"since": SINCE, "force_retry": 1}, "force_retry"),
        ({"since": SINCE, "dry_run": "false"}, "dry_run"),
        ({"since": SINCE, "dry_run": None}, "dry_run"),
        ({"since": SINCE, "max_attempts": 0}, "max_attempts"),
        ({"since": SINCE, "max_attempts": "2"}, "max_attempts"),
        ({"since": SINCE, "max_attempts": 1.0}, "max_attempts"),
        ({"since": SINCE, "workflow_version": "newest"}, "workflow_version"),
        ({"since": SINCE, "dryrun": False}, "dryrun"),
    ],
)
def test_each_rule_is_a_400_naming_the_field(client, admin, session_factory, body, field):
    details = bad(client, admin, body)
    assert field in details, details
    assert batches(session_factory) == 0  # a rejected request does nothing at all


def test_every_bad_field_is_named_at_once(client, admin):
    details = bad(client, admin, {"max_attempts": 0, "workflow_version": "x", "colour": "red"})
    assert set(details) == {"since", "max_attempts", "workflow_version", "colour"}


def test_list_sizes_are_capped(client, admin):
    too_many = [str(uuid.uuid4()) for _ in range(1000)]
    assert "execution_uuids" in bad(client, admin, {"execution_uuids": too_many})
    assert "vendor_ids" in bad(client, admin, {"since": SINCE, "vendor_ids": list(range(1, MAX_LIST_ITEMS + 2))})
    at_cap = [str(uuid.uuid4()) for _ in range(MAX_LIST_ITEMS)]
    response = post(client, admin, {"execution_uuids": at_cap})
    assert response.status_code == 200
    assert response.get_json()["summary"]["skipped_by_reason"]["not_found"] == MAX_LIST_ITEMS


def test_body_must_be_a_json_object(client, admin):
    assert "_schema" in bad(client, admin, [SINCE])
    response = client.post(URL, data="{not json", headers=admin | {"Content-Type": "application/json"})
    assert response.status_code == 400


def test_non_json_body_is_415(client, admin, session_factory):
    response = client.post(
        URL, data=f"since={SINCE}", headers=admin | {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"
    response = client.post(URL, data="", headers=admin)
    assert response.status_code == 415
    assert batches(session_factory) == 0


def test_no_credentials_is_401(client, session_factory):
    response = client.post(URL, json={"since": SINCE})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert batches(session_factory) == 0


def test_wrong_secret_is_401(client, admin):
    response = post(client, admin | {"or-internal-api-auth-secret": "wrong"}, {"since": SINCE})
    assert response.status_code == 401


def test_viewer_key_is_403(client, session_factory):
    viewer = api_key_headers(session_factory, role=ROLE_VIEWER)
    response = post(client, viewer, {"since": SINCE, "dry_run": False})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert batches(session_factory) == 0


def test_defaults_are_filled_in(client, admin, session_factory):
    response = post(client, admin, {"since": "2026-05-11T12:30:00"})
    assert response.status_code == 200
    assert response.get_json()["dry_run"] is True  # dry run unless asked otherwise
    with session_factory() as session, session.begin():
        request = session.scalar(select(RetryBatch.request))
    assert request["since"] == "2026-05-11T12:30:00+00:00"
    assert (request["dry_run"], request["suppress_notifications"], request["force_retry"]) == (True, False, False)
    assert (request["max_attempts"], request["workflow_version"]) == (1, "original")


def test_duplicate_uuids_are_counted_once(client, admin):
    response = post(client, admin, {"execution_uuids": [SOME_UUID, SOME_UUID.upper()]})
    assert response.get_json()["summary"]["matched"] == 1
