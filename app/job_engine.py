"""The job engine: procrastinate, with its queue in the service's own PostgreSQL database.

Two sides, one task registry (`job_app`):

- Deferring (web process, use cases, tasks themselves): `defer_job(session, task, ...)` inserts the
  job through the caller's own SQLAlchemy transaction (psycopg2), so a job row of ours and the
  engine job that will work on it commit or roll back together. `abort_job` and `job_status`
  work the same way. Nothing outside this module touches procrastinate's connectors.
- Working (`flask --app wsgi worker`, app/worker.py): the same `job_app` with a psycopg 3 pool
  swapped in (`replace_connector`), built from the same database URL by `worker_connector`.
  Tasks get the service's `Config` and `Database` from their job context: `services(context)`.

Queues: the tasks of the product go to `DEFAULT_QUEUE`; the engine's own periodic upkeep goes to
`MAINTENANCE_QUEUE`, served by a separate lane of every worker so that it runs even while all the
work slots are held by long drains.

Stalled jobs: every worker beats every `HEARTBEAT_SECONDS`; a job whose worker has not beaten for
`STALLED_AFTER_SECONDS` (the worker was killed, its machine died) is put back in the queue by the
periodic `recover_stalled_jobs` (app/retries/tasks.py), and a live worker picks it up at its next
poll. A job can therefore run again after a crash: tasks must be safe to re-run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from procrastinate import App, JobContext, exceptions, jobs, retry
from procrastinate.contrib.sqlalchemy import SQLAlchemyPsycopg2Connector
from procrastinate.manager import JobManager
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.config import Config
from app.db import Database

if TYPE_CHECKING:
    from flask import Flask
    from procrastinate.psycopg_connector import PsycopgConnector
    from procrastinate.tasks import Task

log = logging.getLogger(__name__)
# It announces every task it registers, in every process that imports this module.
logging.getLogger("procrastinate.blueprints").setLevel(logging.WARNING)

DEFAULT_QUEUE = jobs.DEFAULT_QUEUE
MAINTENANCE_QUEUE = "maintenance"
# The queues a worker's work lane serves unless told otherwise (`--queue`).
WORK_QUEUES: tuple[str, ...] = (DEFAULT_QUEUE,)
# Modules whose import registers the service's tasks (the worker imports them at start).
TASK_MODULES: tuple[str, ...] = ("app.retries.tasks", "app.auth.tasks")

# Liveness: with these figures a killed worker's job is back in the queue within about
# STALLED_AFTER + the recovery period, and picked up within FETCH_POLL after that.
HEARTBEAT_SECONDS = 5.0
STALLED_AFTER_SECONDS = 30.0
RECOVERY_CRON = "* * * * * */5"  # every 5 seconds (6th field: seconds)
# Finished engine jobs (our own job, plan and history rows are elsewhere and stay) are kept this
# long for diagnosis, then deleted with their events by the periodic `delete_finished_jobs`.
FINISHED_JOB_RETENTION_HOURS = 7 * 24
FETCH_POLL_SECONDS = 2.0  # a retried job sends no notification: polling is how it is found
ABORT_POLL_SECONDS = 1.0  # fallback when the abort notification is missed

job_app = App(connector=SQLAlchemyPsycopg2Connector(), import_paths=list(TASK_MODULES))

# Deferring always runs on the caller's connection, so this connector never needs an engine of
# its own, and it stays the deferring one inside a worker (where job_app's is psycopg 3).
_on_callers_connection = JobManager(connector=SQLAlchemyPsycopg2Connector())


class AlreadyQueued(Exception):
    """A job with this queueing lock is already waiting; nothing was deferred."""

    def __init__(self, queueing_lock: str | None) -> None:
        super().__init__(f"a job with queueing lock {queueing_lock!r} is already waiting")
        self.queueing_lock = queueing_lock


# Raise from a task that saw `context.should_abort()`: the job ends as `aborted`.
JobAborted = exceptions.JobAborted


class HandBack(Exception):
    """Raise from a task to put its job back in the queue at once (same job id), e.g. when the
    worker is shutting down: another worker, or this one after a restart, carries it on."""


class _HandBackRetry(retry.BaseRetryStrategy):
    # Only HandBack is retried (immediately, any number of times); every other error fails the
    # job: a task's own failures are the use case's business, recorded in our tables.
    def get_retry_decision(self, *, exception: BaseException, job: jobs.Job) -> retry.RetryDecision | None:
        if isinstance(exception, HandBack):
            return retry.RetryDecision(retry_in={"seconds": 0})
        return None


# --------------------------------------------------------------------------- defining tasks


def task(
    *, name: str, queue: str = DEFAULT_QUEUE, lock: str | None = None, queueing_lock: str | None = None
) -> Callable[[Callable[..., Any]], Task]:
    """Decorator for a service task: `def my_task(context, **kwargs)`.

    The task receives its `JobContext` first (`services(context)`, `should_stop(context)`,
    `context.should_abort()`, `context.job.id`); its kwargs are JSON values. Sync tasks run in
    worker threads. `lock` / `queueing_lock` given here are defaults that `defer_job` overrides.
    """
    return job_app.task(
        name=name, queue=queue, lock=lock, queueing_lock=queueing_lock, pass_context=True, retry=_HandBackRetry()
    )


def periodic_task(*, name: str, cron: str) -> Callable[[Callable[..., Any]], Task]:
    """Decorator for engine upkeep run on a schedule: `def t(context, timestamp)`.

    `cron` takes an optional 6th field for seconds. Each tick is deferred once across all workers;
    the queueing lock keeps ticks from piling up while one is still waiting.
    """

    def decorate(func: Callable[..., Any]) -> Task:
        registered = job_app.task(name=name, queue=MAINTENANCE_QUEUE, pass_context=True)(func)
        return job_app.periodic(cron=cron, periodic_id=name, queueing_lock=name)(registered)

    return decorate


# --------------------------------------------------------------------------- what tasks get


@dataclass(frozen=True)
class WorkerServices:
    """Built once per worker process (app/worker.py) and handed to every job it runs."""

    config: Config
    database: Database
    flask_app: Flask
    # Set on SIGTERM/SIGINT: long tasks stop at their next safe point and `raise HandBack()`.
    stopping: threading.Event

    @property
    def session_factory(self):
        return self.database.session_factory


SERVICES_KEY = "onramp"


def services(context: JobContext) -> WorkerServices:
    return context.additional_context[SERVICES_KEY]


def should_stop(context: JobContext) -> bool:
    """True once the worker is shutting down or the job was aborted (`abort_job`)."""
    return services(context).stopping.is_set() or context.should_abort()


# --------------------------------------------------------------------------- deferring


def _connection(session: Session | Connection) -> Connection:
    if isinstance(session, Session):
        # With autobegin off this raises outside `with session.begin():`, as it should: the job
        # must commit with the caller's unit of work.
        return session.connection()
    if not session.in_transaction():
        raise RuntimeError("defer_job needs a connection inside a transaction")
    return session


def defer_job(
    session: Session | Connection,
    task: Task | str,
    *,
    task_kwargs: Mapping[str, Any] | None = None,
    lock: str | None = None,
    queueing_lock: str | None = None,
    queue: str | None = None,
    priority: int | None = None,
    schedule_in_seconds: float | None = None,
) -> int:
    """Insert a job for `task` in the caller's open transaction; returns the engine's job id.

    The job becomes visible to workers when the caller commits (and vanishes if it rolls back).
    `lock`: no two jobs with this lock run at the same time. `queueing_lock`: at most one job
    with it waits in the queue; a second one raises `AlreadyQueued` and leaves the caller's
    transaction usable (the insert runs in a savepoint).
    """
    if isinstance(task, str):
        job_app.perform_import_paths()
        try:
            task = job_app.tasks[task]
        except KeyError:
            raise ValueError(f"unknown task {task!r}") from None
    deferrer = task.configure(
        task_kwargs=dict(task_kwargs or {}),
        lock=lock,
        queueing_lock=queueing_lock,
        queue=queue,
        priority=priority,
        schedule_in={"seconds": schedule_in_seconds} if schedule_in_seconds is not None else None,
    )
    connection = _connection(session)
    savepoint = session.begin_nested() if isinstance(session, Session) else connection.begin_nested()
    try:
        with savepoint:
            # Asked for again inside the savepoint: that is when the session emits SAVEPOINT.
            connection = _connection(session)
            job = _on_callers_connection.defer_job(deferrer.job, connection=connection)
    except exceptions.AlreadyEnqueued as exc:
        raise AlreadyQueued(deferrer.job.queueing_lock) from exc
    assert job.id is not None
    return job.id


def abort_job(session: Session | Connection, job_id: int) -> bool:
    """Cancel a waiting job, or ask a running one to stop (its task sees `should_stop`).

    Takes effect when the caller commits. False when the job is unknown or already finished.
    """
    return _on_callers_connection.cancel_job_by_id(job_id, abort=True, connection=_connection(session))


def job_status(session: Session | Connection, job_id: int) -> str | None:
    """todo | doing | succeeded | failed | cancelled | aborted, or None for an unknown job."""
    return (
        _connection(session)
        .execute(text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"), {"id": job_id})
        .scalar()
    )


def active_jobs(session: Session | Connection, lock_prefix: str) -> list[tuple[str, int]]:
    """Waiting or running jobs whose lock starts with `lock_prefix`: (lock, engine job id)."""
    rows = _connection(session).execute(
        text(
            "SELECT lock, id FROM procrastinate_jobs"
            " WHERE status IN ('todo', 'doing') AND starts_with(lock, :prefix) ORDER BY id"
        ),
        {"prefix": lock_prefix},
    )
    return [(row.lock, row.id) for row in rows]


# --------------------------------------------------------------------------- worker side


def worker_conninfo(database_url: str) -> str:
    """The service's SQLAlchemy URL as a libpq conninfo string for psycopg 3."""
    from psycopg.conninfo import make_conninfo

    url = make_url(database_url)
    params: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
    }
    params.update({key: value for key, value in url.query.items() if isinstance(value, str)})
    return make_conninfo(**{key: value for key, value in params.items() if value is not None})


