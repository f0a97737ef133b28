"""Replay with replacement input (SPEC section 10): `payload_patches` as JSON merge patches."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import RampExecution, WorkflowHistory
from tests.support.retry_scenarios import api_key_headers, execution, post, ramp, vendor, world


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="patcher")


def missing_company_id(**overrides) -> tuple[dict, dict]:
    r = ramp(1)
    row = execution(
        r,
        minutes=1,
        error_type="MissingTriggerField",
        error_message="trigger payload has no 'company.id'",
        payload={"company": {"name": "Globex"}, "owner": {"email": "a@globex.example"}, "note": "drop me"},
        **overrides,
    )
    return world([vendor(1)], [r], [row]), row


def test_a_missing_field_row_fixed_by_a_patch_replays_to_success(client, admin, load, session_factory):
    data, row = missing_company_id()
    load(data)
    patch = {"company": {"id": "c-42"}, "note": None}
    body = {"execution_uuids": [row["uuid"]], "payload_patches": {row["uuid"]: patch}, "force_retry": True}
    preview = post(client, admin, body).get_json()
    (entry,) = preview["eligible"]
    assert entry["payload"] == {"company": {"name": "Globex", "id": "c-42"}, "owner": {"email": "a@globex.example"}}

    done = post(client, admin, {**body, "dry_run": False, "suppress_notifications": True}).get_json()
    assert [(e["execution_uuid"], e["outcome"]) for e in done["eligible"]] == [(row["uuid"], "success")]
    assert done["eligible"][0]["payload"] == entry["payload"]
    with session_factory() as session, session.begin():
        stored = session.scalar(select(RampExecution).where(RampExecution.uuid == row["uuid"]))
        (history,) = session.scalars(select(WorkflowHistory).where(WorkflowHistory.execution_id == stored.id)).all()
    assert stored.status_code == "SUCCESS"
    assert stored.trigger_payload == entry["payload"]  # `null` removed "note"
    assert history.details["payload_patch"] == patch
    assert history.details["payload_before"] == row["payload"]


def test_without_force_retry_a_config_error_row_is_still_skipped(client, admin, load, session_factory):
    data, row = missing_company_id()
    load(data)
    body = {"execution_uuids": [row["uuid"]], "payload_patches": {row["uuid"]: {"company": {"id": "c-1"}}}}
    result = post(client, admin, {**body, "dry_run": False}).get_json()
    assert result["summary"]["skipped_by_reason"]["config_error"] == 1
    with session_factory() as session, session.begin():
        stored = session.scalar(select(RampExecution).where(RampExecution.uuid == row["uuid"]))
    assert stored.trigger_payload == row["payload"]  # untouched


def test_a_patch_kept_in_a_plan_is_applied_when_the_plan_runs(client, admin, load, session_factory):
    data, row = missing_company_id()
    load(data)
    body = {
        "execution_uuids": [row["uuid"]],
        "payload_patches": {row["uuid"]: {"company": {"id": "c-7"}}},
        "force_retry": True,
    }
    token = post(client, admin, body).get_json()["plan_token"]
    done = post(client, admin, {"plan_token": token, "dry_run": False, "suppress_notifications": True}).get_json()
    assert done["summary"]["success"] == 1
    with session_factory() as session, session.begin():
        stored = session.scalar(select(RampExecution).where(RampExecution.uuid == row["uuid"]))
    assert stored.trigger_payload["company"]["id"] == "c-7"


@pytest.mark.parametrize(
    "patches, key",
    [
        ({"00000000-0000-0000-0000-00000000abcd": {"a": 1}}, "00000000-0000-0000-0000-00000000abcd"),
        ({"not-a-uuid": {"a": 1}}, "not-a-uuid"),
        ({"ROW": [1, 2]}, "ROW"),
        ({"ROW": "text"}, "ROW"),
        ({"ROW": None}, "ROW"),
        ({"ROW": {"blob": "x" * (64 * 1024)}}, "ROW"),
    ],
)
def test_bad_patches_are_400_naming_the_key(client, admin, load, patches, key):
    data, row = missing_company_id()
    load(data)
    patches = {(row["uuid"] if k == "ROW" else k): v for k, v in patches.items()}
    key = row["uuid"] if key == "ROW" else key
    response = post(client, admin, {"execution_uuids": [row["uuid"]], "payload_patches": patches})
    assert response.status_code == 400, response.get_json()
    assert key in response.get_json()["error"]["details"]["payload_patches"]


def test_patches_need_hand_picked_rows(client, admin):
    response = post(client, admin, {"since": "2026-05-11T00:00:00Z", "payload_patches": {}})
    assert response.status_code == 400
    assert "payload_patches" in response.get_json()["error"]["details"]
