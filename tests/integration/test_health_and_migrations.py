from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from app.migrate import alembic_config, current_heads, downgrade, upgrade
from app.models import Base
from devtools.dbtools import database_name, drop_database, recreate_database


def test_healthz_answers_with_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_unknown_route_is_json_404(client):
    response = client.get("/nope")
    assert response.status_code == 404
    body = response.get_json()
    assert body["error"]["code"] == "not_found"
    assert response.headers["X-Request-ID"] == body["request_id"]


def test_migrations_create_the_spec_tables(engine):
    names = set(inspect(engine).get_table_names())
    assert {"or_ramp_executions", "or_workflow_history", "or_projects"} <= names


def test_runbook_blast_radius_sql_runs_unchanged(engine):
    sql = (
        "SELECT COUNT(*), vendor_id, ramp_id FROM or_ramp_executions "
        "WHERE status_code = 'ERROR' AND created_at >= '2026-05-11T12:30:00Z' GROUP BY vendor_id, ramp_id;"
    )
    with engine.connect() as conn:
        assert conn.execute(text(sql)).all() == []


def test_migrations_run_down_and_up_from_empty(database_url):
    # A scratch database on the same server: empty -> head -> base -> head.
    scratch = database_name(database_url) + "_scratch"
    url = recreate_database(database_url, scratch)
    try:
        upgrade(url)
        heads = ScriptDirectory.from_config(alembic_config(url)).get_heads()
        assert len(heads) == 1, f"the migrations must form one line, found heads {heads}"
        assert current_heads(url) == set(heads)
        downgrade(url, "base")
        assert current_heads(url) == set()
        upgrade(url)
        assert current_heads(url)
    finally:
        drop_database(database_url, scratch)


def _ours_or_not_procrastinate(obj, name, type_, reflected, compare_to) -> bool:
    # Another engineer's migration installs the procrastinate job queue's schema: its tables
    # (and their indexes and constraints) are the queue's, not our models', so they are never in
    # Base.metadata. Anything else the database has and the models lack is reported.
    table_name = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None) or ""
    return not (reflected and compare_to is None and table_name.startswith("procrastinate"))


def test_models_and_migrations_agree(engine):
    # The database the migrations built (the test database) against the typed models: a column,
    # index, constraint or type in one and not the other shows up here.
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "compare_server_default": True, "include_object": _ours_or_not_procrastinate},
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
