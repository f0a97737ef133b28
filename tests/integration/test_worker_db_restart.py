"""A worker outlives a PostgreSQL restart: it keeps its process, reconnects by itself and runs the
jobs deferred before and after the restart. On a private cluster (the shared test server cannot
be restarted), as in test_reliability_db_restart.py."""

from __future__ import annotations

import time

import pytest

from app import create_app
from app.config import Config
from app.embedded_db import ensure_server, get_running_server, stop_server
from app.job_engine import defer_job
from app.migrate import upgrade
from tests.support import worker_tasks
from tests.support.worker import running_workers, wait_for
from tests.support.worker_tasks import read_journal


@pytest.fixture
def private_db(private_pg, tmp_path):
    instance, server = private_pg
    url = server.url("onramp")
    upgrade(url)
    application = create_app(
        Config(database_url=url, instance_dir=tmp_path / "instance", secret_key="k", environment="test", testing=True)
    )
    yield instance, server, url, application.extensions["onramp_db"].session_factory
    application.extensions["onramp_db"].dispose()


def _defer(session_factory, journal: str, label: str) -> int:
    with session_factory() as session, session.begin():
        return defer_job(session, worker_tasks.sleep, task_kwargs={"journal": journal, "seconds": 0, "label": label})


@pytest.mark.slow
def test_worker_carries_on_across_a_postgresql_restart(private_db, tmp_path):
    instance, server, url, session_factory = private_db
    journal = str(tmp_path / "journal.jsonl")
    with running_workers(url, tmp_path / "w") as (worker,):
        _defer(session_factory, journal, "before")
        wait_for(lambda: [e for e in read_journal(journal) if e["label"] == "before"], 30, message="first job")

        assert stop_server(instance)
        assert get_running_server(instance) is None
        time.sleep(3)  # the worker's connections are gone and its polls fail meanwhile
        assert ensure_server(instance).port == server.port

        # Deferred once the server is back: picked up by the same, still running, process.
        _defer(session_factory, journal, "after")
        (after,) = wait_for(
            lambda: [e for e in read_journal(journal) if e["label"] == "after" and e["event"] == "finish"],
            60,
            message="job after the restart",
        )
        assert worker.alive()
    assert after["pid"] == worker.pid
    assert worker.records(event="worker.lane_failed")  # it noticed, and restarted its lanes
