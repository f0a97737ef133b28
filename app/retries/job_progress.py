"""What a retry job looks like from outside (SPEC section 7): its state, progress, rate, ETA and
recent errors, all read from what the replays themselves recorded.

Progress counts the outcomes on the job's plan rows, written in each replay's own transaction, so a
retried task or a resumed job can never count a row twice. Recent errors are the job's last failed
replays in the history (`batch_id` = the job's uuid). Query helpers: the caller owns the transaction.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models import RetryJob, RetryPlan
from app.retries.reasons import empty_counts

# Rate over this many seconds of recent work (or since the start, if that is shorter).
RATE_WINDOW_SECONDS = 60
RECENT_ERRORS = 20

_PROGRESS_SQL = text(
    """SELECT pr.outcome AS outcome, pr.reason AS reason, count(*) AS n,
       count(*) FILTER (WHERE pr.done_at > now() - make_interval(secs => :window)) AS recent
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


def progress(session: Session, job: RetryJob) -> tuple[dict, int]:
    """(the job's `progress`, rows handled in the last RATE_WINDOW_SECONDS)."""
    counts = {"success": 0, "error": 0, "skipped": 0}
    by_reason = empty_counts()
    total = recent = 0
    for row in session.execute(_PROGRESS_SQL, {"plan_id": job.plan_id, "window": RATE_WINDOW_SECONDS}):
        total += row.n
        recent += row.recent
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


def _rate(job: RetryJob, recent: int, now) -> float:
    if job.started_at is None or recent == 0:
        return 0.0
    end = job.finished_at or now
    seconds = min(RATE_WINDOW_SECONDS, max((end - job.started_at).total_seconds(), 1.0))
    return round(recent / seconds, 2)


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
