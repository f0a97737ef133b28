"""notification delivery retries: next_attempt_at, the failed status, a due-rows index

Revision ID: 0004_notification_delivery_retries
Revises: 0003_retry_plans_and_jobs
Create Date: 2026-12-02 12:00:00

A pending outbox row is now tried only once its `next_attempt_at` has come, and a row that can
never be delivered ends as `failed`. Existing rows get the time of the upgrade, so pending ones
are due at once. Downgrading turns `failed` rows back into `pending` (the old code knows no other
status), so the old dispatcher would try them again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_notification_delivery_retries"
down_revision = "0003_retry_plans_and_jobs"
branch_labels = None
depends_on = None

_TABLE = "or_notification_outbox"
_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    # Alembic's version column is varchar(32), shorter than this revision id; Alembic writes the
    # new id after upgrade() in the same transaction, so widening it here is enough. Left wide on
    # downgrade: other long revision ids may need it.
    op.alter_column("alembic_version", "version_num", type_=sa.String(255), existing_type=sa.String(32))
    # now() is stable, so PostgreSQL stores the default once instead of rewriting the table.
    op.add_column(
        _TABLE, sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True)
    )
    op.drop_constraint(op.f("ck_or_notification_outbox_status"), _TABLE, type_="check")
    op.create_check_constraint(
        op.f("ck_or_notification_outbox_status"), _TABLE, "status IN ('pending', 'delivered', 'suppressed', 'failed')"
    )
    op.drop_index("ix_or_notification_outbox_pending", table_name=_TABLE, postgresql_where=_PENDING)
    op.create_index(
        "ix_or_notification_outbox_due", _TABLE, ["next_attempt_at", "id"], unique=False, postgresql_where=_PENDING
    )


def downgrade() -> None:
    op.drop_index("ix_or_notification_outbox_due", table_name=_TABLE, postgresql_where=_PENDING)
    op.create_index("ix_or_notification_outbox_pending", _TABLE, ["id"], unique=False, postgresql_where=_PENDING)
    op.execute(f"UPDATE {_TABLE} SET status = 'pending' WHERE status = 'failed'")
    op.drop_constraint(op.f("ck_or_notification_outbox_status"), _TABLE, type_="check")
    op.create_check_constraint(
        op.f("ck_or_notification_outbox_status"), _TABLE, "status IN ('pending', 'delivered', 'suppressed')"
    )
    op.drop_column(_TABLE, "next_attempt_at")
