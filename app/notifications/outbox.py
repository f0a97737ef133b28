"""Writing notifications to the outbox, inside the caller's transaction.

Delivery happens after commit (see delivery.py); a suppressed notification is recorded so the
audit shows what was withheld, and is never delivered.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import Notification


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
) -> Notification:
    notification = Notification(
        vendor_id=vendor_id,
        execution_id=execution_id,
        channel=channel,
        event=event,
        target=target,
        payload=payload,
        status="suppressed" if suppressed else "pending",
    )
    session.add(notification)
    return notification
