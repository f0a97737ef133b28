"""procrastinate schema: the job engine's tables, types and functions

Revision ID: 0002_procrastinate_schema
Revises: 0001_platform_and_retry_tables
Create Date: 2026-12-02 13:00:00

The job engine (app/job_engine.py) keeps its queue in the service's own database, so
`flask --app wsgi db upgrade` stays the only schema step. The SQL is procrastinate's own schema
file for the pinned version, run through a plain DB-API cursor without parameters: its PL/pgSQL
bodies contain `%` (RAISE formats), which any parameter-substituting layer would mangle.

The pin guard: this revision must always create the same schema. procrastinate ships only its
latest schema, so if the pin in requirements.txt moves, a fresh database would silently get a
different one here. Bumping procrastinate therefore means: keep this revision on the old
schema (vendor that version's schema.sql beside it) and add a new revision that runs the
upgrade scripts procrastinate ships in `procrastinate/sql/migrations/` between the two versions.
"""

import procrastinate
from alembic import op
from procrastinate.schema import SchemaManager

revision = "0002_procrastinate_schema"
down_revision = "0001_platform_and_retry_tables"
branch_labels = None
depends_on = None

SCHEMA_VERSION = "3.10.0"

# Version-independent clean-up: everything procrastinate creates is named procrastinate_*
# (tables first, their triggers go with them; then functions; then the enum/composite types).
DROP_PROCRASTINATE_OBJECTS = """
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT c.oid::regclass AS name FROM pg_class c
         WHERE c.relkind IN ('r', 'p') AND c.relnamespace = current_schema()::regnamespace
           AND starts_with(c.relname, 'procrastinate_')
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS %s CASCADE', item.name);
    END LOOP;
    FOR item IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p
         WHERE p.pronamespace = current_schema()::regnamespace AND starts_with(p.proname, 'procrastinate_')
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', item.name);
    END LOOP;
    FOR item IN
        SELECT t.oid::regtype AS name FROM pg_type t
          LEFT JOIN pg_class c ON c.oid = t.typrelid
         WHERE t.typnamespace = current_schema()::regnamespace AND starts_with(t.typname, 'procrastinate_')
           AND (t.typtype = 'e' OR (t.typtype = 'c' AND c.relkind = 'c'))
    LOOP
        EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', item.name);
    END LOOP;
END
$$;
"""


def upgrade() -> None:
    if procrastinate.__version__ != SCHEMA_VERSION:
        raise RuntimeError(
            f"revision 0002 creates procrastinate {SCHEMA_VERSION}'s schema but {procrastinate.__version__} is "
            "installed; see this revision's docstring for how to move the pin"
        )
    # The migration's own connection and transaction: a failure leaves nothing behind.
    cursor = op.get_bind().connection.cursor()
    try:
        cursor.execute(SchemaManager.get_schema())
    finally:
        cursor.close()


def downgrade() -> None:
    cursor = op.get_bind().connection.cursor()
    try:
        cursor.execute(DROP_PROCRASTINATE_OBJECTS)
    finally:
        cursor.close()
