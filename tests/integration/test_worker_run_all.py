"""`make run`'s supervisor (app/run_all.py): web server and worker start together, stop together on
Ctrl-C, and if one dies the other is stopped and the supervisor exits non-zero."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from app.config import REPO_ROOT
from devtools.service import free_port
from tests.support.worker import LANES, wait_for, worker_env

# Starts real service or worker processes and stops or kills them (see setup.cfg).
pytestmark = pytest.mark.slow


class Supervisor:
    def __init__(self, database_url, tmp_path):
        self.port = free_port()
        self.log_path = tmp_path / "run_all.log"
        web = f"web={sys.executable} -m gunicorn -c gunicorn.conf.py -b 127.0.0.1:{self.port} wsgi:app"
        worker = f"worker={sys.executable} -m flask --app wsgi worker"
        env = worker_env(database_url, tmp_path, {"WEB_CONCURRENCY": "1"})
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.run_all", web, worker],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def records(self, **match) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and all(record.get(k) == v for k, v in match.items()):
                    out.append(record)
        return out

    def wait_ready(self) -> dict[str, int]:
        def healthy():
            with contextlib.suppress(requests.RequestException):
                return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200

        wait_for(healthy, 40, message="web answering")
        wait_for(lambda: len(self.records(action="start_worker")) >= LANES, 40, message="worker ready")
        (started,) = self.records(event="run_all.started")
        return started["children"]

    def kill(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def output(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_ctrl_c_stops_web_and_worker_gracefully(database_url, engine, tmp_path):
    supervisor = Supervisor(database_url, tmp_path)
    try:
        children = supervisor.wait_ready()
        assert set(children) == {"web", "worker"}
        supervisor.process.send_signal(signal.SIGINT)  # what a Ctrl-C in the terminal delivers
        assert supervisor.process.wait(60) == 0, supervisor.output()
    finally:
        supervisor.kill()
    assert all(_gone(pid) for pid in children.values())
    assert supervisor.records(event="worker.stopped")  # the worker stopped gracefully, not killed
    (stopped,) = supervisor.records(event="run_all.stopped")
    assert stopped["exit_codes"] == {"web": 0, "worker": 0}


def test_a_dead_worker_stops_the_web_server_and_fails(database_url, engine, tmp_path):
    supervisor = Supervisor(database_url, tmp_path)
    try:
        children = supervisor.wait_ready()
        os.kill(children["worker"], signal.SIGKILL)
        started = time.monotonic()
        assert supervisor.process.wait(60) != 0, supervisor.output()
    finally:
        supervisor.kill()
    assert time.monotonic() - started < 60
    assert _gone(children["web"])
    (stopped,) = supervisor.records(event="run_all.stopped")
    assert stopped["exit_codes"] == {"web": 0, "worker": -signal.SIGKILL}
    with contextlib.suppress(requests.RequestException):
        requests.get(f"http://127.0.0.1:{supervisor.port}/healthz", timeout=1)
        raise AssertionError("web server still answering")
