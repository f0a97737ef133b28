"""superseded by any success of the same deal

`duplicate_trigger_succeeded` now also holds when an EARLIER execution of the same ramp and
trigger key succeeded, not only a later one. Two failed runs of one deal (a CRM re-delivery that
failed like the first run) were both eligible: the first replay succeeded, the second still had
no later success, and the deal got two projects. The trigger path already refused a key that had
succeeded at all (app/workflow/trigger_keys.py); replays now follow the same rule. The marker
names the first success of the key (by created_at); the triggers of 0007 stay as they are (they
fire on every change that can move this answer too), only the functions they call and the
rebuild change, and the markers are rebuilt.

Revision ID: 0008_superseded_by_any_success
Revises: 0007_superseded_marker
Create Date: 2026-12-03 14:45:00
"""

from alembic import op

revision = "0008_superseded_by_any_success"
down_revision = "0007_superseded_marker"
branch_labels = None
depends_on = None

# For each execution with a trigger key `{where}` selects: the first SUCCESS of the same ramp and
# key that is {other} (0008: any other execution; 0007: a later one).
_MARKERS = """
    INSERT INTO or_superseded_executions (execution_id, ramp_id, trigger_key, superseded_by_uuid)
    SELECT e.id, e.ramp_id, e.trigger_key, success.uuid
    FROM or_ramp_executions e
    CROSS JOIN LATERAL (
        SELECT s.uuid FROM or_ramp_executions s
        WHERE s.ramp_id = e.ramp_id AND s.trigger_key = e.trigger_key
          AND s.status_code = 'SUCCESS' AND {other}
        ORDER BY s.created_at, s.id
        LIMIT 1
    ) success
    WHERE {where}
    ON CONFLICT (execution_id) DO UPDATE SET superseded_by_uuid = EXCLUDED.superseded_by_uuid"""
ANY_OTHER = "s.id <> e.id"
LATER = "s.created_at > e.created_at"


def _functions(other: str) -> str:
    group = _MARKERS.format(other=other, where="e.ramp_id = p_ramp_id AND e.trigger_key = p_trigger_key")
    everything = _MARKERS.format(other=other, where="e.trigger_key IS NOT NULL")
    return f"""
CREATE OR REPLACE FUNCTION or_mark_superseded_group(p_ramp_id bigint, p_trigger_key text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_ramp_id IS NULL OR p_trigger_key IS NULL THEN
        RETURN;
    END IF;
    DELETE FROM or_superseded_executions WHERE ramp_id = p_ramp_id AND trigger_key = p_trigger_key;
    {group};
END
$$;

CREATE OR REPLACE FUNCTION or_rebuild_superseded() RETURNS bigint
LANGUAGE sql AS $$
    DELETE FROM or_superseded_executions;
    WITH marked AS ({everything}
        RETURNING 1
    )
    SELECT count(*) FROM marked;
$$;
"""


def upgrade() -> None:
    op.execute(_functions(ANY_OTHER))
    op.execute("SELECT or_rebuild_superseded()")


def downgrade() -> None:
    op.execute(_functions(LATER))
    op.execute("SELECT or_rebuild_superseded()")
