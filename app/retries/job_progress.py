"""What a retry job looks like from outside (SPEC section 7): its state, progress, rate, ETA and
recent errors, all read from what the replays themselves recorded.

Progress counts the outcomes on the job's plan rows, written in each replay's own transaction, so a
retried task or a resumed job can never count a row twice. Recent errors are the job's last failed
replays in the history (`batch_id` = the job's uuid). Query helpers: the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models import RetryJob, RetryPlan
from app.retries.reasons import empty_counts

# Rate over this many seconds of recent work (or since the start, if that is shorter).
RATE_WINDOW_SECONDS = 60
RECENT_ERRORS = 20

_PROGRESS_SQL = text(
    """SELECT pr.outcome AS outcome, pr.reason AS reason, count(*) AS n,
       count(*) FILTER (WHERE pr.done_at > now() - make_interval(secs => :window)) AS recent,
       min(pr.done_at) FILTER (WHERE pr.done_at > now() - make_interval(secs => :window)) AS first_recent,
       max(pr.done_at) AS last_done
FROM or_retry_plan_rows pr
WHERE pr.plan_id = :plan_id
GROUP BY pr.outcome, pr.reason"""
)

_RECENT_ERRORS_SQL = text(
    """SELECT e.uuid AS execution_uuid, h.created_at AS at, h.details AS details
FROM or_workflow_history h
JOIN or_ramp_executions e ON e.id = h.execution_id
WHERE h.batch_id = :job_uuid AND h.action = 'WORKFLOW_HISTORY_ACTION_REPLAYED'
  AND h.details->>'outcome' = 'error'
ORDER BY h.id DESC
LIMIT :limit"""
)


@dataclass
class _Recent:
    rows: int = 0  # handled in the last RATE_WINDOW_SECONDS
    first: datetime | None = None  # the first of them
    last: datetime | None = None  # the last row handled at all


def progress(session: Session, job: RetryJob) -> tuple[dict, _Recent]:
    """(the job's `progress`, what it handled lately)."""
    counts = {"success": 0, "error": 0, "skipped": 0}
    by_reason = empty_counts()
    total = 0
    recent = _Recent()
    for row in session.execute(_PROGRESS_SQL, {"plan_id": job.plan_id, "window": RATE_WINDOW_SECONDS}):
        total += row.n
        recent.rows += row.recent
        recent.first = min(filter(None, (recent.first, row.first_recent)), default=None)
        recent.last = max(filter(None, (recent.last, row.last_done)), default=None)
        if row.outcome is not None:
            counts[row.outcome] += row.n
        if row.outcome == "skipped" and row.reason in by_reason:
            by_reason[row.reason] += row.n
    done = sum(counts.values())
    return {
        "total": total,
        "done": done,
        **counts,
        "remaining": total - done,
        "skipped_by_reason": by_reason,
    }, recent


def _rate(job: RetryJob, recent: _Recent, now) -> float:
    """Rows per second over the last minute of work: measured from the first row handled in that
    minute to now while the job runs (a resumed job is not averaged with the time it stood still),
    or to its last row once it stopped."""
    if recent.rows == 0 or recent.first is None:
        return 0.0
    end = now if job.state == "running" else (recent.last or now)
    seconds = max((end - recent.first).total_seconds(), 1.0)
    return round(recent.rows / seconds, 2)


def recent_errors(session: Session, job: RetryJob) -> list[dict]:
    rows = session.execute(_RECENT_ERRORS_SQL, {"job_uuid": job.uuid, "limit": RECENT_ERRORS})
    return [
        {
            "execution_uuid": str(row.execution_uuid),
            "at": row.at,
            "error": {
                "type": row.details.get("error_type"),
                "category": row.details.get("error_category"),
                "message": row.details.get("error_message"),
            },
        }
        for row in rows
    ]


def describe(session: Session, job: RetryJob, *, now) -> dict:
    """The job as the API shows it."""
    counts, recent = progress(session, job)
    rate = _rate(job, recent, now)
    eta = round(counts["remaining"] / rate, 1) if rate > 0 and job.state == "running" else None
    return {
        "job_id": str(job.uuid),
        "state": job.state,
        "state_reason": job.state_reason,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "request": job.request,
        "plan_token": session.get(RetryPlan, job.plan_id).token,
        "max_replays_per_second": job.max_replays_per_second,
        "halt_error_rate": job.halt_error_rate,
        "halt_window": job.halt_window,
        "progress": counts,
        "rate_per_second": rate,
        "eta_seconds": eta,
        "recent_errors": recent_errors(session, job),
    }
