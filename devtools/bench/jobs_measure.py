"""The retry-job measure: one job (POST /api/ramps/executions/retry-jobs) drains the incident
window on N real worker processes (devtools/worker.py, concurrency 1 each), for each N; and the
statements per replay of the job path, counted in-process around one lane on a small job.

The rate of a drain is read from the job's own plan rows: handled rows (any outcome) divided by
the time from the first row's `done_at` to the last one's, so neither the job's creation nor the
workers' start-up nor the poll that sees it finish is counted.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import common
import requests
from statements import StatementRecorder, bench_app

from app.retries.job_schemas import MAX_RATE
from devtools.worker import WorkerProcess, started_together

JOBS_ENDPOINT = "/api/ramps/executions/retry-jobs"
JOB_RATE = int(MAX_RATE)  # the API's maximum pace
FINISHED = ("completed", "cancelled", "failed", "halted")
# Lanes a job gets (app/config.py RETRY_JOB_LANES): at least one per worker of the largest level.
MIN_LANES = 8

_DRAIN_SQL = """
SELECT j.state, j.started_at, j.finished_at,
       count(*) FILTER (WHERE pr.outcome IS NOT NULL) AS handled,
       count(*) FILTER (WHERE pr.outcome IN ('success', 'error')) AS replays,
       min(pr.done_at), max(pr.done_at)
FROM or_retry_jobs j JOIN or_retry_plan_rows pr ON pr.plan_id = j.plan_id
WHERE j.uuid = %s
GROUP BY j.id
"""


def lanes_for(levels: list[int]) -> int:
    return max([MIN_LANES, *levels])


def job_body(window: dict) -> dict:
    return {
        "since": window["since"],
        "until": window["until"],
        "suppress_notifications": True,
        "max_replays_per_second": JOB_RATE,
    }


def settle_jobs(url: str) -> int:
    """Cancel every unfinished job left in the bench database (a run stopped mid-drain), so that
    the next level's workers drain only their own job: the data reset makes its rows ERROR again.
    Their waiting lanes then end at once (the job is not running)."""
    with common.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE or_retry_jobs SET state = 'cancelled', state_reason = 'bench: left over', "
            "finished_at = now(), updated_at = now() "
            "WHERE state IN ('queued', 'running', 'paused', 'halted')"
        )
        conn.commit()
        return cur.rowcount


def drain_rate(url: str, job_id: str) -> dict:
    with common.connect(url) as conn, conn.cursor() as cur:
        cur.execute(_DRAIN_SQL, (job_id,))
        state, started, finished, handled, replays, first, last = cur.fetchone()
    span = (last - first).total_seconds() if first and last else 0.0
    return {
        "state": state,
        "handled": handled,
        "replays": replays,
        "first_to_last_s": round(span, 3),
        "replays_per_s": round(handled / span, 1) if span > 0 else None,
        "started_to_finished_s": round((finished - started).total_seconds(), 3) if started and finished else None,
    }


def run_job(base: str, headers: dict, window: dict, timeout: float) -> dict:
    """Create the job and poll it (once a second) until it finishes; its last view."""
    http = requests.Session()
    http.headers.update(headers)
    t0 = time.perf_counter()
    response = http.post(base + JOBS_ENDPOINT, json=job_body(window), timeout=120)
    create_ms = (time.perf_counter() - t0) * 1000
    if response.status_code != 202:
        raise RuntimeError(f"{JOBS_ENDPOINT} answered {response.status_code}: {response.text[:500]}")
    job = response.json()
    deadline = time.monotonic() + timeout
    while job["state"] not in FINISHED and time.monotonic() < deadline:
        time.sleep(1.0)
        job = http.get(f"{base}{JOBS_ENDPOINT}/{job['job_id']}", timeout=60).json()
    if job["state"] not in FINISHED:
        http.post(f"{base}{JOBS_ENDPOINT}/{job['job_id']}/cancel", json={"reason": "bench: timeout"}, timeout=60)
    job["create_ms"] = round(create_ms, 1)
    return job


def measure_jobs(
    url: str,
    meta: dict,
    base: str,
    headers: dict,
    env: dict,
    levels: list[int],
    timeout: float,
    log_dir: Path,
) -> list[dict]:
    """One job per level, drained by that many workers; the data is reset before each."""
    window = meta["windows"]["incident"]
    out = []
    for workers in levels:
        settle_jobs(url)
        common.reset(url, meta)
        procs = [
            WorkerProcess(url, log_dir / f"worker-{workers}-{i + 1}.log", env=env, name=f"worker-{i + 1}")
            for i in range(workers)
        ]
        with started_together(procs, timeout=120):
            job = run_job(base, headers, window, timeout)
            for proc in procs:
                proc.stop(timeout=30)
        drained = drain_rate(url, job["job_id"])
        progress = job["progress"]
        level = {
            "workers": workers,
            "job_id": job["job_id"],
            "state": job["state"],
            "state_reason": job.get("state_reason"),
            "progress": progress,
            "create_ms": job["create_ms"],
            "pace": JOB_RATE,
            **drained,
        }
        out.append(level)
        print(
            f"  job workers={workers}: {drained['replays_per_s']} rows/s over the drain "
            f"({drained['handled']} handled in {drained['first_to_last_s']}s; {job['state']}: "
            f"success {progress['success']}, error {progress['error']}, skipped {progress['skipped']}, "
            f"remaining {progress['remaining']} of {progress['total']}; created in {job['create_ms']} ms)",
            flush=True,
        )
    settle_jobs(url)
    common.reset(url, meta)
    return out


def measure_job_statements(url: str, meta: dict, key: str, secret: str, rows: int = 25) -> dict:
    """Statements per replay of one lane (app/retries/job_lane.py run_lane) run in-process on a
    job of `rows` hand-picked eligible rows of the incident window, created through the API."""
    from measures import ENDPOINT
    from sqlalchemy import select

    from app.models import RetryJob
    from app.retries.job_lane import run_lane
    from app.retries.jobs import stop_lanes

    settle_jobs(url)
    common.reset(url, meta)
    app = bench_app(url)
    database = app.extensions["onramp_db"]
    client = app.test_client()
    headers = {"Authorization": key, "or-internal-api-auth-secret": secret}
    w = meta["windows"]["incident"]
    preview = client.post(ENDPOINT, json={"since": w["since"], "until": w["until"]}, headers=headers).get_json()
    picked = [e["execution_uuid"] for e in preview["eligible"][:rows]]
    body = {"execution_uuids": picked, "suppress_notifications": True, "max_replays_per_second": JOB_RATE}
    response = client.post(JOBS_ENDPOINT, json=body, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)[:500]
    job_id = response.get_json()["job_id"]
    recorder = StatementRecorder(database.engine)
    ended, statements = recorder.record(
        lambda: run_lane(database.session_factory, app.config["ONRAMP"], uuid.UUID(job_id))
    )
    progress = client.get(f"{JOBS_ENDPOINT}/{job_id}", headers=headers).get_json()["progress"]
    # The job's other lanes wait in the queue for a worker: take them out.
    with database.session_factory() as session, session.begin():
        stop_lanes(session, session.scalar(select(RetryJob).where(RetryJob.uuid == uuid.UUID(job_id))))
    database.dispose()
    common.reset(url, meta)
    replays = progress["success"] + progress["error"]
    return {
        "lane_ended": ended,
        "rows": progress["total"],
        "replays": replays,
        "skipped": progress["skipped"],
        "statements": len(statements),
        "statements_per_replay": round(len(statements) / replays, 1) if replays else None,
    }
