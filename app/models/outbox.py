"""Transactional outbox for notifications (CRM webhooks and emails).

Rows are written in the same transaction as the work that caused them and delivered after commit.
`suppressed` rows record what a replay withheld; they are never delivered. A `pending` row is
tried when `next_attempt_at` has come; each failed attempt pushes it back (see
app/notifications/delivery.py). `failed` rows gave up, for good: too many attempts, or a failure no
retry can fix (an invalid email address), with the reason in `last_error`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column, new_uuid

CHANNELS = ("webhook", "email")
NOTIFICATION_STATUSES = ("pending", "delivered", "suppressed", "failed")
EVENT_PROJECT_CREATED = "PROJECT_CREATED"


class Notification(Base):
    __tablename__ = "or_notification_outbox"
    __table_args__ = (
        CheckConstraint(f"channel IN {CHANNELS!r}", name="channel"),
        CheckConstraint(f"status IN {NOTIFICATION_STATUSES!r}", name="status"),
        # Dispatch walks due rows in next_attempt_at order.
        Index("ix_or_notification_outbox_due", "next_attempt_at", "id", postgresql_where=text("status = 'pending'")),
        Index("ix_or_notification_outbox_execution_id", "execution_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, nullable=False, default=new_uuid)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("or_vendors.id"), nullable=False)
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("or_ramp_executions.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(10), nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    # webhook URL or email address
    target: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    # When a pending row is next tried; NULL once it is delivered or failed.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_at: Mapped[datetime] = created_at_column()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
