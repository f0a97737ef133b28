"""Every skip reason of the retry endpoint, their order, the window edges and hand-picked rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from app.models.base import utcnow
from app.retries import eligibility
from app.retries.reasons import REASON_CODES
from tests.support.retry_scenarios import (
    api_key_headers,
    execution,
    iso,
    new_uuid,
    post,
    ramp,
    vendor,
    window,
    world,
)


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory)


def dry_run(client, admin, body):
    response = post(client, admin, body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def reasons_of(body) -> dict[str, str]:
    return {row["execution_uuid"]: row["reason"] for row in body["skipped"]}


def eligible_uuids(body) -> list[str]:
    return [row["execution_uuid"] for row in body["eligible"]]


def only_reason(body, reason: str, count: int = 1) -> None:
    """Exactly `count` rows skipped, all for `reason`; every other counter is zero."""
    expected = dict.fromkeys(REASON_CODES, 0)
    expected[reason] = count
    assert body["summary"]["skipped_by_reason"] == expected


# ---- one test per reason ----------------------------------------------------------------------


def test_not_found_for_an_unknown_hand_picked_uuid(client, admin, load):
    r = ramp()
    known = execution(r)
    load(world([vendor()], [r], [known]))
    missing = new_uuid()
    body = dry_run(client, admin, {"execution_uuids": [known["uuid"], missing]})
    assert reasons_of(body) == {missing: "not_found"}
    assert eligible_uuids(body) == [known["uuid"]]
    only_reason(body, "not_found")
    assert body["summary"]["matched"] == 2


def test_status_not_error_for_a_hand_picked_row_that_succeeded(client, admin, load):
    r = ramp()
    done = execution(r, status="SUCCESS")
    load(world([vendor()], [r], [done]))
    body = dry_run(client, admin, {"execution_uuids": [done["uuid"]]})
    assert reasons_of(body) == {done["uuid"]: "status_not_error"}
    assert body["skipped"][0]["detail"] == "status is SUCCESS"
    only_reason(body, "status_not_error")


def test_project_already_exists(client, admin, load):
    r = ramp()
    linked, free = execution(r, has_project=True), execution(r, minutes=6)
    load(world([vendor()], [r], [linked, free]))
    body = dry_run(client, admin, window())
    assert reasons_of(body) == {linked["uuid"]: "project_already_exists"}
    assert eligible_uuids(body) == [free["uuid"]]
    only_reason(body, "project_already_exists")


@pytest.mark.parametrize("status", ["deleted", "archived"])
def test_ramp_deleted_or_archived(client, admin, load, status):
    gone, live = ramp(status=status), ramp()
    a, b = execution(gone), execution(live)
    load(world([vendor()], [gone, live], [a, b]))
    body = dry_run(client, admin, window())
    assert reasons_of(body) == {a["uuid"]: f"ramp_{status}"}
    assert eligible_uuids(body) == [b["uuid"]]
    only_reason(body, f"ramp_{status}")


def test_workflow_is_draft_when_the_ramp_is_a_draft(client, admin, load):
    r = ramp(status="draft")
    row = execution(r)
    load(world([vendor()], [r], [row]))
    body = dry_run(client, admin, window())
    assert reasons_of(body) == {row["uuid"]: "workflow_is_draft"}
    only_reason(body, "workflow_is_draft")


def test_workflow_is_draft_follows_the_version_to_run(client, admin, load):
    # Version 1 (the one the row ran) is published; version 2 (current) is a draft.
    r = ramp(versions=[{"version": 1}, {"version": 2, "draft": True}], current_version=2)
    row = execution(r, version=1)
    load(world([vendor()], [r], [row]))
    original = dry_run(client, admin, window())
    assert eligible_uuids(original) == [row["uuid"]]
    assert original["eligible"][0]["workflow_version_drift"] is True
    latest = dry_run(client, admin, window(workflow_version="latest"))
    assert reasons_of(latest) == {row["uuid"]: "workflow_is_draft"}
    assert latest["skipped"][0]["detail"] == "version 2 is a draft"


def test_workflow_is_draft_when_the_version_to_run_is_missing(client, admin, load, engine):
    r = ramp(versions=[{"version": 1}, {"version": 2}], current_version=2)
    row = execution(r, version=1)
    load(world([vendor()], [r], [row]))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM or_ramp_versions WHERE version = 1"))
    body = dry_run(client, admin, window())
    assert reasons_of(body) == {row["uuid"]: "workflow_is_draft"}
    assert body["skipped"][0]["detail"] == "version 1 does not exist"
    assert eligible_uuids(dry_run(client, admin, window(workflow_version="latest"))) == [row["uuid"]]


def test_duplicate_trigger_succeeded_for_a_success_of_the_same_ramp_and_key_earlier_or_later(client, admin, load):
    r, other = ramp(), ramp()
    failed = execution(r, minutes=5, trigger_key="deal-42")
    later_success = execution(r, minutes=9, status="SUCCESS", trigger_key="deal-42")
    # An earlier success of the deal counts too (the SPEC says a later one): a re-delivery that
    # failed after the deal got its project must not give it a second one.
    redelivered = execution(other, minutes=7, trigger_key="deal-7")
    earlier_success = execution(other, minutes=3, status="SUCCESS", trigger_key="deal-7")
    # The same key on another ramp, or another key: no reason to skip.
    other_ramp = execution(other, minutes=8, trigger_key="deal-42")
    other_key = execution(r, minutes=6, trigger_key="deal-8")
    rows = [failed, later_success, redelivered, earlier_success, other_ramp, other_key]
    load(world([vendor()], [r, other], rows))
    body = dry_run(client, admin, window())
    assert reasons_of(body) == {
        failed["uuid"]: "duplicate_trigger_succeeded",
        redelivered["uuid"]: "duplicate_trigger_succeeded",
    }
    details = {row["execution_uuid"]: row["detail"] for row in body["skipped"]}
    assert details[failed["uuid"]] == f"execution {later_success['uuid']} of trigger deal-42 succeeded"
    assert details[redelivered["uuid"]] == f"execution {earlier_success['uuid']} of trigger deal-7 succeeded"
    assert eligible_uuids(body) == [other_key["uuid"], other_ramp["uuid"]]


def test_config_error_skipped_unless_forced(client, admin, load):
    r = ramp()
    row = execution(r, error_type="MissingTriggerField", error_message="trigger payload has no 'company.id'")
    load(world([vendor()], [r], [row]))
    body = dry_run(client, admin, window())
    assert reasons_of(body) == {row["uuid"]: "config_error"}
    assert body["skipped"][0]["detail"] == "MissingTriggerField: trigger payload has no 'company.id'"
    assert eligible_uuids(dry_run(client, admin, window(force_retry=True))) == [row["uuid"]]


@pytest.mark.parametrize(
    "integration_data, detail",
    [
        (None, "vendor has no CRM integration"),
        ({"user_configured": False}, "integration is not configured"),
        ({"token_revoked": True}, "integration token is revoked"),
        ({"token_expires_at": "2026-01-01T00:00:00Z"}, "integration token expired at"),
    ],
)
def test_integration_disconnected(client, admin, load, integration_data, detail):
    from tests.support.retry_scenarios import integration

    data = None if integration_data is None else integration(**integration_data)
    r = ramp()
    row = execution(r)
    load(world([vendor(integration_data=data)], [r], [row]))
    body = dry_run(client, admin, window())
    assert reasons_of(body) == {row["uuid"]: "integration_disconnected"}
    assert body["skipped"][0]["detail"].startswith(detail)


def test_a_token_expiring_in_the_future_is_still_connected(client, admin, load):
    from tests.support.retry_scenarios import integration

    later = (utcnow() + timedelta(days=1)).isoformat()
    r = ramp()
    row = execution(r)
    load(world([vendor(integration_data=integration(token_expires_at=later))], [r], [row]))
    assert eligible_uuids(dry_run(client, admin, window())) == [row["uuid"]]


def test_outside_time_window_is_the_scope_edge_in_sql(session_factory, load):
    # The scope already keeps rows outside [since, until) away; the filter is defence in depth,
    # visible when the reason of one row is asked directly (as the re-check under lock does).
    from app.retries.schemas import RetryBatchRequestSchema

    r = ramp()
    row = execution(r, minutes=90)
    load(world([vendor()], [r], [row]))
    request = RetryBatchRequestSchema().load({"since": iso(0), "until": iso(60)})
    with session_factory() as session, session.begin():
        execution_id = session.execute(text("SELECT id FROM or_ramp_executions")).scalar_one()
        reason, detail = eligibility.recheck(session, request, execution_id)
    assert reason == "outside_time_window"
    assert detail.startswith("created_at 2026-05-11 14:00:00")


def test_error_pattern_is_a_literal_case_insensitive_substring(client, admin, load):
    r = ramp()
    new_task = execution(r, minutes=1, error_message="cannot access local variable 'NEW_TASK'")
    other = execution(r, minutes=2, error_message="cannot access local variable 'newXtask'")
    percent = execution(r, minutes=3, error_message="quota at 100% for new_task")
    load(world([vendor()], [r], [new_task, other, percent]))
    body = dry_run(client, admin, window(error_pattern="New_Task"))
    # `_` is not a wildcard: 'newXtask' does not match.
    assert eligible_uuids(body) == [new_task["uuid"], percent["uuid"]]
    assert reasons_of(body) == {other["uuid"]: "error_pattern_mismatch"}
    only_reason(body, "error_pattern_mismatch")
    # `%` is not a wildcard either.
    assert eligible_uuids(dry_run(client, admin, window(error_pattern="100%"))) == [percent["uuid"]]
    assert eligible_uuids(dry_run(client, admin, window(error_pattern="0%f"))) == []


def test_retry_limit_reached_follows_max_attempts(client, admin, load):
    r = ramp()
    tried = execution(r, replay_attempts=2)
    load(world([vendor()], [r], [tried]))
    assert reasons_of(dry_run(client, admin, window())) == {tried["uuid"]: "retry_limit_reached"}
    assert reasons_of(dry_run(client, admin, window(max_attempts=2))) == {tried["uuid"]: "retry_limit_reached"}
    assert eligible_uuids(dry_run(client, admin, window(max_attempts=3))) == [tried["uuid"]]


# ---- order ------------------------------------------------------------------------------------


def test_a_linked_project_on_an_archived_ramp_is_project_already_exists(client, admin, load):
    r = ramp(status="archived")
    row = execution(r, has_project=True)
    load(world([vendor()], [r], [row]))
    body = dry_run(client, admin, window())
    assert reasons_of(body) == {row["uuid"]: "project_already_exists"}
    only_reason(body, "project_already_exists")


def test_a_config_error_on_a_disconnected_integration_is_config_error(client, admin, load):
    r = ramp()
    row = execution(r, error_type="InvalidConfigurationError", error_message="bad mapping")
    load(world([vendor(integration_data=None)], [r], [row]))
    assert reasons_of(dry_run(client, admin, window())) == {row["uuid"]: "config_error"}
    # force_retry lifts filter 7 only; the next reason shows.
    forced = dry_run(client, admin, window(force_retry=True))
    assert reasons_of(forced) == {row["uuid"]: "integration_disconnected"}
    only_reason(forced, "integration_disconnected")


# ---- window edges, hand-picked rows, drift ----------------------------------------------------


def test_window_is_half_open(client, admin, load):
    r = ramp()
    before = execution(r, minutes=9.99)
    at_since = execution(r, minutes=10)
    inside = execution(r, minutes=15)
    at_until = execution(r, minutes=20)
    load(world([vendor()], [r], [before, at_since, inside, at_until]))
    body = dry_run(client, admin, {"since": iso(10), "until": iso(20)})
    assert eligible_uuids(body) == [at_since["uuid"], inside["uuid"]]
    assert body["summary"]["matched"] == 2
    assert body["skipped"] == []


def test_naive_times_are_utc(client, admin, load):
    r = ramp()
    row = execution(r, minutes=10)
    load(world([vendor()], [r], [row]))
    body = dry_run(client, admin, {"since": "2026-05-11T12:40:00", "until": "2026-05-11T12:41:00"})
    assert eligible_uuids(body) == [row["uuid"]]
    # The same instant written with another offset.
    body = dry_run(client, admin, {"since": "2026-05-11T14:40:00+02:00", "until": "2026-05-11T14:40:01+02:00"})
    assert eligible_uuids(body) == [row["uuid"]]


def test_window_scope_narrowed_by_vendor_and_ramp(client, admin, load):
    r1, r2, r3 = ramp(1), ramp(1), ramp(2)
    a, b, c = execution(r1), execution(r2), execution(r3)
    load(world([vendor(1), vendor(2)], [r1, r2, r3], [a, b, c]))
    assert set(eligible_uuids(dry_run(client, admin, window(vendor_ids=[1])))) == {a["uuid"], b["uuid"]}
    assert eligible_uuids(dry_run(client, admin, window(ramp_uuids=[r2["uuid"]]))) == [b["uuid"]]
    assert eligible_uuids(dry_run(client, admin, window(vendor_ids=[2], ramp_uuids=[r1["uuid"]]))) == []


def test_window_scope_only_takes_error_rows(client, admin, load):
    r = ramp()
    rows = [execution(r, status=s) for s in ("PENDING", "RUNNING", "SUCCESS")] + [execution(r)]
    load(world([vendor()], [r], rows))
    body = dry_run(client, admin, window())
    assert body["summary"]["matched"] == 1
    assert eligible_uuids(body) == [rows[-1]["uuid"]]


def test_hand_picked_rows_are_not_window_checked(client, admin, load):
    r = ramp()
    old = execution(r, minutes=-60 * 24 * 365)
    load(world([vendor()], [r], [old]))
    body = dry_run(client, admin, {"execution_uuids": [old["uuid"]]})
    assert eligible_uuids(body) == [old["uuid"]]
    assert body["summary"]["skipped"] == 0


def test_drift_flag(client, admin, load):
    r = ramp(versions=[{"version": 1}, {"version": 2}], current_version=2)
    old, current = execution(r, minutes=1, version=1), execution(r, minutes=2, version=2)
    load(world([vendor()], [r], [old, current]))
    body = dry_run(client, admin, window())
    assert [(e["execution_uuid"], e["workflow_version_drift"]) for e in body["eligible"]] == [
        (old["uuid"], True),
        (current["uuid"], False),
    ]


def test_dry_run_response_shape(client, admin, load):
    r = ramp()
    row = execution(r)
    skipped = execution(r, minutes=6, has_project=True)
    load(world([vendor()], [r], [row, skipped]))
    body = dry_run(client, admin, window())
    assert set(body) == {
        "batch_id",
        "dry_run",
        "summary",
        "eligible",
        "skipped",
        "skipped_truncated",
        "plan_token",
        "plan_expires_at",
    }
    assert body["dry_run"] is True
    assert body["summary"] == {
        "matched": 2,
        "eligible": 1,
        "selected": 1,
        "skipped": 1,
        "skipped_by_reason": {code: int(code == "project_already_exists") for code in REASON_CODES},
        "success": 0,
        "error": 0,
        "remaining": 0,
    }
    assert list(body["summary"]["skipped_by_reason"]) == list(REASON_CODES)
    assert body["eligible"] == [
        {
            "execution_uuid": row["uuid"],
            "vendor_id": 1,
            "ramp_uuid": r["uuid"],
            "created_at": "2026-05-11T12:35:00+00:00",
            "error_message": "cannot access local variable 'new_task'",
            "workflow_version_drift": False,
            "outcome": "would_replay",
            "error": None,
            "project_uuid": None,
        }
    ]
    assert body["skipped"][0]["execution_uuid"] == skipped["uuid"]
    assert body["skipped"][0]["reason"] == "project_already_exists"
    assert body["skipped_truncated"] is False
