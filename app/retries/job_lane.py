"""The worker side of a retry job: one lane drains the job's plan through the replay unit, paced
by a schedule shared by every lane and worker, and braked by the job's recent failure rate.

A job runs as a few lanes (engine tasks); any number of lanes on any number of workers may run
one job at once. A lane keeps nothing that matters in memory: which rows are left is the plan's
row outcomes, written with each replay; the pace is the job row's `pace_next_at`; the brake reads
the job's last replays from the history. So a lane that is killed, retried or run twice replays
nothing twice, and a new lane simply carries on.

Each replay's claim transaction first checks that the job is still running (`JobRows`), so no
replay starts after a pause, cancel or halt has committed; the one in flight finishes.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.errors import DatabaseUnavailable, is_database_unavailable
from app.models import RetryJob
from app.models.base import utcnow
from app.observability.dberrors import database_error_text, first_database_error
from app.retries import eligibility
from app.retries.jobs import record_event
from app.retries.replay_unit import ReplayContext, Stopped, replay_next
from app.retries.schemas import RetryRequest

log = logging.getLogger(__name__)

# While the database is away, a lane waits this long in all before giving up (the engine's
# periodic check starts a new lane later).
DATABASE_PATIENCE_SECONDS = 120
SLEEP_CHUNK_SECONDS = 0.5
STATE_CHECK_SECONDS = 2.0

_STATE_SQL = text("SELECT state FROM or_retry_jobs WHERE id = :job_id")
_START_SQL = text(
    "UPDATE or_retry_jobs SET state = 'running', started_at = coalesce(started_at, now()), updated_at = now()"
    " WHERE id = :job_id AND state = 'queued' RETURNING id"
)
# One round trip before every replay: the brake's count and the next pace slot.
#  * The brake: the job's last `halt_window` replays since its window last started (the row a
#    lane just replayed is committed, so it counts).
#  * The slot: one per replay, 1/rate seconds apart over every lane and worker, never in the past
#    (an idle job does not save up a burst).
# Losing a reservation in a crash costs one slot, so this transaction does not wait for its commit
# to reach the disk, unless it halts the job (see `_reserve_slot`).
_RESERVE_SQL = text(
    """SET LOCAL synchronous_commit = off;
WITH brake AS (
    SELECT count(*) AS n, count(*) FILTER (WHERE w.outcome = 'error') AS failed
    FROM (
        SELECT h.details->>'outcome' AS outcome
        FROM or_workflow_history h
        WHERE h.batch_id = :job_uuid AND h.action = 'WORKFLOW_HISTORY_ACTION_REPLAYED'
          AND h.id > (SELECT brake_after_history_id FROM or_retry_jobs WHERE id = :job_id)
        ORDER BY h.id DESC
        LIMIT :window
    ) w
)
UPDATE or_retry_jobs
SET pace_next_at = greatest(coalesce(pace_next_at, clock_timestamp()), clock_timestamp())
                   + make_interval(secs => 1.0 / max_replays_per_second)
FROM brake
WHERE id = :job_id AND state = 'running'
RETURNING pace_next_at - make_interval(secs => 1.0 / max_replays_per_second) AS slot, brake.n, brake.failed"""
)
_HALT_SQL = text(
    "UPDATE or_retry_jobs SET state = 'halted', state_reason = :reason, updated_at = now()"
    " WHERE id = :job_id AND state = 'running' RETURNING id"
)
_COMPLETE_SQL = text(
    """UPDATE or_retry_jobs SET state = 'completed', state_reason = NULL, finished_at = now(), updated_at = now()
WHERE id = :job_id AND state = 'running'
  AND NOT EXISTS (SELECT 1 FROM or_retry_plan_rows WHERE plan_id = :plan_id AND outcome IS NULL)
