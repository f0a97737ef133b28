"""Retry jobs on the real job engine: real `flask --app wsgi worker` processes take the lanes the
API deferred (SPEC section 7, "Workers"). Every row exactly once, whatever happens to the workers
or to PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, text

from app import create_app
from app.config import Config
from app.embedded_db import ensure_server, get_running_server, stop_server
from app.migrate import upgrade
from app.models import RampExecution, WorkflowHistory
from app.scenarios import load_scenario
from tests.support.invariants import assert_no_half_replays
from tests.support.retry_scenarios import api_key_headers, backlog, iso
from tests.support.worker import running_workers, wait_for

JOBS = "/api/ramps/executions/retry-jobs"
pytestmark = pytest.mark.slow  # worker processes


def window(**extra) -> dict:
    return {"since": iso(0), "until": iso(24 * 60), "suppress_notifications": True, **extra}


def start_job(client, headers, **body) -> str:
    response = client.post(JOBS, json=window(**body), headers=headers)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["job_id"]


def job_of(client, headers, job_id) -> dict:
    return client.get(f"{JOBS}/{job_id}", headers=headers).get_json()


def replays_per_row(session_factory) -> list[int]:
    with session_factory() as session, session.begin():
        return [
            n
            for _, n in session.execute(
                select(WorkflowHistory.execution_id, func.count()).group_by(WorkflowHistory.execution_id)
            )
        ]


def finished(client, headers, job_id, timeout: float) -> dict:
    return wait_for(
        lambda: (
            (job := job_of(client, headers, job_id))["state"] in ("completed", "halted", "failed", "cancelled") and job
        ),
        timeout,
        message=f"job {job_id} to finish",
    )


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="worker-jobs")


def test_two_worker_processes_share_a_job_and_replay_every_row_once(
    client, admin, load, session_factory, database_url, tmp_path
):
    load(backlog(120))
    with running_workers(database_url, tmp_path, count=2, task_modules=()) as workers:
        job_id = start_job(client, admin, max_replays_per_second=100)
        done = finished(client, admin, job_id, 90)
        lanes_run = [
            [r for r in worker.records(action="start_job") if r["job"]["task_kwargs"].get("job_id") == job_id]
            for worker in workers
        ]
    assert done["state"] == "completed", done
    assert (done["progress"]["success"], done["progress"]["remaining"]) == (120, 0)
    counts = replays_per_row(session_factory)
    assert len(counts) == 120 and set(counts) == {1}
    # Both workers took part: each ran lanes of the job.
    assert all(lanes_run), [len(lanes) for lanes in lanes_run]


def test_a_worker_killed_mid_job_loses_nothing_and_another_carries_on(
    client, admin, load, session_factory, engine, database_url, tmp_path
):
    load(backlog(150))
    with running_workers(database_url, tmp_path / "first", count=1, task_modules=()) as (first,):
        job_id = start_job(client, admin, max_replays_per_second=25)
        wait_for(lambda: job_of(client, admin, job_id)["progress"]["done"] >= 20, 60, message="progress")
        first.kill()  # SIGKILL, possibly mid-replay
    at_kill = job_of(client, admin, job_id)["progress"]["done"]
    assert_no_half_replays(engine)  # the replay in flight rolled back entirely
    with running_workers(database_url, tmp_path / "second", count=1, task_modules=()):
        wait_for(lambda: job_of(client, admin, job_id)["progress"]["done"] > at_kill, 60, message="carried on")
        done = finished(client, admin, job_id, 120)
    assert done["state"] == "completed", done
    counts = replays_per_row(session_factory)
    assert len(counts) == 150 and set(counts) == {1}
    assert_no_half_replays(engine)


def test_cancel_aborts_the_lanes_and_no_replay_starts_after_it(
    client, admin, load, session_factory, database_url, tmp_path
):
    load(backlog(200))
    with running_workers(database_url, tmp_path, count=1, task_modules=()):
        job_id = start_job(client, admin, max_replays_per_second=10)
        wait_for(lambda: job_of(client, admin, job_id)["progress"]["done"] >= 5, 60, message="progress")
        cancelled = client.post(f"{JOBS}/{job_id}/cancel", json={"reason": "wrong window"}, headers=admin)
        assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "cancelled"
        at_cancel = sum(replays_per_row(session_factory))
        time.sleep(3)
        assert sum(replays_per_row(session_factory)) <= at_cancel + 1  # the one in flight may finish
        with session_factory() as session, session.begin():
            lanes = session.execute(
                text("SELECT status::text, count(*) FROM procrastinate_jobs WHERE starts_with(lock, :p) GROUP BY 1"),
                {"p": f"retry-job:{job_id}:lane:"},
            ).all()
    assert not {status for status, _ in lanes} & {"todo", "doing"}, lanes


def test_pause_then_resume_goes_back_to_the_workers(client, admin, load, session_factory, database_url, tmp_path):
    load(backlog(60))
    with running_workers(database_url, tmp_path, count=1, task_modules=()):
        job_id = start_job(client, admin, max_replays_per_second=20)
        wait_for(lambda: job_of(client, admin, job_id)["progress"]["done"] >= 5, 60, message="progress")
        assert client.post(f"{JOBS}/{job_id}/pause", json={}, headers=admin).get_json()["state"] == "paused"
        time.sleep(2.5)
        at_pause = job_of(client, admin, job_id)["progress"]["done"]
        time.sleep(2)
        assert job_of(client, admin, job_id)["progress"]["done"] == at_pause
        assert client.post(f"{JOBS}/{job_id}/resume", json={}, headers=admin).get_json()["state"] == "queued"
        done = finished(client, admin, job_id, 60)
    assert done["state"] == "completed"
    counts = replays_per_row(session_factory)
    assert len(counts) == 60 and set(counts) == {1}


@pytest.fixture
def private_service(private_pg, tmp_path):
    instance, server = private_pg
    url = server.url("onramp")
    upgrade(url)
    application = create_app(
        Config(database_url=url, instance_dir=tmp_path / "instance", secret_key="k", environment="test", testing=True)
    )
    yield instance, server, url, application
    application.extensions["onramp_db"].dispose()


def test_a_job_finishes_after_postgresql_restarts_under_it(private_service, tmp_path):
    instance, server, url, application = private_service
    session_factory = application.extensions["onramp_db"].session_factory
    with session_factory() as session, session.begin():
        load_scenario(session, backlog(80))
    client = application.test_client()
    admin = api_key_headers(session_factory, name="restart")
    with running_workers(url, tmp_path / "w", count=1, task_modules=()):
        job_id = start_job(client, admin, max_replays_per_second=20)
        wait_for(lambda: job_of(client, admin, job_id)["progress"]["done"] >= 10, 60, message="progress")
        assert stop_server(instance)
        assert get_running_server(instance) is None
        time.sleep(3)
        assert ensure_server(instance).port == server.port
        done = wait_for(
            lambda: (job := _job_when_up(client, admin, job_id)) and job["state"] == "completed" and job,
            180,
            message="the job to complete after the restart",
        )
    assert done["progress"]["success"] == 80
    counts = replays_per_row(session_factory)
    assert len(counts) == 80 and set(counts) == {1}
    with session_factory() as session, session.begin():
        assert set(session.scalars(select(RampExecution.status_code))) == {"SUCCESS"}


def _job_when_up(client, admin, job_id) -> dict | None:
    response = client.get(f"{JOBS}/{job_id}", headers=admin)
    return response.get_json() if response.status_code == 200 else None


def test_sigterm_lets_the_replay_in_flight_finish_and_hands_the_job_on(
    client, admin, load, session_factory, engine, database_url, tmp_path
):
    load(backlog(100))
    with running_workers(database_url, tmp_path / "b", count=1, task_modules=()) as (second,):
        with running_workers(database_url, tmp_path / "a", count=1, task_modules=()) as (first,):
            job_id = start_job(client, admin, max_replays_per_second=20)
            wait_for(lambda: job_of(client, admin, job_id)["progress"]["done"] >= 10, 60, message="progress")
            first.terminate()
            assert first.wait(30) == 0  # a graceful exit, after the replay in flight
        done = finished(client, admin, job_id, 120)
    assert done["state"] == "completed", done
    assert_no_half_replays(engine)
    counts = replays_per_row(session_factory)
    assert len(counts) == 100 and set(counts) == {1}
