"""Crash recovery: the database backend running a replay is killed mid-batch. Nothing half-done
survives (a project always belongs to a SUCCESS execution, every SUCCESS has its history row), no
lock is left behind, and the next call carries on."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from app.retries.batch import retry_batch
from app.retries.schemas import RetryBatchRequestSchema
from tests.support.invariants import LOCKERS_SQL, assert_no_half_replays
from tests.support.retry_scenarios import ADMIN_ACTOR, backlog, window

pytestmark = pytest.mark.slow  # kills the database backend of a running replay

STEPS = ["fetch_crm_record", "find_or_create_account", "create_project"]


def test_killed_replay_backend_leaves_no_half_work_and_next_call_continues(
    load, engine, make_engine_for, config, webhook_receiver
):
    data = backlog(2, base_url=webhook_receiver.url, steps=STEPS)
    load(data)
    # Slow CRM (but under the 2 s http timeout): the replay holds its row lock while it waits.
    webhook_receiver.respond(200, {"id": "crm-1"}, delay=1.0)
    replay_engine, replay_factory = make_engine_for(pool_size=2, max_overflow=2)
    request = RetryBatchRequestSchema().load(window(dry_run=False, suppress_notifications=True))
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = retry_batch(replay_factory, request, ADMIN_ACTOR, config=config)
        except Exception as exc:  # recorded for the assertion below
            outcome["exc"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    killed = False
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline and worker.is_alive():
            pids = conn.execute(text(LOCKERS_SQL)).scalars().all()
            if pids:
                killed = conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pids[0]}).scalar_one()
                break
            time.sleep(0.02)
        conn.rollback()
    worker.join(timeout=20)
    assert not worker.is_alive(), "retry_batch did not finish after its backend was killed"
    assert killed, ("never saw the replay holding a row lock", outcome, webhook_receiver.requests)

    assert_no_half_replays(engine)

    # The next call (allowing a second attempt for the row whose replay was cut off) finishes the job.
    webhook_receiver.respond(200, {"id": "crm-1"})
    again = RetryBatchRequestSchema().load(window(dry_run=False, suppress_notifications=True, max_attempts=3))
    result = retry_batch(replay_factory, again, ADMIN_ACTOR, config=config)
    assert result.summary.remaining == 0
    assert_no_half_replays(engine)
    with engine.connect() as conn:
        statuses = conn.execute(text("SELECT status_code, count(*) FROM or_ramp_executions GROUP BY 1")).all()
        projects = conn.execute(text("SELECT count(*) FROM or_projects")).scalar_one()
    assert dict(statuses) == {"SUCCESS": 2}
    assert projects == 2