RETURNING id"""
)
_FAIL_SQL = text(
    "UPDATE or_retry_jobs SET state = 'failed', state_reason = :reason, finished_at = now(), updated_at = now()"
    " WHERE id = :job_id AND state IN ('queued', 'running') RETURNING id"
)


@dataclass(frozen=True)
class JobActor:
    """Job replays are made on behalf of the job's creator."""

    kind: str
    name: str


@dataclass(frozen=True)
class JobRows:
    """The job plan's rows not handled yet; refuses to claim once the job is no longer running."""

    job_id: int
    plan_id: int

    def claim(self, session: Session, request: RetryRequest, after):
        if session.execute(_STATE_SQL, {"job_id": self.job_id}).scalar() != "running":
            raise Stopped()
        return eligibility.claim_plan_row(session, request, self.plan_id, after=after)


def brake_limit(job: RetryJob) -> int:
    """floor(halt_error_rate * halt_window), of the rate as it was written: in binary floating
    point 0.29 * 100 is 28.999..., which would halt one failure early."""
    return math.floor(Decimal(repr(job.halt_error_rate)) * job.halt_window)


def brake_reason(failed: int, n: int, job: RetryJob) -> str:
    return f"{failed} of the last {n} replays failed, limit {brake_limit(job)} ({job.halt_error_rate:.0%})"


