"""Tasks for the worker tests only: a worker registers them when started with
`--tasks-module tests.support.worker_tasks` (tests/support/worker.py does that by default).

Each writes what it does as JSON lines to a file named in its kwargs (`journal`), so a test can
see which worker process ran which job, when, and how it ended.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from app import job_engine

MODULE = __name__


def _note(journal: str, context, event: str, **fields) -> None:
    line = {"event": event, "pid": os.getpid(), "job_id": context.job.id, "at": time.time(), **fields}
    with open(journal, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def read_journal(journal: str | Path) -> list[dict]:
    try:
        text = Path(journal).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@job_engine.task(name="tests.sleep")
def sleep(context, journal: str, seconds: float, label: str = "") -> None:
    """Runs for `seconds` whatever happens around it (a stand-in for one replay in flight)."""
    _note(journal, context, "start", label=label, attempts=context.job.attempts)
    time.sleep(seconds)
    _note(journal, context, "finish", label=label)


@job_engine.task(name="tests.until_stopped")
def until_stopped(context, journal: str, label: str = "") -> None:
    """A long drain: works until asked to stop; hands its job back on shutdown, ends on abort."""
    _note(journal, context, "start", label=label, attempts=context.job.attempts)
    while True:
        if context.should_abort():
            _note(journal, context, "aborted", label=label)
            raise job_engine.JobAborted()
        if job_engine.should_stop(context):
            _note(journal, context, "handback", label=label)
            raise job_engine.HandBack()
        time.sleep(0.05)


@job_engine.task(name="tests.whoami")
def whoami(context, journal: str) -> None:
    """Records what a task can reach: the worker's config and a working session factory."""
    services = job_engine.services(context)
    from sqlalchemy import text

    with services.session_factory() as session, session.begin():
        database = session.execute(text("SELECT current_database()")).scalar()
    from flask import current_app

    _note(
        journal,
        context,
        "whoami",
        environment=services.config.environment,
        database=database,
        flask_app=current_app.name,
    )


@job_engine.task(name="tests.chain")
def chain(context, journal: str, label: str) -> None:
    """Defers a follow-up job from inside a worker, in a transaction of the task's own."""
    services = job_engine.services(context)
    with services.session_factory() as session, session.begin():
        follow_up = job_engine.defer_job(session, sleep, task_kwargs={"journal": journal, "seconds": 0, "label": label})
    _note(journal, context, "deferred", follow_up=follow_up)
