"""error scope index covers the filters

The partial index on ERROR rows, (created_at, id) INCLUDE (vendor_id, ramp_id), served the scope's
walk, but every whole-scope count (a dry run and its plan, the error summary) still visited the
heap of each row for the columns the filters read: the version it ran, its replay attempts, its
error category, its status (the first filter reads it, although the index holds only ERROR rows).
Those four are included now, so the count is an index-only scan wherever the visibility map
allows (failed rows are old and rarely written, so nearly everywhere). The index holds only the
ERROR rows: rebuilding it took about a second on the bench's 5,000,000-row database, during which
writes to the executions wait.

Revision ID: 0009_error_scope_index_covers_the_filters
Revises: 0008_superseded_by_any_success
Create Date: 2026-12-03 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_error_scope_index_covers_the_filters"
down_revision = "0008_superseded_by_any_success"
branch_labels = None
depends_on = None

NAME = "ix_or_ramp_executions_error_created_at"
COVERED = ["vendor_id", "ramp_id", "ramp_version", "replay_attempts", "last_error_category", "status_code"]
BEFORE = ["vendor_id", "ramp_id"]


def _rebuild(include: list[str]) -> None:
    op.drop_index(NAME, table_name="or_ramp_executions")
    op.create_index(
        NAME,
        "or_ramp_executions",
        ["created_at", "id"],
        postgresql_where=sa.text("status_code = 'ERROR'"),
        postgresql_include=include,
    )


def upgrade() -> None:
    _rebuild(COVERED)


def downgrade() -> None:
    _rebuild(BEFORE)