def run_lane(
    session_factory: sessionmaker[Session],
    config: Config,
    job_uuid: uuid.UUID,
    *,
    should_abort: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Drain the job until it is done, stopped or braked; returns why the lane ended."""
    job = _start(session_factory, job_uuid)
    if job is None:
        return "not_running"
    ctx = ReplayContext(
        request=RetryRequest.from_normalised(job.request, dry_run=False, plan_token=None),
        actor=JobActor(job.actor_type, job.created_by),
        batch_id=job.uuid,
        config=config,
        job_uuid=job.uuid,
        payload_patches=job.request.get("payload_patches"),
    )
    source = JobRows(job.id, job.plan_id)
    after: tuple[datetime, int] | None = None
    waited_for_database = 0.0
    while True:
        if should_abort():
            return "aborted"
        try:
            slot = _reserve_slot(session_factory, job)
            if slot in ("stopped", "halted"):
                return slot
            waited = _wait_until(slot, should_abort, lambda: _is_running(session_factory, job.id), sleep)
            if waited != "ready":
                return waited
            step = replay_next(session_factory, ctx, source, after=after)
            if step is None:
                return "completed" if _complete_if_drained(session_factory, job) else "drained"
            after = step.position
            waited_for_database = 0.0
        except Stopped:
            return "stopped"
        except Exception as exc:
            # A lost connection, in the replay (DatabaseUnavailable) or in the lane's own
            # statements around it (the pace slot, the state checks, completion), is not the
            # row's fault and not the job's: wait for the database, then carry on from the same
            # place (the row in flight rolled back and is still to do). Anything else is a bug.
            if not (isinstance(exc, DatabaseUnavailable) or is_database_unavailable(exc)):
                _fail(session_factory, job, exc)
                raise
            if waited_for_database >= DATABASE_PATIENCE_SECONDS:
                raise
            pause = min(2.0 + waited_for_database, 10.0)
            log.warning("retry job %s: database unavailable, retrying in %.0f s", job.uuid, pause)
            sleep(pause)
            waited_for_database += pause


def _start(session_factory, job_uuid: uuid.UUID) -> RetryJob | None:
    """Load the job; a queued job becomes running (with its event). None unless it is running."""
    with session_factory() as session, session.begin():
        job = session.scalar(select(RetryJob).where(RetryJob.uuid == job_uuid).with_for_update())
        if job is None:
            return None
        if session.execute(_START_SQL, {"job_id": job.id}).first() is not None:
            session.refresh(job)
            record_event(session, job, "started", actor=None)
        if job.state != "running":
            return None
        session.expunge(job)
        return job


def _reserve_slot(session_factory, job: RetryJob) -> datetime | str:
    """The start of this lane's next replay slot; "halted" when the brake trips (the job halts in
    the same transaction), "stopped" when the job no longer runs."""
    halted_by_us = None
    with session_factory() as session, session.begin():
        params = {"job_id": job.id, "job_uuid": job.uuid, "window": job.halt_window}
        reserved = session.execute(_RESERVE_SQL, params).first()
        if reserved is None:
            return "stopped"
        if reserved.failed <= brake_limit(job):
            return reserved.slot
        halted_by_us = _halt(session, job, failed=reserved.failed, n=reserved.n)
    if halted_by_us is not None:
        _report_halt(job, halted_by_us)  # after the commit: the halt is a fact by now
    return "halted"


def _wait_until(slot: datetime, should_abort, still_running, sleep) -> str:
    """Sleep until `slot` in short chunks: "ready", or "aborted" (the task was asked to stop) or
    "stopped" (the job was paused or cancelled meanwhile; checked every STATE_CHECK_SECONDS, so a
    slow pace does not keep a lane asleep for a job that no longer runs)."""
    checked = time.monotonic()
    while True:
        left = (slot - utcnow()).total_seconds()
        if left <= 0:
            return "ready"
        if should_abort():
            return "aborted"
        if time.monotonic() - checked >= STATE_CHECK_SECONDS:
            if not still_running():
                return "stopped"
            checked = time.monotonic()
        sleep(min(left, SLEEP_CHUNK_SECONDS))


def _is_running(session_factory, job_id: int) -> bool:
    with session_factory() as session, session.begin():
        return session.execute(_STATE_SQL, {"job_id": job_id}).scalar() == "running"


def _halt(session: Session, job: RetryJob, *, failed: int, n: int) -> str | None:
    """The brake: more than floor(rate * window) of the job's last `window` replays failed. The
    reason, or None when someone else moved the job first (another lane's brake, a pause)."""
    reason = brake_reason(failed, n, job)
    # A halt is an operator-visible decision: its commit waits for the disk after all.
    session.execute(text("SET LOCAL synchronous_commit = on"))
    if session.execute(_HALT_SQL, {"job_id": job.id, "reason": reason}).first() is None:
        return None
    job.state = "halted"
    record_event(session, job, "halted", actor=None, reason=reason, failed=failed, replays=n)
    return reason


def _complete_if_drained(session_factory, job: RetryJob) -> bool:
    with session_factory() as session, session.begin():
        if session.execute(_COMPLETE_SQL, {"job_id": job.id, "plan_id": job.plan_id}).first() is None:
            return False
        job.state = "completed"
        record_event(session, job, "completed", actor=None)
    return True


def failure_reason(exc: BaseException) -> str:
    """The job's `state_reason` for a lane that broke: never PostgreSQL's text (it can quote
    customer values, and viewers read the job); a database error is named by its SQLSTATE."""
    database_error = first_database_error(exc)
    said = database_error_text(database_error) if database_error is not None else str(exc)
    return f"{type(exc).__name__}: {said}"[:500]


def _fail(session_factory, job: RetryJob, exc: BaseException) -> None:
    reason = failure_reason(exc)
    log.exception("retry job %s: lane failed", job.uuid)
    try:
        with session_factory() as session, session.begin():
            if session.execute(_FAIL_SQL, {"job_id": job.id, "reason": reason}).first() is not None:
                job.state = "failed"
                record_event(session, job, "failed", actor=None, reason=reason)
    except Exception:
        log.exception("retry job %s: could not record the failure", job.uuid)


def _report_halt(job: RetryJob, reason: str) -> None:
    """One Sentry event per halt (a no-op without Sentry)."""
    try:
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            scope.set_tag("job_id", str(job.uuid))
            scope.set_tag("retry_job", "halted")
            scope.set_user({"id": job.created_by, "username": job.created_by})
            sentry_sdk.capture_message(f"retry job {job.uuid} halted: {reason}", level="warning")
    except Exception:
        log.warning("could not report the halt of job %s to Sentry", job.uuid, exc_info=True)
