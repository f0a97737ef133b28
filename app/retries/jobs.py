"""The retry-job use cases (SPEC section 7): create, read, list, pause, resume, cancel.

A job's rows are frozen when it is created: it gets a plan of its own, written in the creating
transaction's snapshot (a copy of the caller's plan rows not handled yet, or the scope's eligible
rows), and its progress is read from that plan's row outcomes. The worker side (pace, brake,
completion) is in job_lane.py; the job engine only runs lanes, it decides nothing.

State machine (anything else is 409 `invalid_transition`):

    queued  --lane starts-->  running  --plan drained-->  completed
    queued | running  --pause-->  paused
    running  --brake-->  halted
    paused | halted  --resume-->  queued   (the brake's window starts afresh)
    any unfinished  --cancel-->  cancelled
    running  --the lane itself broke (not a replay)-->  failed
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app import job_engine
from app.config import Config
from app.errors import IdempotencyKeyReused, InvalidTransition, JobNotFound
from app.models import RetryJob, RetryJobEvent, WorkflowHistory
from app.models.base import utcnow
from app.models.jobs import FINISHED_STATES
from app.retries import eligibility, job_progress, plans
from app.retries.job_schemas import JobRequest
from app.retries.results import ActorLike, actor_label

log = logging.getLogger(__name__)

# Allowed moves: action -> (states it may start from, state it leads to).
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "pause": (frozenset({"queued", "running"}), "paused"),
    "resume": (frozenset({"paused", "halted"}), "queued"),
    "cancel": (frozenset({"queued", "running", "paused", "halted"}), "cancelled"),
}
_EVENT_OF_ACTION = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


# ---- the job's lanes on the job engine ----------------------------------------------------------
# A job runs as `Config.retry_job_lanes` engine tasks (app/retries/tasks.py: `run_job_lane`), each
# with a lock of its own so one lane never runs twice at once, and deferred in the transaction that
# makes the job runnable (creation, resume), so a job and its lanes commit together.

LANE_TASK = "retries.run_job_lane"


def lane_lock_prefix(job_uuid: uuid.UUID) -> str:
    return f"retry-job:{job_uuid}:lane:"


def start_lanes(session: Session, job: RetryJob, lanes: int) -> int:
    """Defer the job's lanes that are not already waiting or running; how many were deferred."""
    prefix = lane_lock_prefix(job.uuid)
    busy = {lock for lock, _ in job_engine.active_jobs(session, prefix)}
    deferred = 0
    for lane in range(lanes):
        lock = f"{prefix}{lane}"
        if lock in busy:
            continue
        try:
            job_engine.defer_job(
                session, LANE_TASK, task_kwargs={"job_id": str(job.uuid), "lane": lane}, lock=lock, queueing_lock=lock
            )
        except job_engine.AlreadyQueued:
            continue
        deferred += 1
    return deferred


def stop_lanes(session: Session, job: RetryJob) -> int:
    """Cancel the job's waiting lanes and ask its running ones to stop (on commit)."""
    active = job_engine.active_jobs(session, lane_lock_prefix(job.uuid))
    return sum(job_engine.abort_job(session, engine_id) for _, engine_id in active)


def record_event(
    session: Session, job: RetryJob, event: str, *, actor: str | None, reason: str | None = None, **details
) -> None:
    """One row in the job's audit trail and one JSON log line, in the caller's transaction."""
    session.add(RetryJobEvent(job_id=job.id, event=event, actor=actor, reason=reason, details=details))
    log.info(
        "retry job %s: %s%s",
        job.uuid,
        event,
        f" ({reason})" if reason else "",
        extra={
            "event": "retry_job.state",
            "job_id": str(job.uuid),
            "state": job.state,
            "action": event,
            "actor": actor,
            "reason": reason,
            **details,
        },
    )


# ---- create -----------------------------------------------------------------------------------


def create_job(
    session_factory: sessionmaker[Session],
    job_request: JobRequest,
    actor: ActorLike,
    *,
    idempotency_key: str | None,
    config: Config,
) -> tuple[dict, bool]:
    """(the job, whether it was created now). A repeated Idempotency-Key with the same body returns
    the existing job; with another body it is 422 `idempotency_key_reused`."""
    if idempotency_key is not None:
        existing = _find_by_key(session_factory, actor, idempotency_key, job_request.body_sha256)
        if existing is not None:
            return get_job(session_factory, existing), False
    try:
        job_uuid = _create(session_factory, job_request, actor, idempotency_key, lanes=config.retry_job_lanes)
    except IntegrityError:
        # The same key was used by a concurrent request that committed first.
        existing = _find_by_key(session_factory, actor, idempotency_key, job_request.body_sha256)
        if existing is None:
            raise
        return get_job(session_factory, existing), False
    return get_job(session_factory, job_uuid), True


def _find_by_key(session_factory, actor: ActorLike, key: str, body_sha256: str) -> uuid.UUID | None:
    with session_factory() as session, session.begin():
        job = session.scalar(select(RetryJob).where(RetryJob.created_by == actor.name, RetryJob.idempotency_key == key))
        if job is None:
            return None
        if job.idempotency_body_sha256 != body_sha256:
            raise IdempotencyKeyReused(details={"idempotency_key": key, "job_id": str(job.uuid)})
        return job.uuid


