"""The real service as a separate OS process (gunicorn serving wsgi:app) against the test database.

    with running_service(database_url, tmp_path) as service:
        requests.post(service.url + URL, json=..., headers=...)
        service.kill()                    # SIGKILL to the whole process group: master and worker

Used by the process-level reliability tests: crashes and scale-out cannot be shown in-process.
The process runs in its own session (start_new_session=True), so its pid is also its process group
id and a kill reaches the gunicorn worker too; `running_service` always kills what it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from app.config import REPO_ROOT
from devtools.health import wait_healthy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        threads: int = 4,
        http_timeout_seconds: float = 5.0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"service-{self.port}.log"
        self._threads = threads
        env = dict(os.environ)
        # Only what the app reads (app/config.py); nothing inherited may point it elsewhere.
        for name in ("SENTRY_DSN", "SMTP_URL", "OIDC_METADATA_URL", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"):
            env.pop(name, None)
        env.update(
            DATABASE_URL=database_url,
            SECRET_KEY="process-test-secret-key-not-for-production",
            ONRAMP_ENV="test",
            ONRAMP_INSTANCE_DIR=str(workdir / "instance"),
            HTTP_TIMEOUT_SECONDS=str(http_timeout_seconds),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env or {})
        self._env = env
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "service not started"
        return self.process.pid

    def start(self, timeout: float = 20.0) -> ServiceProcess:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "--threads",
            str(self._threads),
            "-b",
            f"127.0.0.1:{self.port}",
            "--timeout",
            "60",
            "--graceful-timeout",
            "2",
            "wsgi:app",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        state = wait_healthy(self.url, self.process, timeout, interval=0.1)
        if state == "ready":
            return self
        if state == "exited":
            raise AssertionError(f"service exited at start-up ({self.process.returncode}):\n{self.output()}")
        self.kill()
        raise AssertionError(f"service did not answer /healthz within {timeout:g}s:\n{self.output()}")

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

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the group), SIGKILL if it does not go within a few seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            # The gunicorn master exits only after its worker has.
            self.process.wait(8)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"


@contextlib.contextmanager
def running_service(database_url: str, workdir: Path, **options) -> Iterator[ServiceProcess]:
    """Start the service and always stop it (killing its process group) on the way out."""
    service = ServiceProcess(database_url, workdir, **options)
    try:
        yield service.start()
    finally:
        service.stop()
