"""What must hold after a replay was cut off (its backend or its whole process killed): shared by
the crash-recovery tests."""

from __future__ import annotations

from sqlalchemy import text

# Only this test database's backends: other test runs may share the server.
LOCKERS_SQL = """SELECT DISTINCT l.pid FROM pg_locks l
WHERE l.relation = 'or_ramp_executions'::regclass AND l.mode = 'RowShareLock' AND l.granted
  AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


def assert_no_half_replays(engine) -> None:
    """No project on a non-SUCCESS execution, no unlinked project, no SUCCESS without its
    REPLAYED history row, and no row lock held on the executions."""
    with engine.connect() as conn:
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM or_projects p JOIN or_ramp_executions e ON e.id = p.execution_id"
                " WHERE e.status_code <> 'SUCCESS'"
            )
        ).scalar_one()
        unlinked = conn.execute(text("SELECT count(*) FROM or_projects WHERE execution_id IS NULL")).scalar_one()
        no_history = conn.execute(
            text(
                "SELECT count(*) FROM or_ramp_executions e WHERE e.status_code = 'SUCCESS' AND NOT EXISTS ("
                " SELECT 1 FROM or_workflow_history h WHERE h.execution_id = e.id"
                " AND h.action = 'WORKFLOW_HISTORY_ACTION_REPLAYED')"
            )
        ).scalar_one()
        locks = conn.execute(text(LOCKERS_SQL)).all()
    assert (orphans, unlinked, no_history, locks) == (0, 0, 0, [])
