"""Waiting for a freshly started service process to answer `GET /healthz`.

Used by the service launcher (devtools/service.py) that the tests, the rehearsal and the bench
start gunicorn with: it must tell "ready" from "died at start-up" from "too slow".
"""

from __future__ import annotations

import subprocess
import time

import requests


def wait_healthy(base_url: str, process: subprocess.Popen, timeout: float, interval: float = 0.2) -> str:
    """ "ready" once /healthz answers 200, "exited" if the process ends first, else "timeout"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return "exited"
        try:
            if requests.get(base_url + "/healthz", timeout=2).status_code == 200:
                return "ready"
        except requests.RequestException:
            pass
        time.sleep(interval)
    return "timeout"
