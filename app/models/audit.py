"""Audit record of every retry-batch and dismiss-batch call, dry runs included."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column, new_uuid


class RetryBatch(Base):
    __tablename__ = "or_retry_batches"
    __table_args__ = (
        CheckConstraint("kind IN ('retry', 'dismiss')", name="kind"),
        Index("ix_or_retry_batches_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, nullable=False, default=new_uuid)
    actor: Mapped[str] = mapped_column(String(320), nullable=False)
    # "user" (session cookie) or "api_key"
    actor_type: Mapped[str] = mapped_column(String(20), nullable=False)
    # "retry" (POST retry-batch) or "dismiss" (POST dismiss-batch)
    kind: Mapped[str] = mapped_column(String(10), nullable=False, default="retry", server_default="retry")
    dry_run: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # The normalised request (defaults filled in, times in UTC).
    request: Mapped[dict] = mapped_column(JSONB, nullable=False)
    summary: Mapped[dict | None] = mapped_column(JSONB)
    started_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
