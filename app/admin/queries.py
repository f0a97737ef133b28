"""Read-only use cases of the admin pages that the JSON API has no endpoint for: an execution
with everything recorded about it, a job's control events, vendor names. Each owns one read-only
transaction; the pages that show API data call the API's own use cases (summary, jobs, batch).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.errors import NotFound
from app.models import (
    ExecutionLog,
    Project,
    Ramp,
    RampExecution,
    RetryJob,
    RetryJobEvent,
    Vendor,
    WorkflowHistory,
)
from app.retries import jobs
from app.retries.summary import SummaryRequest, error_summary

# Other executions of the same ramp and trigger key that succeeded (the partial SUCCESS index).
SAME_TRIGGER_LIMIT = 20
_NO_EXECUTION = "No execution has this uuid"


def _read_only(session: Session) -> None:
    session.execute(text("SET TRANSACTION READ ONLY"))


def _vendor_names(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return dict(session.execute(select(Vendor.id, Vendor.name).where(Vendor.id.in_(wanted))).all())


def overview(session_factory: sessionmaker[Session], query: SummaryRequest) -> dict:
    """The error summary of the window (the JSON API's use case) and the names of its vendors."""
    summary = error_summary(session_factory, query)
    with session_factory() as session, session.begin():
        _read_only(session)
        names = _vendor_names(session, (group["vendor_id"] for group in summary["groups"] if "vendor_id" in group))
    return {"summary": summary, "vendor_names": names}


def job_page(session_factory: sessionmaker[Session], job_id: str) -> dict:
    """The job as the API shows it (404 if unknown) and its control events, oldest first."""
    job = jobs.get_job(session_factory, job_id)
    with session_factory() as session, session.begin():
        _read_only(session)
        rows = session.execute(
            select(RetryJobEvent)
            .join(RetryJob, RetryJob.id == RetryJobEvent.job_id)
            .where(RetryJob.uuid == uuid.UUID(job["job_id"]))
            .order_by(RetryJobEvent.id)
        ).scalars()
        events = [
            {"event": e.event, "actor": e.actor, "reason": e.reason, "details": e.details, "at": e.created_at}
            for e in rows
        ]
    return {"job": job, "events": events}


def execution_detail(session_factory: sessionmaker[Session], execution_uuid: str) -> dict:
    """One execution: its row, ramp, vendor, payload, log, history, project and the successes of
    its trigger key; NotFound (404) for an unknown or malformed uuid."""
    try:
        wanted = uuid.UUID(str(execution_uuid))
    except ValueError:
        raise NotFound(_NO_EXECUTION) from None
    with session_factory() as session, session.begin():
        _read_only(session)
        found = session.execute(
            select(RampExecution, Ramp, Vendor)
            .join(Ramp, Ramp.id == RampExecution.ramp_id)
            .join(Vendor, Vendor.id == RampExecution.vendor_id)
            .where(RampExecution.uuid == wanted)
        ).first()
        if found is None:
            raise NotFound(_NO_EXECUTION)
        execution, ramp, vendor = found
        logs = session.scalars(
            select(ExecutionLog).where(ExecutionLog.execution_id == execution.id).order_by(ExecutionLog.id)
        ).all()
        history = session.scalars(
            select(WorkflowHistory).where(WorkflowHistory.execution_id == execution.id).order_by(WorkflowHistory.id)
        ).all()
        batch_ids = {h.batch_id for h in history if h.batch_id is not None}
        job_ids = (
            set(session.scalars(select(RetryJob.uuid).where(RetryJob.uuid.in_(batch_ids)))) if batch_ids else set()
        )
        projects = session.scalars(
            select(Project).where(Project.execution_id == execution.id).order_by(Project.id)
        ).all()
        same_trigger = []
        if execution.trigger_key is not None:
            same_trigger = session.execute(
                select(RampExecution.uuid, RampExecution.created_at)
                .where(
                    RampExecution.ramp_id == execution.ramp_id,
                    RampExecution.trigger_key == execution.trigger_key,
                    RampExecution.status_code == "SUCCESS",
                    RampExecution.id != execution.id,
                )
                .order_by(RampExecution.created_at)
                .limit(SAME_TRIGGER_LIMIT)
            ).all()
        return {
            "execution": {
                "uuid": str(execution.uuid),
                "status_code": execution.status_code,
                "trigger_key": execution.trigger_key,
                "ramp_version": execution.ramp_version,
                "replay_attempts": execution.replay_attempts,
                "last_error_type": execution.last_error_type,
                "last_error_category": execution.last_error_category,
                "last_error_message": execution.last_error_message,
                "created_at": execution.created_at,
                "updated_at": execution.updated_at,
                "finished_at": execution.finished_at,
                "payload": execution.trigger_payload,
            },
            "ramp": {
                "uuid": str(ramp.uuid),
                "name": ramp.name,
                "status": ramp.status,
                "current_version": ramp.current_version,
            },
            "vendor": {"id": vendor.id, "name": vendor.name},
            "logs": [
                {
                    "attempt": entry.attempt,
                    "step": entry.step,
                    "level": entry.level,
                    "message": entry.message,
                    "error_type": entry.error_type,
                    "error_category": entry.error_category,
                    "at": entry.created_at,
                }
                for entry in logs
            ],
            "history": [
                {
                    "action": h.action,
                    "actor": h.actor,
                    "batch_id": str(h.batch_id) if h.batch_id else None,
                    "job_id": str(h.batch_id) if h.batch_id in job_ids else None,
                    "details": h.details,
                    "at": h.created_at,
                }
                for h in history
            ],
            "projects": [{"uuid": str(p.uuid), "name": p.name, "at": p.created_at} for p in projects],
            "same_trigger_successes": [{"uuid": str(u), "at": at} for u, at in same_trigger],
        }
