"""Real job-engine workers (`flask --app wsgi worker`) as separate OS processes on the test database.

    with running_workers(database_url, tmp_path, count=2) as (a, b):
        ...                       # defer jobs (job_engine.defer_job) and watch them run
        a.kill()                  # SIGKILL: no cleanup anywhere, like a lost machine
        b.terminate()             # SIGTERM: graceful; b.wait() returns its exit code

The launcher is devtools/worker.py (shared with the rehearsal); this module adds the tests'
environment (`worker_env`) and, by default, the test-only tasks of tests/support/worker_tasks.py.
Each worker logs JSON lines to `<workdir>/<name>.log` (`log_path`, `records()`) and is always
killed on the way out of `running_workers`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from devtools import worker as launcher
from devtools.worker import LANES, wait_for
from tests.support import worker_tasks

__all__ = ["LANES", "WorkerProcess", "running_workers", "wait_for", "worker_env"]


def worker_env(database_url: str, workdir: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Only what the app reads (app/config.py); nothing inherited may point it elsewhere.
    for name in ("SENTRY_DSN", "SMTP_URL", "OIDC_METADATA_URL", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"):
        env.pop(name, None)
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY="worker-test-secret-key-not-for-production",
        ONRAMP_ENV="test",
        ONRAMP_INSTANCE_DIR=str(workdir / "instance"),
        HTTP_TIMEOUT_SECONDS="2",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    return env


class WorkerProcess(launcher.WorkerProcess):
    """devtools.worker.WorkerProcess with the tests' environment, logging to `<workdir>/<name>.log`."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        name: str = "worker",
        concurrency: int = 1,
        queues: Iterable[str] = (),
        task_modules: Iterable[str] = (worker_tasks.MODULE,),
        graceful_timeout: float | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            database_url,
            workdir / f"{name}.log",
            env=worker_env(database_url, workdir, extra_env),
            name=name,
            concurrency=concurrency,
            queues=queues,
            task_modules=task_modules,
            graceful_timeout=graceful_timeout,
        )


@contextlib.contextmanager
def running_workers(database_url: str, workdir: Path, count: int = 1, **options) -> Iterator[list[WorkerProcess]]:
    """Start `count` workers side by side (all ready on entry); kill what is left on exit."""
    workers = [WorkerProcess(database_url, workdir, name=f"worker-{i + 1}", **options) for i in range(count)]
    with launcher.started_together(workers) as started:
        yield started
