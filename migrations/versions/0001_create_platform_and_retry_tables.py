"""create platform and retry tables

Revision ID: 0001_platform_and_retry_tables
Revises: (none)
Create Date: 2026-11-23 09:38:50.947736
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_platform_and_retry_tables"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "or_api_keys",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('ONRAMP_ADMIN', 'ONRAMP_VIEWER')", name=op.f("ck_or_api_keys_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_or_api_keys_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_or_api_keys_name")),
    )
    op.create_table(
        "or_auth_throttle",
        sa.Column("subject", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_or_auth_throttle")),
    )
    op.create_index("ix_or_auth_throttle_window_start", "or_auth_throttle", ["window_start"], unique=False)
    op.create_table(
        "or_retry_batches",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("uuid", sa.UUID(), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_retry_batches")),
        sa.UniqueConstraint("uuid", name=op.f("uq_or_retry_batches_uuid")),
    )
    op.create_index("ix_or_retry_batches_started_at", "or_retry_batches", ["started_at"], unique=False)
    op.create_table(
        "or_users",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('ONRAMP_ADMIN', 'ONRAMP_VIEWER')", name=op.f("ck_or_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_users")),
        sa.UniqueConstraint("email", name=op.f("uq_or_users_email")),
    )
    op.create_table(
        "or_vendors",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_vendors")),
    )
    op.create_table(
        "or_accounts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("uuid", sa.UUID(), nullable=False),
        sa.Column("vendor_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["vendor_id"], ["or_vendors.id"], name=op.f("fk_or_accounts_vendor_id_or_vendors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_accounts")),
        sa.UniqueConstraint("uuid", name=op.f("uq_or_accounts_uuid")),
    )
    op.create_index(op.f("ix_or_accounts_vendor_id"), "or_accounts", ["vendor_id"], unique=False)
    op.create_table(
        "or_crm_integrations",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("vendor_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("user_configured", sa.Boolean(), nullable=False),
        sa.Column("token_revoked", sa.Boolean(), nullable=False),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("api_base_url", sa.Text(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("signing_secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["or_vendors.id"],
            name=op.f("fk_or_crm_integrations_vendor_id_or_vendors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_crm_integrations")),
        sa.UniqueConstraint("vendor_id", name=op.f("uq_or_crm_integrations_vendor_id")),
    )
    op.create_table(
        "or_ramps",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("uuid", sa.UUID(), nullable=False),
        sa.Column("vendor_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'archived', 'deleted', 'draft')", name=op.f("ck_or_ramps_status")),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["or_vendors.id"], name=op.f("fk_or_ramps_vendor_id_or_vendors"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_ramps")),
        sa.UniqueConstraint("uuid", name=op.f("uq_or_ramps_uuid")),
    )
    op.create_index(op.f("ix_or_ramps_vendor_id"), "or_ramps", ["vendor_id"], unique=False)
    op.create_table(
        "or_user_sessions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("sid", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["or_users.id"], name=op.f("fk_or_user_sessions_user_id_or_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_user_sessions")),
        sa.UniqueConstraint("sid", name=op.f("uq_or_user_sessions_sid")),
    )
    op.create_index(op.f("ix_or_user_sessions_user_id"), "or_user_sessions", ["user_id"], unique=False)
    op.create_table(
        "or_object_entity_ids",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("vendor_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("object_type", sa.String(length=50), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["or_accounts.id"], name=op.f("fk_or_object_entity_ids_account_id_or_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["or_vendors.id"], name=op.f("fk_or_object_entity_ids_vendor_id_or_vendors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_object_entity_ids")),
    )
    op.create_index(op.f("ix_or_object_entity_ids_account_id"), "or_object_entity_ids", ["account_id"], unique=False)
    op.create_index(
        "uq_or_object_entity_ids_live_link",
        "or_object_entity_ids",
        ["vendor_id", "object_type", "external_id"],
        unique=True,
        postgresql_where=sa.text("archived_at IS NULL"),
    )
    op.create_table(
        "or_ramp_executions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("uuid", sa.UUID(), nullable=False),
        sa.Column("vendor_id", sa.BigInteger(), nullable=False),
        sa.Column("ramp_id", sa.BigInteger(), nullable=False),
        sa.Column("ramp_version", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.String(length=10), nullable=False),
        sa.Column("trigger_key", sa.String(length=255), nullable=True),
        sa.Column("trigger_payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("replay_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error_type", sa.String(length=200), nullable=True),
        sa.Column("last_error_category", sa.String(length=20), nullable=True),
        sa.Column("last_error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status_code IN ('PENDING', 'RUNNING', 'SUCCESS', 'ERROR')", name=op.f("ck_or_ramp_executions_status_code")
        ),
        sa.ForeignKeyConstraint(["ramp_id"], ["or_ramps.id"], name=op.f("fk_or_ramp_executions_ramp_id_or_ramps")),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["or_vendors.id"], name=op.f("fk_or_ramp_executions_vendor_id_or_vendors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_ramp_executions")),
        sa.UniqueConstraint("uuid", name=op.f("uq_or_ramp_executions_uuid")),
    )
    op.create_index(
        "ix_or_ramp_executions_error_created_at",
        "or_ramp_executions",
        ["created_at", "id"],
        unique=False,
        postgresql_where=sa.text("status_code = 'ERROR'"),
        postgresql_include=["vendor_id", "ramp_id"],
    )
    op.create_index(
        "ix_or_ramp_executions_ramp_created_at", "or_ramp_executions", ["ramp_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_or_ramp_executions_success_trigger",
        "or_ramp_executions",
        ["ramp_id", "trigger_key", "created_at"],
        unique=False,
        postgresql_where=sa.text("status_code = 'SUCCESS'"),
    )
    op.create_index(
        "ix_or_ramp_executions_vendor_created_at", "or_ramp_executions", ["vendor_id", "created_at"], unique=False
    )
    op.create_table(
        "or_ramp_versions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("ramp_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("draft", sa.Boolean(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["ramp_id"], ["or_ramps.id"], name=op.f("fk_or_ramp_versions_ramp_id_or_ramps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_ramp_versions")),
        sa.UniqueConstraint("ramp_id", "version", name="uq_or_ramp_versions_ramp_id_version"),
    )
    op.create_table(
        "or_execution_logs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=50), nullable=True),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("error_type", sa.String(length=200), nullable=True),
        sa.Column("error_category", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("level IN ('INFO', 'WARNING', 'ERROR')", name=op.f("ck_or_execution_logs_level")),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["or_ramp_executions.id"],
            name=op.f("fk_or_execution_logs_execution_id_or_ramp_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_execution_logs")),
    )
    op.create_index("ix_or_execution_logs_execution_id_id", "or_execution_logs", ["execution_id", "id"], unique=False)
    op.create_table(
        "or_notification_outbox",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("uuid", sa.UUID(), nullable=False),
        sa.Column("vendor_id", sa.BigInteger(), nullable=False),
        sa.Column("execution_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("channel IN ('webhook', 'email')", name=op.f("ck_or_notification_outbox_channel")),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'suppressed')", name=op.f("ck_or_notification_outbox_status")
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["or_ramp_executions.id"],
            name=op.f("fk_or_notification_outbox_execution_id_or_ramp_executions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["or_vendors.id"], name=op.f("fk_or_notification_outbox_vendor_id_or_vendors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_notification_outbox")),
        sa.UniqueConstraint("uuid", name=op.f("uq_or_notification_outbox_uuid")),
    )
    op.create_index("ix_or_notification_outbox_execution_id", "or_notification_outbox", ["execution_id"], unique=False)
    op.create_index(
        "ix_or_notification_outbox_pending",
        "or_notification_outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "or_projects",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("uuid", sa.UUID(), nullable=False),
        sa.Column("vendor_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("execution_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["or_accounts.id"], name=op.f("fk_or_projects_account_id_or_accounts")),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["or_ramp_executions.id"], name=op.f("fk_or_projects_execution_id_or_ramp_executions")
        ),
        sa.ForeignKeyConstraint(["vendor_id"], ["or_vendors.id"], name=op.f("fk_or_projects_vendor_id_or_vendors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_projects")),
        sa.UniqueConstraint("uuid", name=op.f("uq_or_projects_uuid")),
    )
    op.create_index(op.f("ix_or_projects_account_id"), "or_projects", ["account_id"], unique=False)
    op.create_index(
        "uq_or_projects_execution_id",
        "or_projects",
        ["execution_id"],
        unique=True,
        postgresql_where=sa.text("execution_id IS NOT NULL"),
    )
    op.create_table(
        "or_workflow_history",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=True),
        sa.Column("batch_id", sa.UUID(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["or_ramp_executions.id"],
            name=op.f("fk_or_workflow_history_execution_id_or_ramp_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_or_workflow_history")),
    )
    op.create_index("ix_or_workflow_history_batch_id", "or_workflow_history", ["batch_id"], unique=False)
    op.create_index("ix_or_workflow_history_execution_id", "or_workflow_history", ["execution_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_or_workflow_history_execution_id", table_name="or_workflow_history")
    op.drop_index("ix_or_workflow_history_batch_id", table_name="or_workflow_history")
    op.drop_table("or_workflow_history")
    op.drop_index(
        "uq_or_projects_execution_id", table_name="or_projects", postgresql_where=sa.text("execution_id IS NOT NULL")
    )
    op.drop_index(op.f("ix_or_projects_account_id"), table_name="or_projects")
    op.drop_table("or_projects")
    op.drop_index(
        "ix_or_notification_outbox_pending",
        table_name="or_notification_outbox",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_or_notification_outbox_execution_id", table_name="or_notification_outbox")
    op.drop_table("or_notification_outbox")
    op.drop_index("ix_or_execution_logs_execution_id_id", table_name="or_execution_logs")
    op.drop_table("or_execution_logs")
    op.drop_table("or_ramp_versions")
    op.drop_index("ix_or_ramp_executions_vendor_created_at", table_name="or_ramp_executions")
    op.drop_index(
        "ix_or_ramp_executions_success_trigger",
        table_name="or_ramp_executions",
        postgresql_where=sa.text("status_code = 'SUCCESS'"),
    )
    op.drop_index("ix_or_ramp_executions_ramp_created_at", table_name="or_ramp_executions")
    op.drop_index(
        "ix_or_ramp_executions_error_created_at",
        table_name="or_ramp_executions",
        postgresql_where=sa.text("status_code = 'ERROR'"),
        postgresql_include=["vendor_id", "ramp_id"],
    )
    op.drop_table("or_ramp_executions")
    op.drop_index(
        "uq_or_object_entity_ids_live_link",
        table_name="or_object_entity_ids",
        postgresql_where=sa.text("archived_at IS NULL"),
    )
    op.drop_index(op.f("ix_or_object_entity_ids_account_id"), table_name="or_object_entity_ids")
    op.drop_table("or_object_entity_ids")
    op.drop_index(op.f("ix_or_user_sessions_user_id"), table_name="or_user_sessions")
    op.drop_table("or_user_sessions")
    op.drop_index(op.f("ix_or_ramps_vendor_id"), table_name="or_ramps")
    op.drop_table("or_ramps")
    op.drop_table("or_crm_integrations")
    op.drop_index(op.f("ix_or_accounts_vendor_id"), table_name="or_accounts")
    op.drop_table("or_accounts")
    op.drop_table("or_vendors")
    op.drop_table("or_users")
    op.drop_index("ix_or_retry_batches_started_at", table_name="or_retry_batches")
    op.drop_table("or_retry_batches")
    op.drop_index("ix_or_auth_throttle_window_start", table_name="or_auth_throttle")
    op.drop_table("or_auth_throttle")
    op.drop_table("or_api_keys")
