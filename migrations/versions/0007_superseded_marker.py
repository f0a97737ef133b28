"""superseded executions marker

`duplicate_trigger_succeeded` asked, for every row in scope, whether a later execution of the same
ramp and trigger key succeeded: an index probe into the success rows per row, the costliest part
of every whole-scope count. This table holds the answer instead, one row per execution that has
such a later success, kept by a row trigger on `or_ramp_executions` in the same transaction as the
change that makes it true or false (a success written, a success undone, a row added or removed).
The rows of one (ramp, trigger key) are recomputed together; concurrent writers of one key are
already serialised by the trigger-key advisory lock (app/workflow/trigger_keys.py).

Revision ID: 0007_superseded_marker
Revises: 0006_plan_rows_without_plan_fk
Create Date: 2026-12-03 07:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_superseded_marker"
down_revision = "0006_plan_rows_without_plan_fk"
branch_labels = None
depends_on = None

# The marker rows of the executions `{where}` selects, as the old per-row probe defined them: for
# each execution with a trigger key, the first later SUCCESS of the same ramp and key.
_MARKERS = """
    INSERT INTO or_superseded_executions (execution_id, ramp_id, trigger_key, superseded_by_uuid)
    SELECT e.id, e.ramp_id, e.trigger_key, later.uuid
    FROM or_ramp_executions e
    CROSS JOIN LATERAL (
        SELECT s.uuid FROM or_ramp_executions s
        WHERE s.ramp_id = e.ramp_id AND s.trigger_key = e.trigger_key
          AND s.status_code = 'SUCCESS' AND s.created_at > e.created_at
        ORDER BY s.created_at
        LIMIT 1
    ) later
    WHERE {where}
    ON CONFLICT (execution_id) DO UPDATE SET superseded_by_uuid = EXCLUDED.superseded_by_uuid"""
_MARK_GROUP = _MARKERS.format(where="e.ramp_id = p_ramp_id AND e.trigger_key = p_trigger_key")

FUNCTIONS = f"""
CREATE FUNCTION or_mark_superseded_group(p_ramp_id bigint, p_trigger_key text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_ramp_id IS NULL OR p_trigger_key IS NULL THEN
        RETURN;
    END IF;
    DELETE FROM or_superseded_executions WHERE ramp_id = p_ramp_id AND trigger_key = p_trigger_key;
    {_MARK_GROUP};
END
$$;

CREATE FUNCTION or_ramp_executions_superseded() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM or_mark_superseded_group(OLD.ramp_id, OLD.trigger_key);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE')
       AND (TG_OP = 'INSERT' OR (NEW.ramp_id, NEW.trigger_key) IS DISTINCT FROM (OLD.ramp_id, OLD.trigger_key)) THEN
        PERFORM or_mark_superseded_group(NEW.ramp_id, NEW.trigger_key);
    END IF;
    RETURN NULL;
END
$$;
"""

# Only changes that can move the answer: a row with a key added or removed, a success gained or
# lost, a row's key, ramp or time changed.
TRIGGERS = """
CREATE TRIGGER or_superseded_on_insert AFTER INSERT ON or_ramp_executions
    FOR EACH ROW WHEN (NEW.trigger_key IS NOT NULL)
    EXECUTE FUNCTION or_ramp_executions_superseded();
CREATE TRIGGER or_superseded_on_update AFTER UPDATE OF status_code, ramp_id, trigger_key, created_at
    ON or_ramp_executions
    FOR EACH ROW WHEN (
        (OLD.trigger_key IS NOT NULL OR NEW.trigger_key IS NOT NULL) AND (
            ((OLD.status_code = 'SUCCESS') IS DISTINCT FROM (NEW.status_code = 'SUCCESS'))
            OR (OLD.ramp_id, OLD.trigger_key, OLD.created_at) IS DISTINCT FROM (NEW.ramp_id, NEW.trigger_key, NEW.created_at)
        )
    )
    EXECUTE FUNCTION or_ramp_executions_superseded();
CREATE TRIGGER or_superseded_on_delete AFTER DELETE ON or_ramp_executions
    FOR EACH ROW WHEN (OLD.trigger_key IS NOT NULL)
    EXECUTE FUNCTION or_ramp_executions_superseded();
"""

# Every marker at once, for existing data and for bulk loads made with the insert trigger disabled
# (the benchmark's generator calls it).
REBUILD = f"""
CREATE FUNCTION or_rebuild_superseded() RETURNS bigint
LANGUAGE sql AS $$
    DELETE FROM or_superseded_executions;
    WITH marked AS ({_MARKERS.format(where="e.trigger_key IS NOT NULL")}
        RETURNING 1
    )
    SELECT count(*) FROM marked;
$$;
"""


def upgrade() -> None:
    op.create_table(
        "or_superseded_executions",
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("ramp_id", sa.BigInteger(), nullable=False),
        sa.Column("trigger_key", sa.String(length=255), nullable=False),
        sa.Column("superseded_by_uuid", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", name=op.f("pk_or_superseded_executions")),
    )
    op.create_index("ix_or_superseded_executions_ramp_trigger", "or_superseded_executions", ["ramp_id", "trigger_key"])
    # The triggers recompute one key's rows: find them without walking the ramp's whole history.
    op.create_index(
        "ix_or_ramp_executions_ramp_trigger",
        "or_ramp_executions",
        ["ramp_id", "trigger_key"],
        postgresql_where=sa.text("trigger_key IS NOT NULL"),
    )
    op.execute(FUNCTIONS)
    op.execute(REBUILD)
    op.execute(TRIGGERS)
    op.execute("SELECT or_rebuild_superseded()")


def downgrade() -> None:
    for name in ("or_superseded_on_insert", "or_superseded_on_update", "or_superseded_on_delete"):
        op.execute(f"DROP TRIGGER {name} ON or_ramp_executions")
    op.execute("DROP FUNCTION or_ramp_executions_superseded()")
    op.execute("DROP FUNCTION or_rebuild_superseded()")
    op.execute("DROP FUNCTION or_mark_superseded_group(bigint, text)")
    op.drop_index("ix_or_superseded_executions_ramp_trigger", table_name="or_superseded_executions")
    op.drop_table("or_superseded_executions")
    op.drop_index("ix_or_ramp_executions_ramp_trigger", table_name="or_ramp_executions")
