"""Retry plans: the exact set of rows a dry run found eligible (SPEC section 6).

A plan is written in the dry run's own snapshot, one row per eligible execution, and later
executed row by row. Each plan row's `outcome` is written in the same transaction as that row's
replay (or skip), so "not yet handled" is a fact in the database, never a caller's memory: a
second caller, a retried job task or a resumed job sees exactly which rows are left.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column

PLAN_ROW_OUTCOMES = ("success", "error", "skipped")


class RetryPlan(Base):
    __tablename__ = "or_retry_plans"
    __table_args__ = (Index("ix_or_retry_plans_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # The opaque string callers send back as `plan_token`.
    token: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_by: Mapped[str] = mapped_column(String(320), nullable=False)
    actor_type: Mapped[str] = mapped_column(String(20), nullable=False)
    # The retry-batch call (dry run) that made it; NULL for a plan a retry job made for itself.
    batch_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # The normalised request whose filters every row is re-checked with.
    request: Mapped[dict] = mapped_column(JSONB, nullable=False)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RetryPlanRow(Base):
    """One execution of a plan. The primary key's order is the order rows are replayed in (oldest
    first), so the claim walks it and stops at the first free row.

    No foreign keys, to the execution or to the plan: dry runs write thousands of these rows in one
    statement and the per-row constraint checks were a large share of that cost. Executions are
    never deleted (and the claim joins the execution anyway); a plan's rows are written in the
    plan's own transaction and deleted with it (`app.retries.plans.delete_expired`).
    """

    __tablename__ = "or_retry_plan_rows"
    __table_args__ = (
        CheckConstraint(f"outcome IN {PLAN_ROW_OUTCOMES!r}", name="outcome"),
        # Progress "done in the last N seconds" and the job page's recent activity.
        Index("ix_or_retry_plan_rows_done_at", "plan_id", "done_at", postgresql_where=text("done_at IS NOT NULL")),
    )

    plan_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    execution_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # NULL: not handled yet. success / error: replayed; skipped: ineligible when re-checked.
    outcome: Mapped[str | None] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
