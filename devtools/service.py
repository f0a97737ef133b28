"""The real service as a separate OS process: gunicorn serving `wsgi:app` against a database.

    with ServiceProcess(database_url, log_path, workers=1) as service:
        requests.get(service.url + "/healthz")
        service.kill()            # SIGKILL to the whole process group: master and workers

One launcher for the tests' process-level tests, the rehearsal and the bench. gunicorn's settings
are the repository's gunicorn.conf.py (as for `make run`); the launcher adds its own `-b` on a
free 127.0.0.1 port and only the overrides a caller asks for (workers, threads, timeouts).
gunicorn runs in its own session (start_new_session=True), so its pid is also its process group
id and a signal to the group reaches every worker; nothing but that group is ever signalled.
Output (gunicorn's and the app's JSON log lines) goes to `log_path`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from app.config import REPO_ROOT
from devtools.health import wait_healthy

GUNICORN_CONF = REPO_ROOT / "gunicorn.conf.py"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceStartError(RuntimeError):
    """The service exited at start-up or did not answer /healthz in time (message: the log tail)."""


class ServiceProcess:
    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        workers: int | None = None,
        threads: int | None = None,
        timeout: int | None = None,
        graceful_timeout: int | None = None,
    ) -> None:
        """`env`: the environment to start from (default: this process's), minus SENTRY_DSN
        (a devtools run never reports to a real Sentry); DATABASE_URL is always `database_url`,
        and SECRET_KEY a fresh random one unless `env` sets it."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        environment = {k: v for k, v in (os.environ if env is None else env).items() if k != "SENTRY_DSN"}
        environment.setdefault("SECRET_KEY", secrets.token_hex(32))
        environment.update(DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
        self.env = environment
        # No control socket: every gunicorn would bind the same path in the user's home, and the
        # processes a test or a rehearsal starts side by side would take it from each other.
        self.command = [
            *(sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)),
            *("-b", f"127.0.0.1:{self.port}", "--no-control-socket"),
        ]
        for flag, value in (
            ("--workers", workers),
            ("--threads", threads),
            ("--timeout", timeout),
            ("--graceful-timeout", graceful_timeout),
        ):
            if value is not None:
                self.command += [flag, str(value)]
        self.command.append("wsgi:app")
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "service not started"
        return self.process.pid

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        """Start gunicorn and wait until /healthz answers 200; ServiceStartError otherwise."""
        if self.process is not None:
            raise RuntimeError("this service was started already; make a new ServiceProcess")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        state = wait_healthy(self.url, self.process, timeout, interval=0.1)
        if state == "ready":
            return self
        if state == "exited":
            raise ServiceStartError(f"the service exited at start-up ({self.process.returncode}):\n{self.log_tail()}")
        self.kill()
        raise ServiceStartError(f"the service did not answer /healthz within {timeout:g}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> int | None:
        """SIGKILL the whole process group (no cleanup code runs anywhere); returns the exit code."""
        if self.process is None:
            return None
        if self.process.returncode is None:  # never signal a pid we have already reaped
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(10)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group (gunicorn stops its workers), SIGKILL if it is not gone in `grace` s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)  # the master exits only after its workers have
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_lines(self) -> list[dict]:
        """The JSON lines of the log (the app's records; gunicorn's own lines are plain text)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def __enter__(self) -> ServiceProcess:
        # `with ServiceProcess(...) as s:` starts it; `with service.start(timeout=...):` already has.
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
