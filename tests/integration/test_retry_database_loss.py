"""A database that goes away mid-replay is not a replay failure (issue: a lost connection burned the
row's only attempt). The row is left exactly as it was, the call answers 503 database_unavailable,
its audit row is still closed, and the identical re-send replays the row."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text

from app.models import RampExecution, RetryBatch, WorkflowHistory
from tests.support.retry_scenarios import api_key_headers, backlog, post, window

STEPS = ["fetch_crm_record", "find_or_create_account", "create_project"]
# The backend of this test database that holds a row lock on an execution (the replay).
LOCKERS_SQL = """SELECT DISTINCT l.pid FROM pg_locks l
WHERE l.relation = 'or_ramp_executions'::regclass AND l.mode = 'RowShareLock' AND l.granted
  AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="db-loss")


def _row(session_factory, uuid: str) -> RampExecution:
    with session_factory() as session, session.begin():
        return session.scalar(select(RampExecution).where(RampExecution.uuid == uuid))


def test_a_terminated_backend_leaves_the_row_untouched_and_the_resend_replays_it(
    client, admin, load, engine, session_factory, webhook_receiver
):
    data = backlog(1, base_url=webhook_receiver.url, steps=STEPS)
    load(data)
    uuid = data["executions"][0]["uuid"]
    before = _row(session_factory, uuid)
    # A slow CRM keeps the replay inside its transaction, holding the row lock, long enough to kill it.
    webhook_receiver.respond(200, {"id": "crm-1"}, delay=1.0)
    body = window(dry_run=False, suppress_notifications=True)
    answer: dict = {}
    caller = threading.Thread(target=lambda: answer.update(response=post(client, admin, body)))
    caller.start()
    killed = False
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline and caller.is_alive() and not killed:
            pids = conn.execute(text(LOCKERS_SQL)).scalars().all()
            if pids:
                killed = conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pids[0]}).scalar_one()
            time.sleep(0.02)
        conn.rollback()
    caller.join(timeout=30)
    assert killed, "never saw the replay holding its row lock"

    response = answer["response"]
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "5"

    after = _row(session_factory, uuid)
    assert (after.status_code, after.replay_attempts) == ("ERROR", 0)
    assert (after.last_error_type, after.last_error_message) == (before.last_error_type, before.last_error_message)
    with session_factory() as session, session.begin():
        assert session.scalars(select(WorkflowHistory).where(WorkflowHistory.execution_id == after.id)).all() == []
        (audit,) = session.scalars(select(RetryBatch).where(RetryBatch.dry_run.is_(False))).all()
    assert audit.finished_at is not None and audit.summary["aborted"] == "database_unavailable"

    # Same request again, same max_attempts (1): the row was never attempted, so it is replayed.
    webhook_receiver.respond(200, {"id": "crm-1"})
    again = post(client, admin, body)
    assert again.status_code == 200, again.get_json()
    assert [(e["execution_uuid"], e["outcome"]) for e in again.get_json()["eligible"]] == [(uuid, "success")]
    assert _row(session_factory, uuid).replay_attempts == 1
