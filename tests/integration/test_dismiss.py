"""Dismiss without replay (SPEC section 9)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text

from app.models import RampExecution, RetryBatch, WorkflowHistory
from app.models.executions import HISTORY_ACTION_DISMISSED
from tests.support.retry_scenarios import api_key_headers, backlog, execution, post, ramp, vendor, window, world

DISMISS = "/api/ramps/executions/dismiss-batch"


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="dismisser")


def dismiss(client, headers, body):
    return client.post(DISMISS, json=body, headers=headers)


def statuses(session_factory) -> dict[str, str]:
    with session_factory() as session, session.begin():
        return {str(u): s for u, s in session.execute(select(RampExecution.uuid, RampExecution.status_code))}


def test_a_dry_run_changes_nothing(client, admin, load, session_factory):
    data = backlog(2)
    load(data)
    picked = [e["uuid"] for e in data["executions"]]
    response = dismiss(client, admin, {"execution_uuids": picked, "reason": "customer gone"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["dry_run"] is True
    assert body["summary"] == {"matched": 2, "dismissed": 2, "skipped": 0}
    assert body["dismissed"] == picked
    assert set(statuses(session_factory).values()) == {"ERROR"}
    with session_factory() as session, session.begin():
        assert session.scalars(select(WorkflowHistory)).all() == []
        (audit,) = session.scalars(select(RetryBatch)).all()
    assert (audit.kind, audit.dry_run, audit.actor) == ("dismiss", True, "dismisser")
    assert audit.summary == {"matched": 2, "dismissed": 2, "skipped": 0}


def test_executed_rows_become_dismissed_with_one_history_row_and_leave_every_scope(
    client, admin, load, session_factory
):
    r = ramp(1)
    rows = [execution(r, minutes=1), execution(r, minutes=2), execution(r, minutes=3, status="SUCCESS")]
    load(world([vendor(1)], [r], rows))
    picked = [rows[0]["uuid"], rows[2]["uuid"], str(uuid.uuid4())]
    body = dismiss(client, admin, {"execution_uuids": picked, "reason": "handled by hand", "dry_run": False}).get_json()
    assert body["summary"] == {"matched": 3, "dismissed": 1, "skipped": 2}
    assert body["dismissed"] == [rows[0]["uuid"]]
    assert {s["execution_uuid"]: s["reason"] for s in body["skipped"]} == {
        rows[2]["uuid"]: "status_not_error",
        picked[2]: "not_found",
    }
    assert statuses(session_factory)[rows[0]["uuid"]] == "DISMISSED"
    with session_factory() as session, session.begin():
        (history,) = session.scalars(select(WorkflowHistory)).all()
    assert history.action == HISTORY_ACTION_DISMISSED
    assert (history.actor, history.details["reason"], str(history.batch_id)) == (
        "dismisser",
        "handled by hand",
        body["batch_id"],
    )

    # Out of every later window scope and summary; a hand-picked retry skips it.
    dry = post(client, admin, window()).get_json()
    assert dry["summary"]["matched"] == 1 and dry["eligible"][0]["execution_uuid"] == rows[1]["uuid"]
    picked_retry = post(client, admin, {"execution_uuids": [rows[0]["uuid"]], "dry_run": False}).get_json()
    assert picked_retry["summary"]["skipped_by_reason"]["status_not_error"] == 1
    assert picked_retry["summary"]["selected"] == 0
    assert statuses(session_factory)[rows[0]["uuid"]] == "DISMISSED"
    again = dismiss(client, admin, {"execution_uuids": [rows[0]["uuid"]], "reason": "x", "dry_run": False}).get_json()
    assert again["skipped"][0]["reason"] == "status_not_error"


def test_a_row_held_by_another_transaction_is_reported_locked(client, admin, load, engine, session_factory):
    data = backlog(2)
    load(data)
    held, free = (e["uuid"] for e in data["executions"])
    with engine.connect() as other:
        other.execute(text("SELECT 1 FROM or_ramp_executions WHERE uuid = :u FOR UPDATE"), {"u": held})
        body = dismiss(client, admin, {"execution_uuids": [held, free], "reason": "gone", "dry_run": False}).get_json()
        other.rollback()
    assert body["dismissed"] == [free]
    assert [(s["execution_uuid"], s["reason"]) for s in body["skipped"]] == [(held, "locked")]
    assert statuses(session_factory) == {held: "ERROR", free: "DISMISSED"}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"execution_uuids": ["00000000-0000-0000-0000-000000000001"]}, "reason"),
        ({"execution_uuids": ["00000000-0000-0000-0000-000000000001"], "reason": ""}, "reason"),
        ({"execution_uuids": ["00000000-0000-0000-0000-000000000001"], "reason": "   "}, "reason"),
        ({"execution_uuids": ["00000000-0000-0000-0000-000000000001"], "reason": "x" * 501}, "reason"),
        ({"execution_uuids": [], "reason": "x"}, "execution_uuids"),
        ({"reason": "x"}, "execution_uuids"),
        ({"execution_uuids": ["nope"], "reason": "x"}, "execution_uuids"),
        ({"execution_uuids": ["00000000-0000-0000-0000-000000000001"], "reason": "x", "dry_run": "no"}, "dry_run"),
        ({"execution_uuids": ["00000000-0000-0000-0000-000000000001"], "reason": "x", "since": "2026"}, "since"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(client, admin, body, field):
    response = dismiss(client, admin, body)
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["error"]["details"]
