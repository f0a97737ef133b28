"""Retry jobs (SPEC section 7): a background drain of one plan, paced, with an automatic brake.

The job row holds the state machine, the pace schedule shared by every worker (`pace_next_at`) and
the start of the brake's window (`brake_after_history_id`). What the job has done lives elsewhere,
written in each replay's own transaction: the outcome on its plan's rows and the replay's history
row (`or_workflow_history.batch_id` = the job's uuid). Control actions are kept in
`or_retry_job_events`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column, new_uuid

JOB_STATES = ("queued", "running", "paused", "halted", "cancelled", "completed", "failed")
FINISHED_STATES = ("cancelled", "completed", "failed")
JOB_EVENTS = ("created", "started", "paused", "resumed", "halted", "cancelled", "completed", "failed")


class RetryJob(Base):
    __tablename__ = "or_retry_jobs"
    __table_args__ = (
        CheckConstraint(f"state IN {JOB_STATES!r}", name="state"),
        UniqueConstraint("created_by", "idempotency_key", name="uq_or_retry_jobs_idempotency"),
        Index("ix_or_retry_jobs_created_at", "created_at"),
        Index("ix_or_retry_jobs_state", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, nullable=False, default=new_uuid)
    state: Mapped[str] = mapped_column(String(10), nullable=False, default="queued")
    state_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(320), nullable=False)
    actor_type: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The job's own frozen row set (a copy of the caller's plan, or the scope's eligible rows).
    plan_id: Mapped[int] = mapped_column(ForeignKey("or_retry_plans.id"), nullable=False)
    # The plan the caller passed (its token), if any.
    source_plan_token: Mapped[str | None] = mapped_column(String(64))
    request: Mapped[dict] = mapped_column(JSONB, nullable=False)
    suppress_notifications: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    max_replays_per_second: Mapped[float] = mapped_column(Float, nullable=False)
    halt_error_rate: Mapped[float] = mapped_column(Float, nullable=False)
    halt_window: Mapped[int] = mapped_column(Integer, nullable=False)
    # The next free slot of the pace schedule, shared by every worker.
    pace_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The brake counts the job's replays whose history id is greater than this (reset on resume).
    brake_after_history_id: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # SHA-256 of the body as sent, to tell a repeated request from a different one with the same key.
    idempotency_body_sha256: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = created_at_column()


class RetryJobEvent(Base):
    """Who did what to a job, and why (creation, every control action, the brake, the end)."""

    __tablename__ = "or_retry_job_events"
    __table_args__ = (
        CheckConstraint(f"event IN {JOB_EVENTS!r}", name="event"),
        Index("ix_or_retry_job_events_job_id", "job_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("or_retry_jobs.id", ondelete="CASCADE"), nullable=False)
    event: Mapped[str] = mapped_column(String(10), nullable=False)
    actor: Mapped[str | None] = mapped_column(String(320))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_at_column()
