"""Executions of a ramp, their ordered log and their history (audit of actions on them)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, created_at_column, new_uuid, utcnow

# DISMISSED: an operator decided the failure must never be replayed (SPEC section 9).
EXECUTION_STATUSES = ("PENDING", "RUNNING", "SUCCESS", "ERROR", "DISMISSED")
LOG_LEVELS = ("INFO", "WARNING", "ERROR")
ERROR_CATEGORIES = ("config", "integration", "runtime")
HISTORY_ACTION_REPLAYED = "WORKFLOW_HISTORY_ACTION_REPLAYED"
HISTORY_ACTION_TRIGGERED = "WORKFLOW_HISTORY_ACTION_TRIGGERED"
HISTORY_ACTION_DISMISSED = "WORKFLOW_HISTORY_ACTION_DISMISSED"
# A CRM re-delivered a trigger whose key had already succeeded: recorded, not run.
HISTORY_ACTION_TRIGGER_DUPLICATE = "WORKFLOW_HISTORY_ACTION_TRIGGER_DUPLICATE"


class RampExecution(Base):
    __tablename__ = "or_ramp_executions"
    __table_args__ = (
        CheckConstraint(f"status_code IN {EXECUTION_STATUSES!r}", name="status_code"),
        # The retry scope: ERROR rows in a time window, oldest first. INCLUDE lets the runbook's
        # blast-radius query (GROUP BY vendor_id, ramp_id) run as an index-only scan.
        Index(
            "ix_or_ramp_executions_error_created_at",
            "created_at",
            "id",
            postgresql_where=text("status_code = 'ERROR'"),
            # Every column the filters read of the row itself: whole-scope counts are index-only.
            postgresql_include=[
                "vendor_id",
                "ramp_id",
                "ramp_version",
                "replay_attempts",
                "last_error_category",
                "status_code",
            ],
        ),
        # A SUCCESS of the same ramp and trigger key: the trigger path's duplicate check and the
        # superseded markers' recompute.
        Index(
            "ix_or_ramp_executions_success_trigger",
            "ramp_id",
            "trigger_key",
            "created_at",
            postgresql_where=text("status_code = 'SUCCESS'"),
        ),
        # The superseded-marker triggers (migration 0007) recompute the rows of one ramp and key.
        Index(
            "ix_or_ramp_executions_ramp_trigger",
            "ramp_id",
            "trigger_key",
            postgresql_where=text("trigger_key IS NOT NULL"),
        ),
        Index("ix_or_ramp_executions_vendor_created_at", "vendor_id", "created_at"),
        Index("ix_or_ramp_executions_ramp_created_at", "ramp_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, nullable=False, default=new_uuid)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("or_vendors.id"), nullable=False)
    ramp_id: Mapped[int] = mapped_column(ForeignKey("or_ramps.id"), nullable=False)
    ramp_version: Mapped[int] = mapped_column(Integer, nullable=False)
    status_code: Mapped[str] = mapped_column(String(10), nullable=False, default="PENDING")
    trigger_key: Mapped[str | None] = mapped_column(String(255))
    trigger_payload: Mapped[dict] = mapped_column(JSONB, nullable=False, default=dict)
    # Replays made through the retry endpoint (the original run is attempt 0).
    replay_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    # Copy of the last ERROR log entry, written in the same transaction as that entry, so the
    # eligibility query filters on it without scanning logs.
    last_error_type: Mapped[str | None] = mapped_column(String(200))
    last_error_category: Mapped[str | None] = mapped_column(String(20))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    logs: Mapped[list[ExecutionLog]] = relationship(
        back_populates="execution", order_by="ExecutionLog.id", lazy="raise_on_sql", viewonly=True
    )


class ExecutionLog(Base):
    """Ordered log of an execution; `id` gives the order, `attempt` the run it belongs to."""

    __tablename__ = "or_execution_logs"
    __table_args__ = (
        CheckConstraint(f"level IN {LOG_LEVELS!r}", name="level"),
        Index("ix_or_execution_logs_execution_id_id", "execution_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("or_ramp_executions.id", ondelete="CASCADE"), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    step: Mapped[str | None] = mapped_column(String(50))
    level: Mapped[str] = mapped_column(String(10), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    error_type: Mapped[str | None] = mapped_column(String(200))
    error_category: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = created_at_column()

    execution: Mapped[RampExecution] = relationship(back_populates="logs")


class WorkflowHistory(Base):
    """Who did what to an execution. A replay attempt writes HISTORY_ACTION_REPLAYED."""

    __tablename__ = "or_workflow_history"
    __table_args__ = (
        Index("ix_or_workflow_history_execution_id", "execution_id"),
        # A batch's or a job's replays, newest first (the brake window, recent errors).
        Index("ix_or_workflow_history_batch_id", "batch_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("or_ramp_executions.id", ondelete="CASCADE"), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    actor: Mapped[str | None] = mapped_column(String(320))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # outcome, error, suppress_notifications, force_retry, workflow_version, version drift ...
    details: Mapped[dict] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_at_column()


class SupersededExecution(Base):
    """An execution such that another execution of the same ramp and trigger key succeeded
    (`superseded_by_uuid`, the first such success): the `duplicate_trigger_succeeded` reason, read
    by one primary-key probe.

    Written only by the database: row triggers on `or_ramp_executions` (migrations
    0007_superseded_marker, 0008_superseded_by_any_success) keep it in the same transaction as the change that makes it true or
    false, so the re-check under the row lock sees a success exactly when it sees its marker.
    """

    __tablename__ = "or_superseded_executions"
    __table_args__ = (Index("ix_or_superseded_executions_ramp_trigger", "ramp_id", "trigger_key"),)

    execution_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ramp_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    trigger_key: Mapped[str] = mapped_column(String(255), nullable=False)
    superseded_by_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
