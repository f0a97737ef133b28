"""One deal, one project: a replay and a CRM trigger of the same ramp and trigger key never both
run (issue: the probe got two SUCCESS executions and two projects for one deal).

Reproduced as the probe did: another session holds `LOCK TABLE or_projects IN EXCLUSIVE MODE` (a
stand-in for a slow step) while the replay runs, and the signed trigger arrives meanwhile.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest
from sqlalchemy import func, select, text

from app import create_app
from app.models import Project, RampExecution, WorkflowHistory
from app.models.executions import HISTORY_ACTION_TRIGGER_DUPLICATE
from app.signing import sign
from app.workflow.trigger_keys import try_trigger_key
from tests.support import scenarios as sc
from tests.support.retry_scenarios import api_key_headers, post

KEY = "deal-777"
WINDOW = {"since": "2026-05-11T00:00:00Z", "until": "2026-05-12T00:00:00Z"}
# Backends of this test database waiting for a lock of the given type.
WAITING_SQL = """SELECT count(*) FROM pg_locks l
WHERE NOT l.granted AND l.locktype = :locktype
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="deal-guard")


@pytest.fixture
def deal(load, webhook_receiver):
    """One failed execution of trigger KEY, replayable; the ramp's webhooks go to the receiver."""
    r = sc.ramp(steps=["find_or_create_account", "create_project", "notify"])
    failed = sc.execution(r["uuid"], trigger_key=KEY)
    load({"vendors": [sc.vendor(base_url=webhook_receiver.url)], "ramps": [r], "executions": [failed]})
    return r, failed


def fire(client, ramp_uuid: str, key: str = KEY):
    raw = json.dumps({"trigger_key": key, "data": sc.payload("c-1", "Globex", None)}).encode()
    headers = {"X-Onramp-Signature": sign(sc.SIGNING_SECRET, raw)}
    return client.post(f"/api/ramps/{ramp_uuid}/trigger", data=raw, content_type="application/json", headers=headers)


