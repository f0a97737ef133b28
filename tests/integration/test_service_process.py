"""The service launcher (devtools/service.py) that the process-level tests, the rehearsal and the
bench share: it serves with the repository's gunicorn.conf.py, and stopping it leaves no process
behind."""

from __future__ import annotations

import time

import psutil
import pytest
import requests

# Starts real service or worker processes and stops or kills them (see setup.cfg).
pytestmark = pytest.mark.slow


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_serves_with_the_repo_config_and_stops_master_and_workers(service_process):
    with service_process("launcher", workers=2) as service:
        assert requests.get(service.url + "/healthz", timeout=5).json() == {"status": "ok", "database": "ok"}
        assert requests.get(service.url + "/api/openapi.json", timeout=5).status_code == 200
        workers = [p.pid for p in psutil.Process(service.pid).children(recursive=True)]
        assert len(workers) == 2
        # The access log (the app's own JSON line, gunicorn.conf.py) goes to the log file.
        access = [line for line in service.log_lines() if line.get("logger") == "app.request"]
        assert [(line["method"], line["path"], line["status"]) for line in access] == [
            ("GET", "/api/openapi.json", 200)
        ]
        with pytest.raises(RuntimeError, match="started already"):
            service.start()
    assert service.process.returncode == 0  # a clean shutdown on SIGTERM
    assert all(_gone(pid) for pid in [service.pid, *workers])


def test_kill_takes_the_whole_process_group(service_process):
    with service_process("killed") as service:
        [worker] = psutil.Process(service.pid).children(recursive=True)
        assert service.kill() == -9
        deadline = time.monotonic() + 5  # the orphaned worker is reaped by init
        while not _gone(worker.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(worker.pid) and not service.alive()
