"""The job engine's tasks (app/job_engine.py). Thin: each one calls a use case.

Every worker imports this module at start (`job_engine.TASK_MODULES`); the periodic ones are
deferred by the workers themselves, once per tick across all of them, on the maintenance queue.
"""

from __future__ import annotations

from procrastinate import JobContext

from app import job_engine
from app.retries.audit_cleanup import close_interrupted_batches

# --------------------------------------------------------------------------- engine upkeep


@job_engine.periodic_task(name="engine.recover_stalled_jobs", cron=job_engine.RECOVERY_CRON)
async def recover_stalled_jobs(context: JobContext, timestamp: int) -> int:
    """Jobs of workers that stopped beating go back to the queue for a live worker."""
    # Async: it only talks to the engine's own tables, through the worker's psycopg 3 pool.
    return len(await job_engine.recover_stalled_jobs(context.app.job_manager))


@job_engine.periodic_task(name="retries.close_interrupted_batches", cron="* * * * *")
def close_interrupted_batch_audits(context: JobContext, timestamp: int) -> int:
    """Audit rows of retry-batch calls whose process died get closed as interrupted."""
    services = job_engine.services(context)
    return close_interrupted_batches(services.session_factory, services.config)
