"""Race safety: concurrent callers never replay a row twice; a locked row is skipped, not waited on."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select, text

from app.models import Project, RampExecution, WorkflowHistory
from app.retries.batch import retry_batch
from app.retries.schemas import RetryBatchRequestSchema
from tests.support.retry_scenarios import ADMIN_ACTOR, backlog, iso

CALLERS = 6
ROWS = 200


def _request(**extra):
    return RetryBatchRequestSchema().load(
        {"since": iso(0), "until": iso(24 * 60), "dry_run": False, "suppress_notifications": True, **extra}
    )


def test_concurrent_callers_replay_every_row_exactly_once(load, make_engine_for, config, session_factory):
    load(backlog(ROWS))
    request = _request()
    start = threading.Barrier(CALLERS)

    def caller(_index: int) -> dict:
        # Own engine, own pool, own connections: as separate service processes would be.
        _, factory = make_engine_for(pool_size=2, max_overflow=0)
        start.wait()
        totals = {"calls": 0, "success": 0, "error": 0, "uuids": []}
        while True:
            result = retry_batch(factory, request, ADMIN_ACTOR, config=config)
            totals["calls"] += 1
            totals["success"] += result.summary.success
            totals["error"] += result.summary.error
            totals["uuids"] += [e.execution_uuid for e in result.eligible]
            if result.summary.selected == 0:
                return totals

    with ThreadPoolExecutor(CALLERS) as pool:
        results = list(pool.map(caller, range(CALLERS)))

    replayed = [u for r in results for u in r["uuids"]]
    assert len(replayed) == len(set(replayed)) == ROWS
    assert sum(r["success"] for r in results) == ROWS
    assert sum(r["error"] for r in results) == 0
    # More than one caller did real work (otherwise this proves nothing about races).
    assert sum(1 for r in results if r["uuids"]) > 1

    with session_factory() as session, session.begin():
        per_execution_history = session.execute(
            select(WorkflowHistory.execution_id, func.count()).group_by(WorkflowHistory.execution_id)
        ).all()
        per_execution_projects = session.execute(
            select(Project.execution_id, func.count()).group_by(Project.execution_id)
        ).all()
        statuses = session.scalars(select(RampExecution.status_code)).all()
        attempts = session.scalars(select(RampExecution.replay_attempts)).all()
    assert len(per_execution_history) == ROWS and {n for _, n in per_execution_history} == {1}
    assert len(per_execution_projects) == ROWS and {n for _, n in per_execution_projects} == {1}
    assert set(statuses) == {"SUCCESS"} and set(attempts) == {1}


def test_a_row_locked_elsewhere_is_skipped_then_replayed_once_free(load, engine, session_factory, config):
    data = backlog(3)
    load(data)
    held = data["executions"][0]["uuid"]
    request = _request()
    with engine.connect() as holder:
        transaction = holder.begin()
        # Stands for the trigger path (or another caller) working on this row right now.
        holder.execute(text("SELECT id FROM or_ramp_executions WHERE uuid = :u FOR UPDATE"), {"u": held})
        result = retry_batch(session_factory, request, ADMIN_ACTOR, config=config)
        transaction.rollback()
    assert held not in [e.execution_uuid for e in result.eligible]
    assert result.summary.selected == 2
    assert result.summary.remaining == 1  # still ERROR and eligible, just busy

    again = retry_batch(session_factory, request, ADMIN_ACTOR, config=config)
    assert [e.execution_uuid for e in again.eligible] == [held]
    assert again.summary.remaining == 0


def test_recheck_under_lock_sees_what_committed_after_the_claim_snapshot(load, session_factory, config, monkeypatch):
    """The claim's joins saw its statement's snapshot; the re-check under the lock is a new one.

    Here the CRM re-fires the same trigger and that new execution succeeds right after our claim:
    the claimed row must not be replayed (duplicate_trigger_succeeded), the next one is.
    """
    import app.retries.eligibility as eligibility

    data = backlog(2)
    load(data)
    first = data["executions"][0]
    real_claim = eligibility.claim_next

    def claim_then_succeed_elsewhere(session, request, *, after):
        row = real_claim(session, request, after=after)
        if row is not None and str(row.execution_uuid) == first["uuid"]:
            with session_factory() as other, other.begin():
                other.execute(
                    text(
                        "INSERT INTO or_ramp_executions (uuid, vendor_id, ramp_id, ramp_version, status_code,"
                        " trigger_key, trigger_payload, replay_attempts, created_at, updated_at)"
                        " SELECT gen_random_uuid(), vendor_id, ramp_id, ramp_version, 'SUCCESS', trigger_key,"
                        " '{}', 0, created_at + interval '1 minute', now() FROM or_ramp_executions WHERE uuid = :u"
                    ),
                    {"u": first["uuid"]},
                )
        return row

    monkeypatch.setattr(eligibility, "claim_next", claim_then_succeed_elsewhere)
    result = retry_batch(session_factory, _request(), ADMIN_ACTOR, config=config)
    assert [e.execution_uuid for e in result.eligible] == [data["executions"][1]["uuid"]]
    with session_factory() as session, session.begin():
        row = session.scalar(select(RampExecution).where(RampExecution.uuid == first["uuid"]))
        assert (row.status_code, row.replay_attempts) == ("ERROR", 0)
        assert session.scalar(select(func.count()).select_from(WorkflowHistory)) == 1
