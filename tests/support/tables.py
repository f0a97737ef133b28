"""Emptying the test database between tests (and inside a test that loads twice)."""

from __future__ import annotations

from sqlalchemy import text

from app.models import Base

# The job engine's tables, children first.
PROCRASTINATE_TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)
_PROCRASTINATE_TABLES = (
    "SELECT relname::text FROM pg_class WHERE relkind = 'r'"
    " AND relnamespace = current_schema()::regnamespace AND starts_with(relname, 'procrastinate_')"
)


def empty_tables(engine) -> None:
    """Delete every row of our tables, children first, and start their id sequences over.

    DELETE rather than TRUNCATE: on a test's few rows it costs a fraction of TRUNCATE's new files
    per table and index, and it is paid after every test. Tables our metadata does not own are
    left alone, but for the job engine's queue.
    """
    names = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        # The job engine's queue too, when its migration is applied (a test may have downgraded).
        present = set(conn.execute(text(_PROCRASTINATE_TABLES)).scalars())
        queue = [name for name in PROCRASTINATE_TABLES if name in present]
        conn.execute(text("; ".join(f"DELETE FROM {name}" for name in [*queue, *names])))
        conn.execute(
            text(
                "SELECT setval(d.objid::regclass, 1, false) FROM pg_depend d"
                " JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
                " WHERE d.refobjid = ANY(CAST(:tables AS regclass[])) AND d.deptype IN ('a', 'i')"
            ),
            {"tables": names},
        )