def worker_connector(database: Database, config: Config, *, pool_size: int) -> PsycopgConnector:
    """psycopg 3 pool for the worker loop, with the same server-side guards as the app's engine."""
    from procrastinate import PsycopgConnector

    options = " ".join(
        [
            f"-c lock_timeout={config.lock_timeout_ms}",
            f"-c statement_timeout={config.statement_timeout_ms}",
            "-c timezone=UTC",
        ]
    )
    return PsycopgConnector(
        conninfo=worker_conninfo(database.engine.url.render_as_string(hide_password=False)),
        min_size=1,
        max_size=pool_size,
        kwargs={"options": options, "application_name": "onramp-worker"},
    )


async def recover_stalled_jobs(job_manager: JobManager, *, stalled_after: float = STALLED_AFTER_SECONDS) -> list[int]:
    """Put the running jobs of dead workers back in the queue; returns their ids.

    A job whose worker was asked to abort it is failed instead (procrastinate's retry does that by
    itself). A job whose queueing lock is now held by a waiting job is failed too: that waiting
    job will do its work.
    """
    retried = []
    for job in await job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
        assert job.id is not None
        fields = {
            "event": "job_engine.stalled_job",
            "job_id": job.id,
            "task": job.task_name,
            "worker_id": job.worker_id,
        }
        try:
            await job_manager.retry_job(job)
        except exceptions.UniqueViolation:
            await job_manager.finish_job(job, status=jobs.Status.FAILED, delete_job=False)
            log.warning("stalled job %s superseded by a waiting one", job.id, extra=fields)
            continue
        except exceptions.ConnectorException:
            # Another worker's recovery got there first: the job is no longer running.
            log.info("stalled job %s already recovered", job.id, extra=fields)
            continue
        retried.append(job.id)
        log.warning("job %s of a dead worker put back in the queue", job.id, extra=fields)
    await job_manager.prune_stalled_workers(stalled_after)
    return retried


async def delete_finished_jobs(
    job_manager: JobManager, *, older_than_hours: int = FINISHED_JOB_RETENTION_HOURS
) -> None:
    """Delete the engine's jobs (and their events) that ended, in any final state, longer ago than
    `older_than_hours`. Jobs still waiting or running are never touched."""
    await job_manager.delete_old_jobs(
        nb_hours=older_than_hours, include_failed=True, include_cancelled=True, include_aborted=True
    )
