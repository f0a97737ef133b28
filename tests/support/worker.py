"""Real job-engine workers (`flask --app wsgi worker`) as separate OS processes on the test database.

    with running_workers(database_url, tmp_path, count=2) as (a, b):
        ...                       # defer jobs (job_engine.defer_job) and watch them run
        a.kill()                  # SIGKILL: no cleanup anywhere, like a lost machine
        b.terminate()             # SIGTERM: graceful; b.wait() returns its exit code

Each worker runs in its own session (process group = its pid), logs JSON lines to its own file
(`log_path`, `records()`), and is always killed on the way out of `running_workers`. By default it
also imports the test-only tasks of tests/support/worker_tasks.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from app.config import REPO_ROOT
from tests.support import worker_tasks

LANES = 2  # app/worker.py: the work lane and the maintenance lane


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


class WorkerProcess:
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
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.command = [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--concurrency", str(concurrency)]
        for queue in queues:
            self.command += ["--queue", queue]
        for module in task_modules:
            self.command += ["--tasks-module", module]
        if graceful_timeout is not None:
            self.command += ["--graceful-timeout", str(graceful_timeout)]
        self._env = worker_env(database_url, workdir, extra_env)
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "worker not started"
        return self.process.pid

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        """Start and wait until both lanes have registered and are fetching jobs."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> WorkerProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 30.0) -> WorkerProcess:
        assert self.process is not None, "worker not launched"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited at start-up ({self.process.returncode}):\n{self.output()}")
            if len(self.records(action="start_worker")) >= LANES:
                return self
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"{self.name} not ready within {timeout:g}s:\n{self.output()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, signum: int) -> None:
        if self.process is not None and self.process.returncode is None:  # never signal a reaped pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)

    def terminate(self) -> None:
        self.send(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> int | None:
        """SIGKILL the whole process group (no cleanup code runs); returns the exit code."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def records(self, **match) -> list[dict]:
        """The JSON log lines written so far (those with every `key=value` of `match`)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and all(record.get(k) == v for k, v in match.items()):
                out.append(record)
        return out

    def output(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"


@contextlib.contextmanager
def running_workers(database_url: str, workdir: Path, count: int = 1, **options) -> Iterator[list[WorkerProcess]]:
    """Start `count` workers side by side (all ready on entry); kill what is left on exit."""
    workers = [WorkerProcess(database_url, workdir, name=f"worker-{i + 1}", **options) for i in range(count)]
    try:
        for worker in workers:
            worker.launch()
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.kill()


def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout:g}s")
        time.sleep(interval)
