"""create retry plans and jobs

Plans (a dry run's frozen eligible set, SPEC 6), retry jobs with their control events (SPEC 7), and
the history index by (batch_id, id) that the brake and recent errors read newest first.

Revision ID: 0003_retry_plans_and_jobs
Revises: 0002_procrastinate_schema
Create Date: 2026-12-02 12:36:56.192982
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_retry_plans_and_jobs"
down_revision = "0002_procrastinate_schema"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "or_retry_plans",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("batch_id", sa.UUID(), nullable=True),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_retry_plans")),
        sa.UniqueConstraint("token", name=op.f("uq_or_retry_plans_token")),
    )
    op.create_index("ix_or_retry_plans_expires_at", "or_retry_plans", ["expires_at"], unique=False)
    op.create_table(
        "or_retry_jobs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("uuid", sa.UUID(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("source_plan_token", sa.String(length=64), nullable=True),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("suppress_notifications", sa.Boolean(), nullable=False),
        sa.Column("max_replays_per_second", sa.Float(), nullable=False),
        sa.Column("halt_error_rate", sa.Float(), nullable=False),
        sa.Column("halt_window", sa.Integer(), nullable=False),
        sa.Column("pace_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("brake_after_history_id", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("idempotency_body_sha256", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'paused', 'halted', 'cancelled', 'completed', 'failed')",
            name=op.f("ck_or_retry_jobs_state"),
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["or_retry_plans.id"], name=op.f("fk_or_retry_jobs_plan_id_or_retry_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_retry_jobs")),
        sa.UniqueConstraint("created_by", "idempotency_key", name="uq_or_retry_jobs_idempotency"),
        sa.UniqueConstraint("uuid", name=op.f("uq_or_retry_jobs_uuid")),
    )
    op.create_index("ix_or_retry_jobs_created_at", "or_retry_jobs", ["created_at"], unique=False)
    op.create_index("ix_or_retry_jobs_state", "or_retry_jobs", ["state"], unique=False)
    op.create_table(
        "or_retry_plan_rows",
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("outcome IN ('success', 'error', 'skipped')", name=op.f("ck_or_retry_plan_rows_outcome")),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["or_retry_plans.id"],
            name=op.f("fk_or_retry_plan_rows_plan_id_or_retry_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "created_at", "execution_id", name=op.f("pk_or_retry_plan_rows")),
    )
    op.create_index(
        "ix_or_retry_plan_rows_done_at",
        "or_retry_plan_rows",
        ["plan_id", "done_at"],
        unique=False,
        postgresql_where=sa.text("done_at IS NOT NULL"),
    )
    op.create_table(
        "or_retry_job_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=10), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "event IN ('created', 'started', 'paused', 'resumed', 'halted', 'cancelled', 'completed', 'failed')",
            name=op.f("ck_or_retry_job_events_event"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["or_retry_jobs.id"],
            name=op.f("fk_or_retry_job_events_job_id_or_retry_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_retry_job_events")),
    )
    op.create_index("ix_or_retry_job_events_job_id", "or_retry_job_events", ["job_id", "id"], unique=False)
    op.drop_index(op.f("ix_or_workflow_history_batch_id"), table_name="or_workflow_history")
    op.create_index("ix_or_workflow_history_batch_id", "or_workflow_history", ["batch_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_or_workflow_history_batch_id", table_name="or_workflow_history")
    op.create_index(op.f("ix_or_workflow_history_batch_id"), "or_workflow_history", ["batch_id"], unique=False)
    op.drop_index("ix_or_retry_job_events_job_id", table_name="or_retry_job_events")
    op.drop_table("or_retry_job_events")
    op.drop_index(
        "ix_or_retry_plan_rows_done_at",
        table_name="or_retry_plan_rows",
        postgresql_where=sa.text("done_at IS NOT NULL"),
    )
    op.drop_table("or_retry_plan_rows")
    op.drop_index("ix_or_retry_jobs_state", table_name="or_retry_jobs")
    op.drop_index("ix_or_retry_jobs_created_at", table_name="or_retry_jobs")
    op.drop_table("or_retry_jobs")
    op.drop_index("ix_or_retry_plans_expires_at", table_name="or_retry_plans")
    op.drop_table("or_retry_plans")