def wait_until(engine, locktype: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(text(WAITING_SQL), {"locktype": locktype}).scalar():
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError(f"nobody ever waited for a {locktype} lock")


def counts(session_factory) -> tuple[int, int]:
    with session_factory() as session, session.begin():
        projects = session.scalar(select(func.count()).select_from(Project))
        successes = session.scalar(
            select(func.count())
            .select_from(RampExecution)
            .where(RampExecution.trigger_key == KEY, RampExecution.status_code == "SUCCESS")
        )
    return projects, successes


def test_a_trigger_arriving_during_a_replay_of_its_key_does_not_make_a_second_project(
    client, admin, deal, engine, session_factory, webhook_receiver
):
    r, failed = deal
    answers: dict = {}
    with engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE or_projects IN EXCLUSIVE MODE"))
        replay = threading.Thread(
            target=lambda: answers.update(replay=post(client, admin, {**WINDOW, "dry_run": False}))
        )
        replay.start()
        wait_until(engine, "relation")  # the replay is inside its transaction, at create_project
        trigger = threading.Thread(target=lambda: answers.update(trigger=fire(client, r["uuid"])))
        trigger.start()
        wait_until(engine, "advisory")  # the trigger waits for the replay's key
        blocker.rollback()
    replay.join(20)
    trigger.join(20)

    replayed = answers["replay"].get_json()
    assert [(e["execution_uuid"], e["outcome"]) for e in replayed["eligible"]] == [(failed["uuid"], "success")]
    triggered = answers["trigger"]
    assert triggered.status_code == 200, triggered.get_json()
    body = triggered.get_json()
    assert body["duplicate"] is True and body["status"] == "SUCCESS"
    assert body["execution_uuid"] == failed["uuid"]
    assert body["project_uuid"] == replayed["eligible"][0]["project_uuid"]
    assert counts(session_factory) == (1, 1)
    # One webhook for the one project; the re-delivery is recorded on the execution that succeeded.
    assert len([q for q in webhook_receiver.requests if q.path == "/webhooks"]) == 1
    with session_factory() as session, session.begin():
        (duplicate,) = session.scalars(
            select(WorkflowHistory).where(WorkflowHistory.action == HISTORY_ACTION_TRIGGER_DUPLICATE)
        ).all()
        execution = session.get(RampExecution, duplicate.execution_id)
    assert str(execution.uuid) == failed["uuid"] and duplicate.details["trigger_key"] == KEY
    assert duplicate.actor == "crm:hubspot"


def test_a_replay_leaves_a_row_alone_while_a_trigger_of_its_key_runs(client, admin, deal, engine, session_factory):
    r, failed = deal
    answers: dict = {}
    with engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE or_projects IN EXCLUSIVE MODE"))
        trigger = threading.Thread(target=lambda: answers.update(trigger=fire(client, r["uuid"])))
        trigger.start()
        wait_until(engine, "relation")  # the trigger holds the key, at create_project
        replayed = post(client, admin, {**WINDOW, "dry_run": False}).get_json()
        blocker.rollback()
    trigger.join(20)
    # The row was not replayed (nor its attempt counted): its key was busy.
    assert replayed["summary"]["selected"] == 0 and replayed["summary"]["remaining"] == 1
    assert answers["trigger"].status_code == 201 and answers["trigger"].get_json()["status"] == "SUCCESS"
    # Now the trigger's success is visible: the old row is a duplicate, never replayed.
    again = post(client, admin, {**WINDOW, "dry_run": False}).get_json()
    assert again["summary"]["skipped_by_reason"]["duplicate_trigger_succeeded"] == 1
    assert counts(session_factory) == (1, 1)
    with session_factory() as session, session.begin():
        row = session.scalar(select(RampExecution).where(RampExecution.uuid == failed["uuid"]))
    assert (row.status_code, row.replay_attempts) == ("ERROR", 0)


def test_a_crm_redelivery_of_a_key_that_succeeded_is_answered_and_recorded(client, deal, session_factory):
    r, _ = deal
    first = fire(client, r["uuid"], key="deal-900")
    again = fire(client, r["uuid"], key="deal-900")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["execution_uuid"] == first.get_json()["execution_uuid"]
    assert again.get_json()["duplicate"] is True
    with session_factory() as session, session.begin():
        runs = session.scalar(
            select(func.count()).select_from(RampExecution).where(RampExecution.trigger_key == "deal-900")
        )
    assert runs == 1


def test_a_trigger_whose_key_stays_busy_is_told_to_come_back(config, deal, session_factory, caplog):
    r, _ = deal
    impatient = create_app(dataclasses.replace(config, lock_timeout_ms=300))
    try:
        with session_factory() as holder, holder.begin():
            ramp_id = holder.scalar(select(RampExecution.ramp_id).limit(1))
            assert try_trigger_key(holder, ramp_id, KEY)
            response = fire(impatient.test_client(), r["uuid"])
    finally:
        impatient.extensions["onramp_db"].dispose()
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["code"] == "trigger_key_busy"
    assert response.headers["Retry-After"] == "5"
    assert counts(session_factory) == (0, 0)
    # Refused, not dropped: the delivery is in the log, with its key.
    (busy,) = [r for r in caplog.records if getattr(r, "event", None) == "trigger.key_busy"]
    assert busy.trigger_key == KEY


def test_two_failed_runs_of_one_deal_are_replayed_once(client, admin, load, webhook_receiver, session_factory):
    # A CRM re-delivery that failed like the first run: both are ERROR, both eligible in the
    # preview. The first replay succeeds; the second must then be a duplicate, not a second project.
    r = sc.ramp(steps=["find_or_create_account", "create_project", "notify"])
    first = sc.execution(r["uuid"], trigger_key=KEY, created_at="2026-05-11T12:35:00Z")
    redelivery = sc.execution(r["uuid"], trigger_key=KEY, created_at="2026-05-11T12:36:00Z")
    load({"vendors": [sc.vendor(base_url=webhook_receiver.url)], "ramps": [r], "executions": [first, redelivery]})
    preview = post(client, admin, {**WINDOW, "dry_run": True}).get_json()
    assert preview["summary"]["eligible"] == 2

    replayed = post(client, admin, {**WINDOW, "dry_run": False}).get_json()

    assert [row["execution_uuid"] for row in replayed["eligible"]] == [first["uuid"]]
    (skipped,) = replayed["skipped"]
    assert (skipped["execution_uuid"], skipped["reason"]) == (redelivery["uuid"], "duplicate_trigger_succeeded")
    assert first["uuid"] in skipped["detail"]
    assert counts(session_factory) == (1, 1)
    assert len([q for q in webhook_receiver.requests if q.path == "/webhooks"]) == 1
