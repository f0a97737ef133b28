"""The job engine's tasks (app/job_engine.py). Thin: each one calls a use case.

Every worker imports this module at start (`job_engine.TASK_MODULES`); the periodic ones are
deferred by the workers themselves, once per tick across all of them, on the maintenance queue.
"""

from __future__ import annotations

import uuid

from procrastinate import JobContext

from app import job_engine
from app.retries.audit_cleanup import close_interrupted_batches
from app.retries.job_lane import run_lane
from app.retries.jobs import LANE_TASK, keep_jobs_running
from app.retries.plan_expiry import expire_plans

# --------------------------------------------------------------------------- retry jobs


@job_engine.task(name=LANE_TASK)
def run_job_lane(context: JobContext, job_id: str, lane: int) -> str:
    """One lane of a retry job (app/retries/job_lane.py); several may run one job at once."""
    services = job_engine.services(context)
    ended = run_lane(
        services.session_factory,
        services.config,
        uuid.UUID(job_id),
        should_abort=lambda: job_engine.should_stop(context),
    )
    if ended == "aborted" and not context.should_abort():
        # The worker is shutting down, not the job: hand the lane to another worker.
        raise job_engine.HandBack()
    return ended


@job_engine.periodic_task(name="retries.keep_jobs_running", cron="* * * * * */10")
def keep_retry_jobs_running(context: JobContext, timestamp: int) -> int:
    """Queued and running jobs get their lanes back where none waits or runs."""
    services = job_engine.services(context)
    return keep_jobs_running(services.session_factory, services.config)


@job_engine.periodic_task(name="retries.expire_plans", cron="*/10 * * * *")
def expire_retry_plans(context: JobContext, timestamp: int) -> int:
    """Plans older than 24 hours go, except those a retry job runs on."""
    return expire_plans(job_engine.services(context).session_factory)


# --------------------------------------------------------------------------- engine upkeep


@job_engine.periodic_task(name="engine.recover_stalled_jobs", cron=job_engine.RECOVERY_CRON)
async def recover_stalled_jobs(context: JobContext, timestamp: int) -> int:
    """Jobs of workers that stopped beating go back to the queue for a live worker."""
    # Async: it only talks to the engine's own tables, through the worker's psycopg 3 pool.
    return len(await job_engine.recover_stalled_jobs(context.app.job_manager))


@job_engine.periodic_task(name="engine.delete_finished_jobs", cron="17 * * * *")
async def delete_finished_engine_jobs(context: JobContext, timestamp: int) -> None:
    """The engine's own rows of jobs that ended a week ago go, so its tables do not grow forever."""
    await job_engine.delete_finished_jobs(context.app.job_manager)


@job_engine.periodic_task(name="retries.close_interrupted_batches", cron="* * * * *")
def close_interrupted_batch_audits(context: JobContext, timestamp: int) -> int:
    """Audit rows of retry-batch calls whose process died get closed as interrupted."""
    services = job_engine.services(context)
    return close_interrupted_batches(services.session_factory, services.config)
