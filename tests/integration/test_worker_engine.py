"""The job engine end to end: jobs deferred through the app's SQLAlchemy transactions, run by real
worker processes (`flask --app wsgi worker`, tests/support/worker.py) on the test database.

- a job commits (or rolls back) with the use case's transaction and runs in a worker, where the
  task reaches the worker's config, session factory and Flask app;
- `--concurrency` runs jobs side by side, and a task can defer jobs itself;
- a queueing-lock clash leaves the caller's transaction usable;
- SIGTERM / SIGINT: the job in flight finishes, the next one is not taken, exit code 0;
- a long task hands its job back on shutdown and another worker carries it on; abort reaches it;
- SIGKILL of the worker running a job: a live worker carries the job on within 60 seconds;
- the engine's rows of jobs that ended over a week ago are deleted, and only those.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from procrastinate import PsycopgConnector
from procrastinate.manager import JobManager
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.job_engine import AlreadyQueued, abort_job, defer_job, delete_finished_jobs, job_status, worker_conninfo
from tests.support import worker_tasks
from tests.support.worker import running_workers, wait_for
from tests.support.worker_tasks import read_journal


def _status(session_factory, job_id: int) -> str | None:
    with session_factory() as session, session.begin():
        return job_status(session, job_id)


def _events(journal, event: str, **match) -> list[dict]:
    return [e for e in read_journal(journal) if e["event"] == event and all(e.get(k) == v for k, v in match.items())]


@pytest.mark.slow
def test_job_deferred_in_a_use_case_transaction_runs_in_a_worker(database_url, session_factory, tmp_path):
    journal = str(tmp_path / "journal.jsonl")
    ghost_journal = str(tmp_path / "ghost.jsonl")
    with running_workers(database_url, tmp_path) as (worker,):
        # Rolled back with its unit of work: never runs.
        with pytest.raises(RuntimeError), session_factory() as session, session.begin():
            defer_job(session, worker_tasks.whoami, task_kwargs={"journal": ghost_journal})
            raise RuntimeError("the use case failed after deferring")
        with session_factory() as session, session.begin():
            job_id = defer_job(session, "tests.whoami", task_kwargs={"journal": journal})
        (entry,) = wait_for(lambda: _events(journal, "whoami"), 30, message="job run")
        wait_for(lambda: _status(session_factory, job_id) == "succeeded", 10, message="job succeeded")

    assert entry["pid"] == worker.pid and entry["job_id"] == job_id
    # The task reached the worker's own Config, a working session and the Flask app context.
    assert entry["environment"] == "test"
    assert entry["database"] == make_url(database_url).database
    assert entry["flask_app"] == "app"
    assert read_journal(ghost_journal) == []
    with session_factory() as session, session.begin():
        # (The worker's own upkeep ticks may be in the queue too.)
        jobs = session.execute(text("SELECT id FROM procrastinate_jobs WHERE task_name = 'tests.whoami'")).scalars()
        assert jobs.all() == [job_id]


@pytest.mark.slow
def test_concurrency_runs_jobs_side_by_side_and_tasks_can_defer_jobs(database_url, session_factory, tmp_path):
    journal = str(tmp_path / "journal.jsonl")
    with running_workers(database_url, tmp_path, concurrency=2) as (worker,):
        with session_factory() as session, session.begin():
            for label in ("a", "b"):
                defer_job(session, worker_tasks.sleep, task_kwargs={"journal": journal, "seconds": 2, "label": label})
            defer_job(session, worker_tasks.chain, task_kwargs={"journal": journal, "label": "from-a-task"})
        wait_for(lambda: len(_events(journal, "finish")) == 3, 30, message="all jobs done")
    starts = {e["label"]: e["at"] for e in _events(journal, "start")}
    finishes = {e["label"]: e["at"] for e in _events(journal, "finish")}
    assert max(starts["a"], starts["b"]) < min(finishes["a"], finishes["b"])  # overlapping
    (deferred,) = _events(journal, "deferred")
    (follow_up,) = _events(journal, "finish", label="from-a-task")
    assert follow_up["job_id"] == deferred["follow_up"] and follow_up["pid"] == worker.pid


def test_queueing_lock_clash_keeps_the_callers_transaction(session_factory, tmp_path):
    journal = str(tmp_path / "journal.jsonl")
    with session_factory() as session, session.begin():
        first = defer_job(
            session, worker_tasks.sleep, task_kwargs={"journal": journal, "seconds": 0}, queueing_lock="q"
        )
        with pytest.raises(AlreadyQueued):
            defer_job(session, worker_tasks.sleep, task_kwargs={"journal": journal, "seconds": 0}, queueing_lock="q")
        # Still usable: the failed insert ran in a savepoint.
        other = defer_job(
            session, worker_tasks.sleep, task_kwargs={"journal": journal, "seconds": 0}, queueing_lock="r"
        )
    with session_factory() as session, session.begin():
        rows = session.execute(text("SELECT id, queueing_lock, status::text FROM procrastinate_jobs ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(first, "q", "todo"), (other, "r", "todo")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.slow
def test_signal_lets_the_job_in_flight_finish_then_the_worker_stops(signum, database_url, session_factory, tmp_path):
    journal = str(tmp_path / "journal.jsonl")
    with running_workers(database_url, tmp_path) as (worker,):
        with session_factory() as session, session.begin():
            first = defer_job(
                session, worker_tasks.sleep, task_kwargs={"journal": journal, "seconds": 3, "label": "first"}
            )
            second = defer_job(
                session, worker_tasks.sleep, task_kwargs={"journal": journal, "seconds": 0, "label": "2nd"}
            )
        wait_for(lambda: _events(journal, "start", label="first"), 30, message="first job started")
        signalled_at = time.time()
        worker.send(signum)
        code = worker.wait(60)

    assert code == 0, worker.output()
    (finish,) = _events(journal, "finish", label="first")
    assert finish["pid"] == worker.pid and finish["at"] > signalled_at  # it was in flight, and finished
    assert _events(journal, "start", label="2nd") == []  # no new work after the signal
    assert _status(session_factory, first) == "succeeded"
    assert _status(session_factory, second) == "todo"
    assert worker.records(event="worker.stopped")


@pytest.mark.slow
def test_shutdown_hands_a_long_job_back_and_abort_reaches_it(database_url, session_factory, tmp_path):
    journal = str(tmp_path / "journal.jsonl")
    with running_workers(database_url, tmp_path / "a") as (first,):
        with session_factory() as session, session.begin():
            job_id = defer_job(session, worker_tasks.until_stopped, task_kwargs={"journal": journal}, lock="drain")
        wait_for(lambda: _events(journal, "start"), 30, message="job started")
        first.terminate()
        assert first.wait(30) == 0, first.output()
    assert [(e["event"], e["pid"]) for e in read_journal(journal)] == [("start", first.pid), ("handback", first.pid)]
    assert _status(session_factory, job_id) == "todo"  # back in the queue, same job

    with running_workers(database_url, tmp_path / "b") as (second,):
        (resumed,) = wait_for(lambda: _events(journal, "start", pid=second.pid), 30, message="job resumed")
        assert resumed["job_id"] == job_id and resumed["attempts"] == 1
        with session_factory() as session, session.begin():
            assert abort_job(session, job_id) is True
        asked_at = time.time()
        (aborted,) = wait_for(lambda: _events(journal, "aborted"), 10, message="abort seen")
        wait_for(lambda: _status(session_factory, job_id) == "aborted", 10, message="job aborted")
    # The abort notification reaches the running task at once (the poll is only the fallback).
    assert aborted["at"] - asked_at < 3
    with session_factory() as session, session.begin():
        assert abort_job(session, job_id) is False  # finished: nothing to abort


@pytest.mark.slow
def test_killed_worker_job_is_carried_on_by_a_live_worker_within_60s(database_url, session_factory, tmp_path):
    journal = str(tmp_path / "journal.jsonl")
    with running_workers(database_url, tmp_path, count=2) as workers:
        with session_factory() as session, session.begin():
            job_id = defer_job(session, worker_tasks.sleep, task_kwargs={"journal": journal, "seconds": 2})
        (started,) = wait_for(lambda: _events(journal, "start"), 30, message="job started")
        (victim,) = [w for w in workers if w.pid == started["pid"]]
        (survivor,) = [w for w in workers if w is not victim]
        killed_at = time.time()
        victim.kill()

        (resumed,) = wait_for(lambda: _events(journal, "start", pid=survivor.pid), 75, message="job carried on")
        wait_for(lambda: _events(journal, "finish", pid=survivor.pid), 10, message="job finished")
        wait_for(lambda: _status(session_factory, job_id) == "succeeded", 10, message="job succeeded")
        assert survivor.alive()

    assert resumed["job_id"] == job_id and resumed["attempts"] == 1
    assert resumed["at"] - killed_at < 60, f"carried on after {resumed['at'] - killed_at:.1f}s"
    assert _events(journal, "finish", pid=victim.pid) == []
    assert survivor.records(event="job_engine.stalled_job", job_id=job_id)


def test_engine_jobs_that_ended_over_a_week_ago_are_deleted_and_the_rest_stay(database_url, session_factory):
    # (task name: (status, hours since its last event))
    made = {
        "old succeeded": ("succeeded", 200),
        "old failed": ("failed", 200),
        "old cancelled": ("cancelled", 200),
        "old aborted": ("aborted", 200),
        "recent succeeded": ("succeeded", 100),
        "old but still waiting": ("todo", 200),
    }
    with session_factory() as session, session.begin():
        for name, (status, hours) in made.items():
            job_id = session.execute(
                text("INSERT INTO procrastinate_jobs (queue_name, task_name) VALUES ('default', :name) RETURNING id"),
                {"name": name},
            ).scalar_one()
            if status != "todo":
                session.execute(
                    text(
                        "UPDATE procrastinate_jobs SET status = CAST(:status AS procrastinate_job_status) WHERE id = :id"
                    ),
                    {"status": status, "id": job_id},
                )
            session.execute(
                text("UPDATE procrastinate_events SET at = now() - make_interval(hours => :hours) WHERE job_id = :id"),
                {"hours": hours, "id": job_id},
            )

    async def delete() -> None:
        connector = PsycopgConnector(conninfo=worker_conninfo(database_url))
        await connector.open_async()
        try:
            await delete_finished_jobs(JobManager(connector))
        finally:
            await connector.close_async()

    asyncio.run(delete())
    with session_factory() as session, session.begin():
        kept = set(session.execute(text("SELECT task_name FROM procrastinate_jobs")).scalars())
        orphan_events = session.execute(
            text(
                "SELECT count(*) FROM procrastinate_events e LEFT JOIN procrastinate_jobs j ON j.id = e.job_id WHERE j.id IS NULL"
            )
        ).scalar_one()
    assert kept == {"recent succeeded", "old but still waiting"}
    assert orphan_events == 0
