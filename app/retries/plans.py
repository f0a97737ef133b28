"""Plans (SPEC section 6): a dry run's eligible set, kept for 24 hours and executed row by row.

A dry run writes its plan in its own snapshot (`eligibility.write_plan`, one statement). Executing
a plan claims its rows that are not handled yet; each row's outcome is written here, in the
transaction of that row's replay or skip, which is what makes a plan (and a retry job, which runs
its own plan) safe to execute from several callers or workers at once and to resume after a crash.
These are query helpers: the caller owns the transaction.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from app.errors import PlanExpired, PlanNotFound
from app.models import RetryJob, RetryPlan, RetryPlanRow
from app.models.base import utcnow
from app.retries.filters import ScopedRow
from app.retries.results import ActorLike
from app.retries.schemas import RetryRequest

# A retry job's own plan is kept as long as the job (see delete_expired), whatever its expiry.
PLAN_TTL = timedelta(hours=24)
TOKEN_PREFIX = "plan_"

_RECORD = (
    update(RetryPlanRow)
    .where(
        RetryPlanRow.plan_id == bindparam("p_plan_id"),
        RetryPlanRow.created_at == bindparam("p_created_at"),
        RetryPlanRow.execution_id == bindparam("p_execution_id"),
        RetryPlanRow.outcome.is_(None),
    )
    .values(
        outcome=bindparam("p_outcome"), reason=bindparam("p_reason"), detail=bindparam("p_detail"), done_at=func.now()
    )
)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def create_plan(
    session: Session,
    request: RetryRequest,
    actor: ActorLike,
    *,
    batch_id=None,
    now: datetime | None = None,
) -> RetryPlan:
    """The plan's header (its rows are written by `eligibility.write_plan` or `copy_rows`)."""
    now = now or utcnow()
    stored = request.normalised()
    stored.pop("dry_run", None)
    plan = RetryPlan(
        token=new_token(),
        created_by=actor.name,
        actor_type=actor.kind,
        batch_id=batch_id,
        request=stored,
        total=0,
        created_at=now,
        expires_at=now + PLAN_TTL,
    )
    session.add(plan)
    session.flush()
    return plan


def load_plan(session: Session, token: str, *, now: datetime | None = None) -> RetryPlan:
    """The plan for `token`: 404 `plan_not_found` when there is none, 410 `plan_expired` after 24 h.

    A retry job's own plan is a plan like any other: it may be previewed (what is left of the job)
    and executed; rows handled either way are handled for both.
    """
    plan = session.scalar(select(RetryPlan).where(RetryPlan.token == token))
    if plan is None:
        raise PlanNotFound(details={"plan_token": token})
    if plan.expires_at <= (now or utcnow()):
        raise PlanExpired(details={"plan_token": token, "expired_at": plan.expires_at.isoformat()})
    return plan


def plan_request(plan: RetryPlan, call: RetryRequest) -> RetryRequest:
    """The request a call on `plan` runs with: the plan's own, with the call's `dry_run` and, when
    sent, its `suppress_notifications`."""
    overrides = {"dry_run": call.dry_run, "plan_token": plan.token}
    if call.suppress_notifications is not None:
        overrides["suppress_notifications"] = call.suppress_notifications
    return RetryRequest.from_normalised(plan.request, **overrides)


def record_outcome(
    session: Session,
    plan_id: int,
    row: ScopedRow,
    outcome: str,
    *,
    reason: str | None = None,
    detail: str | None = None,
) -> None:
    """Mark one plan row handled, in the caller's transaction (the row's replay or skip)."""
    session.connection().execute(
        _RECORD,
        {
            "p_plan_id": plan_id,
            "p_created_at": row.created_at,
            "p_execution_id": row.id,
            "p_outcome": outcome,
            "p_reason": reason,
            "p_detail": detail,
        },
    )


def copy_rows(session: Session, source_plan_id: int, target_plan_id: int) -> int:
    """Give a new plan the rows of another that are not handled yet (a job started from a plan)."""
    pending = select(bindparam("target", target_plan_id), RetryPlanRow.created_at, RetryPlanRow.execution_id).where(
        RetryPlanRow.plan_id == source_plan_id, RetryPlanRow.outcome.is_(None)
    )
    result = session.execute(insert(RetryPlanRow).from_select(["plan_id", "created_at", "execution_id"], pending))
    return result.rowcount


def set_total(session: Session, plan: RetryPlan, total: int) -> None:
    plan.total = total
    session.flush()


def delete_expired(session: Session, *, now: datetime | None = None) -> int:
    """Delete plans past their expiry that no retry job runs on, and their rows (one statement:
    plan rows have no foreign key to cascade through)."""
    owned_by_job = exists().where(RetryJob.plan_id == RetryPlan.id)
    gone = (
        delete(RetryPlan)
        .where(RetryPlan.expires_at <= (now or utcnow()), ~owned_by_job)
        .returning(RetryPlan.id)
        .cte("gone")
    )
    rows = delete(RetryPlanRow).where(RetryPlanRow.plan_id.in_(select(gone.c.id))).cte("gone_rows")
    return len(session.execute(select(gone.c.id).add_cte(rows)).all())
