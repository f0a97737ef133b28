"""Migration 0002: the job engine's schema comes and goes with `flask --app wsgi db upgrade/downgrade`."""

from __future__ import annotations

import subprocess
import sys

import procrastinate
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import REPO_ROOT
from app.migrate import current_heads, upgrade
from tests.support.worker import worker_env

PREVIOUS = "0001_platform_and_retry_tables"
ENGINE = "0002_procrastinate_schema"
ENGINE_OBJECTS = """
SELECT (SELECT count(*) FROM pg_class WHERE starts_with(relname, 'procrastinate_')
          AND relnamespace = current_schema()::regnamespace) AS relations,
       (SELECT count(*) FROM pg_proc WHERE starts_with(proname, 'procrastinate_')) AS functions,
       (SELECT count(*) FROM pg_type WHERE starts_with(typname, 'procrastinate_')
          AND typnamespace = current_schema()::regnamespace) AS types
"""


@pytest.fixture
def scratch_url(database_url):
    url = make_url(database_url)
    scratch = url.set(database=f"{url.database}_engine_scratch")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{scratch.database}"'))
    yield scratch.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch.database}" WITH (FORCE)'))
    admin.dispose()


def _flask(url: str, tmp_path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", *args],
        cwd=REPO_ROOT,
        env=worker_env(url, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def _engine_objects(url: str) -> tuple[int, int, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(text(ENGINE_OBJECTS)).one())
    finally:
        engine.dispose()


def test_upgrade_creates_the_engine_schema_and_downgrade_removes_it(scratch_url, tmp_path):
    _flask(scratch_url, tmp_path, "upgrade", ENGINE)
    assert current_heads(scratch_url) == {ENGINE}
    relations, functions, types = _engine_objects(scratch_url)
    assert relations > 4 and functions > 10 and types >= 3
    engine = create_engine(scratch_url)
    with engine.begin() as conn:  # the schema works: a job can be queued and read back
        conn.execute(text("INSERT INTO procrastinate_jobs (queue_name, task_name) VALUES ('default', 't')"))
        assert conn.execute(text("SELECT status::text FROM procrastinate_jobs")).scalar() == "todo"
    engine.dispose()

    _flask(scratch_url, tmp_path, "downgrade", PREVIOUS)
    assert current_heads(scratch_url) == {PREVIOUS}
    assert _engine_objects(scratch_url) == (0, 0, 0)

    _flask(scratch_url, tmp_path, "upgrade", ENGINE)  # and back again, from clean
    assert current_heads(scratch_url) == {ENGINE}


def test_upgrade_refuses_another_procrastinate_schema(scratch_url, monkeypatch):
    upgrade(scratch_url, PREVIOUS)
    monkeypatch.setattr(procrastinate, "__version__", "99.0.0")
    with pytest.raises(RuntimeError, match="3.10.0"):
        upgrade(scratch_url, ENGINE)
    assert current_heads(scratch_url) == {PREVIOUS}
    assert _engine_objects(scratch_url) == (0, 0, 0)
