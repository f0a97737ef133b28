"""plan rows without a foreign key to their plan

A dry run writes every eligible row of its scope as a plan row in one statement; the per-row check
of the foreign key to `or_retry_plans` was a large share of that statement's time. Plan rows are
only ever written together with their plan (same transaction) and deleted together with it
(`app.retries.plans.delete_expired`), so the constraint protected nothing the code does not already
guarantee.

Revision ID: 0006_plan_rows_without_plan_fk
Revises: 0005_dismissed_and_batch_kind
Create Date: 2026-12-03 07:00:00
"""

from alembic import op

revision = "0006_plan_rows_without_plan_fk"
down_revision = "0005_dismissed_and_batch_kind"
branch_labels = None
depends_on = None

_FK = "fk_or_retry_plan_rows_plan_id_or_retry_plans"


def upgrade() -> None:
    op.drop_constraint(_FK, "or_retry_plan_rows", type_="foreignkey")


def downgrade() -> None:
    # Rows of plans that are gone would block the constraint: drop them first.
    op.execute(
        "DELETE FROM or_retry_plan_rows pr WHERE NOT EXISTS (SELECT 1 FROM or_retry_plans p WHERE p.id = pr.plan_id)"
    )
    op.create_foreign_key(_FK, "or_retry_plan_rows", "or_retry_plans", ["plan_id"], ["id"], ondelete="CASCADE")
