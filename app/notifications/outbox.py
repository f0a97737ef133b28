"""Writing notifications to the outbox, inside the caller's transaction.

Delivery happens after commit (see delivery.py); a suppressed notification is recorded so the
audit shows what was withheld, and is never delivered. A notification that can never be delivered
(an invalid email address) is recorded as `failed` with its error, so it is visible and never
enters the delivery queue.

The rows are written with a plain INSERT ... RETURNING (no ORM unit of work): the runner writes
them on every run, and callers only need each row's id and status back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Boolean, bindparam, case, func, insert, null
from sqlalchemy.orm import Session

from app.models import Notification

# Built once (statement construction costs more than execution on the replay path).
# Only pending rows get a due time, the database's own clock (which dispatch compares it with).
_INSERT = (
    insert(Notification)
    .values(next_attempt_at=case((bindparam("due", type_=Boolean), func.now()), else_=null()))
    .returning(Notification.id, Notification.status, sort_by_parameter_order=True)
)


@dataclass(frozen=True)
class Queued:
    id: int
    status: str  # "pending" (will be delivered), "suppressed" or "failed"


def _status(notification: dict) -> str:
    if notification.get("error"):
        return "failed"
    return "suppressed" if notification["suppressed"] else "pending"


def enqueue_many(session: Session, notifications: list[dict]) -> list[Queued]:
    """Insert notifications (keyword sets of `enqueue`) in one statement; returns them in order.

    A set with `error` (why it can never be delivered) is written as `failed` with that error.
    """
    if not notifications:
        return []
    rows = []
    for n in notifications:
        status = _status(n)
        rows.append(
            dict(
                vendor_id=n["vendor_id"],
                execution_id=n["execution_id"],
                channel=n["channel"],
                event=n["event"],
                target=n["target"],
                payload=n["payload"],
                status=status,
                last_error=n.get("error"),
                due=status == "pending",
            )
        )
    result = session.connection().execute(_INSERT, rows)
    return [Queued(id=row.id, status=row.status) for row in result]


def enqueue(
    session: Session,
    *,
    vendor_id: int,
    execution_id: int | None,
    channel: str,
    event: str,
    target: str,
    payload: dict,
    suppressed: bool,
    error: str | None = None,
) -> Queued:
    [queued] = enqueue_many(
        session,
        [
            dict(
                vendor_id=vendor_id,
                execution_id=execution_id,
                channel=channel,
                event=event,
                target=target,
                payload=payload,
                suppressed=suppressed,
                error=error,
            )
        ],
    )
    return queued
