"""dismissed status and batch kind

Executions gain the DISMISSED status (SPEC section 9), and the audit table of retry calls also
records dismiss-batch calls, told apart by `kind`.

Revision ID: 0005_dismissed_and_batch_kind
Revises: 0004_notification_delivery_retries
Create Date: 2026-12-02 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_dismissed_and_batch_kind"
down_revision = "0004_notification_delivery_retries"
branch_labels = None
depends_on = None

_STATUS = "ck_or_ramp_executions_status_code"


def upgrade() -> None:
    op.drop_constraint(op.f(_STATUS), "or_ramp_executions", type_="check")
    op.create_check_constraint(
        op.f(_STATUS), "or_ramp_executions", "status_code IN ('PENDING', 'RUNNING', 'SUCCESS', 'ERROR', 'DISMISSED')"
    )
    op.add_column("or_retry_batches", sa.Column("kind", sa.String(length=10), server_default="retry", nullable=False))
    op.create_check_constraint(op.f("ck_or_retry_batches_kind"), "or_retry_batches", "kind IN ('retry', 'dismiss')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_or_retry_batches_kind"), "or_retry_batches", type_="check")
    op.drop_column("or_retry_batches", "kind")
    op.execute("UPDATE or_ramp_executions SET status_code = 'ERROR' WHERE status_code = 'DISMISSED'")
    op.drop_constraint(op.f(_STATUS), "or_ramp_executions", type_="check")
    op.create_check_constraint(
        op.f(_STATUS), "or_ramp_executions", "status_code IN ('PENDING', 'RUNNING', 'SUCCESS', 'ERROR')"
    )
