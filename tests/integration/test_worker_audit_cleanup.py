"""Closing the audit rows of retry-batch calls whose process died (app/retries/audit_cleanup.py),
as a use case and as the periodic task a real worker runs."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.job_engine import MAINTENANCE_QUEUE, defer_job
from app.models import RetryBatch
from app.models.base import utcnow
from app.retries import tasks
from app.retries.audit_cleanup import INTERRUPTED_SUMMARY, close_interrupted_batches, longest_live_call
from app.retries.batch import MAX_CLAIMS_PER_CALL
from tests.support.worker import running_workers, wait_for


def _batch(session_factory, *, age: timedelta, finished: bool = False) -> uuid.UUID:
    started = utcnow() - age
    batch = RetryBatch(
        uuid=uuid.uuid4(),
        actor="ops@example.com",
        actor_type="user",
        dry_run=False,
        request={"since": "2026-05-11T12:30:00Z"},
        started_at=started,
        finished_at=started + timedelta(seconds=3) if finished else None,
        summary={"selected": 2, "success": 2} if finished else None,
        duration_ms=3000 if finished else None,
    )
    with session_factory() as session, session.begin():
        session.add(batch)
    return batch.uuid


def _rows(session_factory) -> dict[uuid.UUID, RetryBatch]:
    with session_factory() as session, session.begin():
        return {b.uuid: b for b in session.scalars(select(RetryBatch))}


def _scenario(session_factory, config) -> dict[str, uuid.UUID]:
    safe = longest_live_call(config)
    return {
        "dead": _batch(session_factory, age=2 * safe),
        "just_dead": _batch(session_factory, age=safe + timedelta(minutes=1)),
        "slow_but_maybe_alive": _batch(session_factory, age=safe - timedelta(minutes=5)),
        "running": _batch(session_factory, age=timedelta(seconds=1)),
        "finished_long_ago": _batch(session_factory, age=3 * safe, finished=True),
    }


def _assert_only_dead_closed(session_factory, ids: dict[str, uuid.UUID], before: dict) -> None:
    rows = _rows(session_factory)
    for name in ("dead", "just_dead"):
        row = rows[ids[name]]
        assert row.finished_at is not None and row.summary == INTERRUPTED_SUMMARY, name
        assert row.finished_at > row.started_at
    for name in ("slow_but_maybe_alive", "running"):
        assert rows[ids[name]].finished_at is None and rows[ids[name]].summary is None, name
    done = rows[ids["finished_long_ago"]]
    kept = before[ids["finished_long_ago"]]
    assert (done.finished_at, done.summary, done.duration_ms) == (kept.finished_at, kept.summary, kept.duration_ms)


def test_safe_age_outlasts_any_live_call(config):
    # Every claim of the cap waiting its full HTTP timeout on the CRM and on a delivery.
    assert longest_live_call(config) > timedelta(seconds=MAX_CLAIMS_PER_CALL * 2 * config.http_timeout_seconds)


def test_closes_only_old_open_rows_and_is_idempotent(session_factory, config):
    ids = _scenario(session_factory, config)
    before = _rows(session_factory)

    assert close_interrupted_batches(session_factory, config) == 2
    _assert_only_dead_closed(session_factory, ids, before)
    closed = {i: _rows(session_factory)[i].finished_at for i in (ids["dead"], ids["just_dead"])}

    assert close_interrupted_batches(session_factory, config) == 0
    assert {i: _rows(session_factory)[i].finished_at for i in closed} == closed  # not stamped again


@pytest.mark.slow
def test_the_worker_task_closes_interrupted_calls(database_url, session_factory, config, tmp_path):
    # The worker's Config comes from its environment (tests/support/worker.py): the same HTTP
    # timeout as the test config, so both agree on which rows are old enough.
    ids = _scenario(session_factory, config)
    before = _rows(session_factory)
    with running_workers(database_url, tmp_path) as (worker,):
        # The periodic tick, deferred now instead of at the next minute.
        with session_factory() as session, session.begin():
            defer_job(session, tasks.close_interrupted_batch_audits, task_kwargs={"timestamp": 0})
        wait_for(lambda: worker.records(event="retry_batch.interrupted"), 30, message="audit task ran")
    (line,) = worker.records(event="retry_batch.interrupted")
    assert sorted(line["batch_ids"]) == sorted([str(ids["dead"]), str(ids["just_dead"])])
    _assert_only_dead_closed(session_factory, ids, before)
    assert tasks.close_interrupted_batch_audits.queue == MAINTENANCE_QUEUE
