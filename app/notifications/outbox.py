"""Writing notifications to the outbox, inside the caller's transaction.

Delivery happens after commit (see delivery.py); a suppressed notification is recorded so the
audit shows what was withheld, and is never delivered.

The rows are written with a plain INSERT ... RETURNING (no ORM unit of work): the runner writes
them on every run, and callers only need each row's id and status back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.models import Notification

# Built once (statement construction costs more than execution on the replay path).
_INSERT = insert(Notification).returning(Notification.id, Notification.status, sort_by_parameter_order=True)


@dataclass(frozen=True)
class Queued:
    id: int
    status: str  # "pending" (will be delivered) or "suppressed"


def enqueue_many(session: Session, notifications: list[dict]) -> list[Queued]:
    """Insert notifications (keyword sets of `enqueue`) in one statement; returns them in order."""
    if not notifications:
        return []
    rows = [
        dict(
            vendor_id=n["vendor_id"],
            execution_id=n["execution_id"],
            channel=n["channel"],
            event=n["event"],
            target=n["target"],
            payload=n["payload"],
            status="suppressed" if n["suppressed"] else "pending",
        )
        for n in notifications
    ]
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
            )
        ],
    )
    return queued
