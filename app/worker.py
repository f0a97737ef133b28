"""`flask --app wsgi worker`: one job-engine worker process (procrastinate, app/job_engine.py).

A worker process runs two lanes, each a procrastinate worker with its own heartbeat:
  work         the product's tasks (`--queue`, default job_engine.WORK_QUEUES), `--concurrency`
               jobs at a time, each sync task in its own thread;
  maintenance  the periodic upkeep (stalled-job recovery, audit clean-up), one at a time, so it
               keeps running while every work slot is held by a long drain.

Shutdown: the first SIGTERM or SIGINT stops both lanes from taking new jobs and sets the
`stopping` flag tasks see through `job_engine.should_stop`; the jobs in flight finish (or hand
their job back at their next safe point), then the process exits 0. `--graceful-timeout`
bounds that wait: after it procrastinate asks the remaining jobs to abort. A second signal exits
at once, like a kill: the stalled-job recovery of a live worker then requeues what was running.

If a lane stops on its own (the database went away), both are restarted after a pause, so a
PostgreSQL restart does not take the worker down.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click
from flask import Flask, current_app

from app import job_engine
from app.observability import configure_logging, request_id_context

log = logging.getLogger(__name__)

RESTART_PAUSE_SECONDS = (1, 2, 5, 10, 30)


class _QuietMaintenance(logging.Filter):
    """Keep procrastinate's per-job INFO lines for the maintenance queue (several every few seconds)
    out of the log; the upkeep tasks log themselves when they actually do something."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith("procrastinate"):
            return True
        job = getattr(record, "job", None)
        return not (isinstance(job, dict) and job.get("queue") == job_engine.MAINTENANCE_QUEUE)


def _sync_task_scope(call_next, context, worker):
    # Sync tasks run in a worker thread: give them the Flask app context (code that reads
    # current_app keeps working) and a correlation id for their log lines.
    flask_app = job_engine.services(context).flask_app
    with flask_app.app_context(), request_id_context(f"job-{context.job.id}"):
        return call_next()


async def _async_task_scope(call_next, context, worker):
    with request_id_context(f"job-{context.job.id}"):
        return await call_next()


def _lane_options(
    services: job_engine.WorkerServices,
    *,
    concurrency: int,
    queues: Iterable[str],
    graceful_timeout: float | None,
) -> list[dict[str, Any]]:
    common: dict[str, Any] = dict(
        fetch_job_polling_interval=job_engine.FETCH_POLL_SECONDS,
        abort_job_polling_interval=job_engine.ABORT_POLL_SECONDS,
        update_heartbeat_interval=job_engine.HEARTBEAT_SECONDS,
        stalled_worker_timeout=job_engine.STALLED_AFTER_SECONDS,
        shutdown_graceful_timeout=graceful_timeout,
        additional_context={job_engine.SERVICES_KEY: services},
        install_signal_handlers=False,  # ours, below: one handler for both lanes
        task_middleware=[_sync_task_scope, _async_task_scope],
    )
    return [
        dict(common, name="work", queues=list(queues), concurrency=concurrency),
        # Upkeep jobs leave no rows behind when they succeed (one every few seconds).
        dict(
            common, name="maintenance", queues=[job_engine.MAINTENANCE_QUEUE], concurrency=1, delete_jobs="successful"
        ),
    ]


async def _serve(flask_app: Flask, lanes: list[dict[str, Any]], stop: asyncio.Event, concurrency: int) -> int:
    database = flask_app.extensions["onramp_db"]
    config = flask_app.config["ONRAMP"]
    loop = asyncio.get_running_loop()
    # procrastinate runs sync tasks on the loop's default executor: size it to the lanes' slots.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=concurrency + 2, thread_name_prefix="onramp-job"))
    connector = job_engine.worker_connector(database, config, pool_size=concurrency + 6)
    with job_engine.job_app.replace_connector(connector) as app:
        async with app.open_async():
            restarts = 0
            while True:
                runs = [asyncio.create_task(app.run_worker_async(**options)) for options in lanes]
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait([*runs, stopped], return_when=asyncio.FIRST_COMPLETED)
                # Cancelling a procrastinate worker is its graceful stop: no new jobs, wait for
                # the running ones.
                for run in runs:
                    run.cancel()
                outcomes = await asyncio.gather(*runs, return_exceptions=True)
                stopped.cancel()
                if stop.is_set():
                    return 0
                errors = [
                    o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, asyncio.CancelledError)
                ]
                pause = RESTART_PAUSE_SECONDS[min(restarts, len(RESTART_PAUSE_SECONDS) - 1)]
                log.error(
                    "worker lane stopped; restarting in %ss",
                    pause,
                    exc_info=errors[0] if errors else None,
                    extra={"event": "worker.lane_failed", "restart_in": pause},
                )
                restarts += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                if stop.is_set():
                    return 0


def run_worker(
    flask_app: Flask,
    *,
    concurrency: int = 1,
    queues: Iterable[str] | None = None,
    graceful_timeout: float | None = None,
    task_modules: Iterable[str] = (),
) -> int:
    """Run one worker until SIGTERM/SIGINT; returns the process exit code."""
    configure_logging().addFilter(_QuietMaintenance())
    for module in task_modules:
        importlib.import_module(module)
    job_engine.job_app.perform_import_paths()
    services = job_engine.WorkerServices(
        config=flask_app.config["ONRAMP"],
        database=flask_app.extensions["onramp_db"],
        flask_app=flask_app,
        stopping=threading.Event(),
    )
    queues = list(queues or job_engine.WORK_QUEUES)
    lanes = _lane_options(services, concurrency=concurrency, queues=queues, graceful_timeout=graceful_timeout)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            name = signal.Signals(signum).name
            if services.stopping.is_set():
                log.warning("%s again: exiting now", name, extra={"event": "worker.killed"})
                os._exit(128 + signum)
            log.info("%s: finishing the jobs in flight, taking no new ones", name, extra={"event": "worker.stopping"})
            services.stopping.set()
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        log.info(
            "worker started",
            extra={
                "event": "worker.started",
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "concurrency": concurrency,
                "queues": queues,
                "tasks": sorted(job_engine.job_app.tasks),
            },
        )
        code = await _serve(flask_app, lanes, stop, concurrency)
        log.info("worker stopped", extra={"event": "worker.stopped", "pid": os.getpid()})
        return code

    return asyncio.run(main())


@click.command("worker")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True, help="Jobs run at once.")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help=f"Queue to serve (repeatable; default: {', '.join(job_engine.WORK_QUEUES)}).",
)
@click.option(
    "--graceful-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="On SIGTERM, seconds to wait for jobs in flight before asking them to abort (default: wait).",
)
@click.option(
    "--tasks-module",
    "task_modules",
    multiple=True,
    help="Also import this module's tasks (repeatable).",
)
def worker_command(queues, concurrency, graceful_timeout, task_modules) -> None:
    """Run a job-engine worker until SIGTERM or Ctrl-C."""
    raise SystemExit(
        run_worker(
            current_app._get_current_object(),
            concurrency=concurrency,
            queues=queues,
            graceful_timeout=graceful_timeout,
            task_modules=task_modules,
        )
    )
