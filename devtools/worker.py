"""Real job-engine workers (`flask --app wsgi worker`) as separate OS processes.

    worker = WorkerProcess(database_url, log_path, env=env, concurrency=2).start()
    ...                          # the worker takes jobs from the database's queue
    worker.kill()                # SIGKILL: no cleanup anywhere, like a lost machine
    worker.stop()                # SIGTERM (graceful), SIGKILL if it is not gone in time

One launcher for the tests (tests/support/worker.py wraps it with their environment and test
tasks) and the rehearsal, beside devtools/service.py's gunicorn launcher. Each worker runs in its
own session (process group = its pid), so a signal reaches it and nothing else; its output (JSON
log lines) goes to `log_path`. `start()` returns once both of its lanes (work and maintenance,
app/worker.py) have registered and fetch jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from app.config import REPO_ROOT

LANES = 2  # app/worker.py: the work lane and the maintenance lane


class WorkerStartError(AssertionError):
    """The worker exited at start-up or was not ready in time (message: its output)."""


class WorkerProcess:
    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        name: str = "worker",
        concurrency: int = 1,
        queues: Iterable[str] = (),
        task_modules: Iterable[str] = (),
        graceful_timeout: float | None = None,
    ) -> None:
        """`env`: the environment to start from (default: this process's), minus SENTRY_DSN (a
        devtools run never reports to a real Sentry); DATABASE_URL is always `database_url`."""
        self.name = name
        self.log_path = Path(log_path)
        self.command = [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--concurrency", str(concurrency)]
        for queue in queues:
            self.command += ["--queue", queue]
        for module in task_modules:
            self.command += ["--tasks-module", module]
        if graceful_timeout is not None:
            self.command += ["--graceful-timeout", str(graceful_timeout)]
        environment = {k: v for k, v in (os.environ if env is None else env).items() if k != "SENTRY_DSN"}
        environment.update(DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
        self.env = environment
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "worker not started"
        return self.process.pid

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        """Start and wait until both lanes have registered and are fetching jobs."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> WorkerProcess:
        """Start the process without waiting (to start several side by side, then `wait_ready`)."""
        if self.process is not None:
            raise RuntimeError("this worker was started already; make a new WorkerProcess")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=self.env,
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
                raise WorkerStartError(f"{self.name} exited at start-up ({self.process.returncode}):\n{self.output()}")
            if len(self.records(action="start_worker")) >= LANES:
                return self
            time.sleep(0.1)
        self.kill()
        raise WorkerStartError(f"{self.name} not ready within {timeout:g}s:\n{self.output()}")

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
def started_together(workers: list[WorkerProcess], timeout: float = 30.0) -> Iterator[list[WorkerProcess]]:
    """Launch the workers side by side, wait until all are ready; kill what is left on exit."""
    try:
        for worker in workers:
            worker.launch()
        for worker in workers:
            worker.wait_ready(timeout)
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
