"""Retry jobs (SPEC section 7) through the HTTP API, with lanes run in threads of this process.

The job engine (procrastinate) and real worker processes are exercised in
test_retry_jobs_workers.py; here the lanes are the real `run_lane` in threads, which is all a
worker adds to them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from sqlalchemy import func, select, text

from app import job_engine
from app.models import RampExecution, RetryJobEvent, WorkflowHistory
from app.models.identity import ROLE_VIEWER
from app.retries.job_lane import run_lane
from app.retries.jobs import lane_lock_prefix
from tests.support.retry_scenarios import add_failures_like, api_key_headers, backlog, iso

JOBS = "/api/ramps/executions/retry-jobs"
STEPS = ["fetch_crm_record", "find_or_create_account", "create_project"]


class ThreadLanes:
    """Runs a job's lanes in threads of this process (no worker takes the engine tasks that the
    API deferred: they stay queued, which the engine-side tests check)."""

    def __init__(self, session_factory, config) -> None:
        self.session_factory, self.config = session_factory, config
        self.threads: list[threading.Thread] = []
        self.aborted: set = set()
        self.started: list = []

    def run(self, job_id, lanes: int = 1) -> None:
        job_uuid = uuid.UUID(job_id)
        self.started.append(job_uuid)
        for _ in range(lanes):
            thread = threading.Thread(
                target=run_lane,
                args=(self.session_factory, self.config, job_uuid),
                kwargs={"should_abort": lambda: job_uuid in self.aborted},
                daemon=True,
            )
            thread.start()
            self.threads.append(thread)

    def join(self, timeout: float = 60) -> None:
        for thread in self.threads:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self.threads), "a lane did not finish"


@pytest.fixture
def lanes(session_factory, config):
    runner = ThreadLanes(session_factory, config)
    yield runner
    runner.aborted |= set(runner.started)
    runner.join()


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="job-admin")


@pytest.fixture
def viewer(session_factory):
    return api_key_headers(session_factory, name="job-viewer", role=ROLE_VIEWER)


def window(**extra) -> dict:
    return {"since": iso(0), "until": iso(24 * 60), "suppress_notifications": True, **extra}


def create(client, headers, body, *, key: str | None = None):
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    return client.post(JOBS, json=body, headers=headers)


def job_of(client, headers, job_id) -> dict:
    response = client.get(f"{JOBS}/{job_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def wait_for_state(client, headers, job_id, states, timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = job_of(client, headers, job_id)
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {states}: {job}")


def history_count(session_factory, job_id) -> int:
    with session_factory() as session, session.begin():
        return session.scalar(
            select(func.count()).select_from(WorkflowHistory).where(WorkflowHistory.batch_id == job_id)
        )


def test_a_job_drains_the_scope_to_completed_with_totals_that_add_up(client, admin, load, lanes, session_factory):
    data = backlog(30)
    load(data)
    response = create(client, admin, window(max_replays_per_second=200))
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert response.headers["Location"].endswith(f"{JOBS}/{job['job_id']}")
    assert job["progress"]["total"] == 30
    assert job["created_by"] == "job-admin"
    lanes.run(job["job_id"])
    lanes.join()
    done = job_of(client, admin, job["job_id"])
    assert done["state"] == "completed", done
    progress = done["progress"]
    assert (progress["total"], progress["done"], progress["success"], progress["error"], progress["skipped"]) == (
        30,
        30,
        30,
        0,
        0,
    )
    assert progress["remaining"] == 0 and done["finished_at"] and done["started_at"]
    with session_factory() as session, session.begin():
        history = session.scalars(select(WorkflowHistory).where(WorkflowHistory.batch_id == job["job_id"])).all()
        statuses = set(session.scalars(select(RampExecution.status_code)))
    assert len(history) == 30 and len({h.execution_id for h in history}) == 30
    assert {h.details["job_id"] for h in history} == {job["job_id"]}
    assert {h.actor for h in history} == {"job-admin"}
    assert statuses == {"SUCCESS"}


def test_rows_failing_after_creation_are_not_added(client, admin, load, lanes, session_factory):
    data = backlog(3)
    load(data)
    job = create(client, admin, window()).get_json()
    assert job["progress"]["total"] == 3
    # More failures in the same window, after the job froze its rows.
    add_failures_like(session_factory, data["executions"][0]["uuid"], [str(uuid.uuid4()) for _ in range(2)])
    lanes.run(job["job_id"])
    lanes.join()
    assert job_of(client, admin, job["job_id"])["progress"]["total"] == 3
    assert history_count(session_factory, job["job_id"]) == 3


def test_a_job_from_a_plan_runs_exactly_the_plan(client, admin, load, lanes, session_factory):
    data = backlog(4)
    load(data)
    preview = client.post("/api/ramps/executions/retry-batch", json=window(), headers=admin).get_json()
    add_failures_like(session_factory, data["executions"][0]["uuid"], [str(uuid.uuid4()) for _ in range(3)])
    job = create(client, admin, {"plan_token": preview["plan_token"], "max_replays_per_second": 100}).get_json()
    assert job["progress"]["total"] == 4
    assert job["request"]["plan_token"] == preview["plan_token"]
    lanes.run(job["job_id"])
    lanes.join()
    assert job_of(client, admin, job["job_id"])["state"] == "completed"
    assert history_count(session_factory, job["job_id"]) == 4


def test_nothing_eligible_still_makes_a_job_that_completes_at_once(client, admin, session_factory):
    response = create(client, admin, window())
    assert response.status_code == 202
    job = response.get_json()
    assert job["state"] == "completed" and job["progress"]["total"] == 0
    with session_factory() as session, session.begin():
        assert job_engine.active_jobs(session, lane_lock_prefix(uuid.UUID(job["job_id"]))) == []


def test_idempotency_key_returns_the_same_job_or_422(client, admin, load, lanes, session_factory):
    load(backlog(2))
    body = window()
    first = create(client, admin, body, key="incident-7")
    again = create(client, admin, body, key="incident-7")
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.get_json()["job_id"] == again.get_json()["job_id"]
    other = create(client, admin, window(max_attempts=2), key="incident-7")
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    too_long = create(client, admin, body, key="k" * 256)
    assert too_long.status_code == 400


@pytest.mark.parametrize(
    "body, field",
    [
        ({"dry_run": True}, "dry_run"),
        ({"max_replays_per_second": 0}, "max_replays_per_second"),
        ({"max_replays_per_second": 1e-300}, "max_replays_per_second"),
        ({"max_replays_per_second": 0.0009}, "max_replays_per_second"),
        ({"max_replays_per_second": 201}, "max_replays_per_second"),
        ({"max_replays_per_second": "5"}, "max_replays_per_second"),
        ({"halt_error_rate": 1.5}, "halt_error_rate"),
        ({"halt_window": 0}, "halt_window"),
        ({"halt_window": 1001}, "halt_window"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(client, admin, body, field):
    response = create(client, admin, window(**body))
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["error"]["details"]


def test_viewer_may_read_but_not_act(client, admin, viewer, load, lanes):
    load(backlog(1))
    job = create(client, admin, window()).get_json()
    assert create(client, viewer, window()).status_code == 403
    assert client.get(f"{JOBS}/{job['job_id']}", headers=viewer).status_code == 200
    listed = client.get(JOBS, headers=viewer).get_json()["jobs"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]
    assert client.post(f"{JOBS}/{job['job_id']}/pause", json={}, headers=viewer).status_code == 403
    assert client.get(f"{JOBS}/00000000-0000-0000-0000-000000000000", headers=viewer).status_code == 404


def test_pause_resume_cancel_and_invalid_moves(client, admin, load, lanes, session_factory):
    load(backlog(20))
    job = create(client, admin, window(max_replays_per_second=2)).get_json()
    job_id = job["job_id"]
    lanes.run(job_id)
    wait_for_state(client, admin, job_id, {"running"})
    paused = client.post(f"{JOBS}/{job_id}/pause", json={"reason": "CRM flapping"}, headers=admin)
    assert paused.status_code == 200 and paused.get_json()["state"] == "paused"
    assert paused.get_json()["state_reason"] == "CRM flapping"
    at_pause = history_count(session_factory, job_id)
    time.sleep(2.5)
    # The replay in flight may finish; nothing starts after the pause was answered.
    assert history_count(session_factory, job_id) <= at_pause + 1
    bad = client.post(f"{JOBS}/{job_id}/pause", json={}, headers=admin)
    assert bad.status_code == 409 and bad.get_json()["error"]["code"] == "invalid_transition"
    resumed = client.post(f"{JOBS}/{job_id}/resume", headers=admin)  # no body at all is {}
    assert resumed.status_code == 200 and resumed.get_json()["state"] == "queued"
    cancelled = client.post(f"{JOBS}/{job_id}/cancel", json={"reason": "done by hand"}, headers=admin)
    assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "cancelled"
    assert cancelled.get_json()["finished_at"]
    assert client.post(f"{JOBS}/{job_id}/resume", json={}, headers=admin).status_code == 409
    assert client.post(f"{JOBS}/{job_id}/cancel", json={}, headers=admin).status_code == 409
    with session_factory() as session, session.begin():
        events = session.execute(
            select(RetryJobEvent.event, RetryJobEvent.actor, RetryJobEvent.reason).order_by(RetryJobEvent.id)
        ).all()
    moves = [(e, a, r) for e, a, r in events if e in ("paused", "resumed", "cancelled")]
    assert moves == [
        ("paused", "api_key:job-admin", "CRM flapping"),
        ("resumed", "api_key:job-admin", None),
        ("cancelled", "api_key:job-admin", "done by hand"),
    ]


def test_the_brake_halts_a_job_replaying_into_a_crm_that_answers_503(
    client, admin, load, lanes, session_factory, webhook_receiver
):
    load(backlog(40, base_url=webhook_receiver.url, steps=STEPS))
    webhook_receiver.respond(503)
    job = create(client, admin, window(max_replays_per_second=100, halt_error_rate=0.2, halt_window=25)).get_json()
    lanes.run(job["job_id"])
    halted = wait_for_state(client, admin, job["job_id"], {"halted", "completed", "failed"})
    assert halted["state"] == "halted"
    # limit floor(0.2 * 25) = 5: the sixth failure of the canary stops it.
    assert halted["state_reason"] == "6 of the last 6 replays failed, limit 5 (20%)"
    lanes.join()
    assert history_count(session_factory, job["job_id"]) == 6
    assert halted["recent_errors"][0]["error"]["type"] == "IntegrationConnectionError"
    assert len(job_of(client, admin, job["job_id"])["recent_errors"]) == 6

    # The CRM is back: resume starts the window afresh and the job finishes.
    webhook_receiver.respond(200, {"id": "crm"})
    assert client.post(f"{JOBS}/{job['job_id']}/resume", json={}, headers=admin).status_code == 200
    lanes.run(job["job_id"])
    done = wait_for_state(client, admin, job["job_id"], {"completed", "halted"})
    assert done["state"] == "completed", done
    progress = done["progress"]
    # The six rows that failed used their single attempt: skipped as retry_limit_reached.
    assert (progress["success"], progress["error"], progress["skipped"]) == (34, 6, 0)


def test_four_lanes_on_one_job_replay_every_row_exactly_once(client, admin, load, lanes, session_factory):
    load(backlog(80))
    job = create(client, admin, window(max_replays_per_second=200)).get_json()
    lanes.run(job["job_id"], 4)
    lanes.join()
    assert job_of(client, admin, job["job_id"])["state"] == "completed"
    with session_factory() as session, session.begin():
        per_row = session.execute(
            select(WorkflowHistory.execution_id, func.count()).group_by(WorkflowHistory.execution_id)
        ).all()
    assert len(per_row) == 80 and {n for _, n in per_row} == {1}


def test_the_pace_holds_over_all_lanes(client, admin, load, lanes):
    load(backlog(9))
    started = time.monotonic()
    job = create(client, admin, window(max_replays_per_second=4)).get_json()
    lanes.run(job["job_id"], 3)
    lanes.join()
    elapsed = time.monotonic() - started
    assert job_of(client, admin, job["job_id"])["state"] == "completed"
    # Nine slots 0.25 s apart: the last one starts 2 s after the first, whatever the lane count.
    assert elapsed >= 2.0


def test_sentry_hears_each_failed_replay_with_the_job_id_and_once_about_the_halt(
    client, admin, load, lanes, webhook_receiver, sentry_events
):
    load(backlog(10, base_url=webhook_receiver.url, steps=STEPS))
    webhook_receiver.respond(503)
    job = create(client, admin, window(max_replays_per_second=100, halt_error_rate=0.2, halt_window=10)).get_json()
    lanes.run(job["job_id"])
    lanes.join()
    assert job_of(client, admin, job["job_id"])["state"] == "halted"
    events = sentry_events.events
    halts = [e for e in events if e.get("tags", {}).get("retry_job") == "halted"]
    failures = [e for e in events if e.get("tags", {}).get("replay") == "failed"]
    assert len(halts) == 1 and halts[0]["tags"]["job_id"] == job["job_id"]
    assert "3 of the last 3 replays failed, limit 2 (20%)" in halts[0]["message"]
    assert len(failures) == 3 and {e["tags"]["job_id"] for e in failures} == {job["job_id"]}


def test_state_changes_are_json_log_lines(client, admin, load, lanes, capsys):
    load(backlog(2))
    job = create(client, admin, window(max_replays_per_second=100)).get_json()
    lanes.run(job["job_id"])
    lanes.join()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    moves = [(line["action"], line["state"]) for line in lines if line.get("event") == "retry_job.state"]
    assert moves == [("created", "queued"), ("started", "running"), ("completed", "completed")]
    assert {line["job_id"] for line in lines if line.get("event") == "retry_job.state"} == {job["job_id"]}


def test_rate_and_eta_count_the_last_minute_of_work_not_the_time_the_job_stood_still(
    client, admin, load, session_factory
):
    load(backlog(40))
    job = create(client, admin, window()).get_json()
    with session_factory() as session, session.begin():
        # Started an hour ago, halted most of that time, resumed: 30 rows in the last 3 seconds.
        session.execute(
            text("UPDATE or_retry_jobs SET state = 'running', started_at = now() - interval '1 hour' WHERE uuid = :u"),
            {"u": job["job_id"]},
        )
        session.execute(
            text(
                "UPDATE or_retry_plan_rows SET outcome = 'success', done_at = now() - interval '3 seconds'"
                " + (n.k * interval '0.1 second')"
                " FROM (SELECT execution_id, row_number() OVER (ORDER BY created_at) AS k FROM or_retry_plan_rows"
                "       WHERE plan_id = (SELECT plan_id FROM or_retry_jobs WHERE uuid = :u)) n"
                " WHERE or_retry_plan_rows.execution_id = n.execution_id AND n.k <= 30"
            ),
            {"u": job["job_id"]},
        )
    running = job_of(client, admin, job["job_id"])
    assert running["progress"]["done"] == 30
    # 30 rows over about 3 seconds: about 10/s (over the last minute it would be 0.5, over the hour 0.01).
    assert running["rate_per_second"] >= 5
    assert running["eta_seconds"] == pytest.approx(10 / running["rate_per_second"], abs=0.2)


# Backends of this test database, other than the asking one, waiting for a lock.
LOCK_WAITERS_SQL = text(
    "SELECT pid FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
)


@pytest.mark.slow
def test_a_lost_connection_between_replays_is_waited_out_not_a_failed_job(client, admin, load, lanes, engine):
    load(backlog(3))
    job_id = create(client, admin, window(max_replays_per_second=1)).get_json()["job_id"]
    lanes.run(job_id)
    deadline = time.monotonic() + 20
    while job_of(client, admin, job_id)["progress"]["done"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = False
    with engine.connect() as holder, engine.connect() as killer:
        # Hold the job's row: the lane's next pace-slot statement waits for it, and dies there.
        holder.execute(text("SELECT 1 FROM or_retry_jobs WHERE uuid = :u FOR UPDATE"), {"u": job_id})
        while not killed and time.monotonic() < deadline:
            for pid in killer.execute(LOCK_WAITERS_SQL).scalars():
                killed = killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
            killer.rollback()
            time.sleep(0.02)
        holder.rollback()
    assert killed, "the lane never waited for the job's row"

    done = wait_for_state(client, admin, job_id, {"completed", "failed"})
    assert done["state"] == "completed", done["state_reason"]
    assert (done["progress"]["success"], done["progress"]["error"]) == (3, 0)