def _create(session_factory, job_request: JobRequest, actor: ActorLike, idempotency_key: str | None, *, lanes: int):
    call = job_request.retry
    with session_factory() as session, session.begin():
        # One snapshot for the plan's rows and their count.
        session.execute(text(f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; {eligibility.SCOPE_READ_SETTINGS}"))
        if call.plan_token is not None:
            source = plans.load_plan(session, call.plan_token)
            request = plans.plan_request(source, call)
            plan = plans.create_plan(session, request, actor)
            total = plans.copy_rows(session, source.id, plan.id)
        else:
            request = call
            plan = plans.create_plan(session, request, actor)
            total = eligibility.write_plan(session, request, plan.id).get(None, 0)
        plans.set_total(session, plan, total)
        now = utcnow()
        stored = request.normalised()
        stored.pop("dry_run", None)
        job = RetryJob(
            uuid=uuid.uuid4(),
            state="queued" if total else "completed",
            created_by=actor.name,
            actor_type=actor.kind,
            created_at=now,
            updated_at=now,
            finished_at=None if total else now,
            plan_id=plan.id,
            source_plan_token=call.plan_token,
            request=stored,
            suppress_notifications=bool(request.suppress_notifications),
            max_replays_per_second=job_request.max_replays_per_second,
            halt_error_rate=job_request.halt_error_rate,
            halt_window=job_request.halt_window,
            idempotency_key=idempotency_key,
            idempotency_body_sha256=job_request.body_sha256 if idempotency_key is not None else None,
        )
        session.add(job)
        session.flush()
        record_event(session, job, "created", actor=actor_label(actor), total=total)
        if total:
            start_lanes(session, job, lanes)
        else:
            record_event(session, job, "completed", actor=None, reason="nothing eligible")
        return job.uuid


# ---- read -------------------------------------------------------------------------------------


def _load(session: Session, job_uuid: uuid.UUID | str, *, for_update: bool = False) -> RetryJob:
    try:
        wanted = uuid.UUID(str(job_uuid))
    except ValueError:
        raise JobNotFound() from None
    statement = select(RetryJob).where(RetryJob.uuid == wanted)
    job = session.scalar(statement.with_for_update() if for_update else statement)
    if job is None:
        raise JobNotFound()
    return job


def get_job(session_factory: sessionmaker[Session], job_uuid: uuid.UUID | str) -> dict:
    with session_factory() as session, session.begin():
        return job_progress.describe(session, _load(session, job_uuid), now=utcnow())


def list_jobs(session_factory: sessionmaker[Session], *, state: str | None, limit: int) -> list[dict]:
    with session_factory() as session, session.begin():
        statement = select(RetryJob).order_by(RetryJob.created_at.desc(), RetryJob.id.desc()).limit(limit)
        if state is not None:
            statement = statement.where(RetryJob.state == state)
        now = utcnow()
        return [job_progress.describe(session, job, now=now) for job in session.scalars(statement)]


# ---- control ----------------------------------------------------------------------------------


def control_job(
    session_factory: sessionmaker[Session],
    job_uuid: uuid.UUID | str,
    action: str,
    actor: ActorLike,
    *,
    reason: str | None,
    config: Config,
) -> dict:
    """Pause, resume or cancel a job; the job as it is afterwards."""
    allowed_from, target = TRANSITIONS[action]
    with session_factory() as session, session.begin():
        # The row lock orders this move with the lanes' own moves (start, brake, completion).
        job = _load(session, job_uuid, for_update=True)
        if job.state not in allowed_from:
            raise InvalidTransition(
                f"Cannot {action} a job that is {job.state}",
                details={"state": job.state, "action": action, "allowed_from": sorted(allowed_from)},
            )
        previous = job.state
        job.state = target
        job.state_reason = reason
        job.updated_at = utcnow()
        if action == "resume":
            # The brake's window starts afresh: it counts only replays after this point.
            job.brake_after_history_id = _last_history_id(session, job.uuid)
            job.pace_next_at = None
        if target in FINISHED_STATES:
            job.finished_at = job.updated_at
        record_event(session, job, _EVENT_OF_ACTION[action], actor=actor_label(actor), reason=reason, previous=previous)
        if action == "resume":
            start_lanes(session, job, config.retry_job_lanes)
        elif action == "cancel":
            stop_lanes(session, job)
        job_uuid = job.uuid
    return get_job(session_factory, job_uuid)


def _last_history_id(session: Session, job_uuid: uuid.UUID) -> int:
    return session.scalar(
        select(func.coalesce(func.max(WorkflowHistory.id), 0)).where(WorkflowHistory.batch_id == job_uuid)
    )


def keep_jobs_running(session_factory: sessionmaker[Session], config: Config) -> int:
    """Give every queued or running job its lanes again where none waits or runs (a lane that
    gave up on a database outage, rows another caller held when the lanes went by, ...). Periodic;
    how many lanes were deferred."""
    deferred = 0
    with session_factory() as session, session.begin():
        for job in session.scalars(select(RetryJob).where(RetryJob.state.in_(("queued", "running")))):
            deferred += start_lanes(session, job, config.retry_job_lanes)
    return deferred
