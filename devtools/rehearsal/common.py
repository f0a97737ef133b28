"""Paths and fixed names shared by the rehearsal's parts."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from app.config import REPO_ROOT

SCENARIOS_DIR = REPO_ROOT / "devtools" / "scenarios"
RUNBOOKS_DIR = REPO_ROOT / "runbooks"
VENV_BIN = Path(sys.executable).parent
SCENARIO_CRM_URL = "http://127.0.0.1:9300"  # what make_incidents.py writes into the scenarios
# URLs a runbook may print for the service; all of them mean "the service under rehearsal".
SERVICE_URLS = ("https://app.onramp.us", "http://127.0.0.1:8000", "http://localhost:8000")
API_PATH = "/api/ramps/executions"
RETRY_PATH = f"{API_PATH}/retry-batch"
JOBS_PATH = f"{API_PATH}/retry-jobs"
SUMMARY_PATH = f"{API_PATH}/error-summary"
BATCH_CAP = 25
# Paces the rehearsal's jobs run at (the runbook's examples are production paces).
REGRESSION_PACE = 100.0
OUTAGE_PACE = 50.0
GENTLE_PACE = 10.0  # a job started carefully, to be paused, resumed and cancelled while it runs
WORKERS = 2  # `flask --app wsgi worker` processes per incident
WORKER_CONCURRENCY = 2
ADMIN_EMAIL = "oncall@example.com"
VIEWER_EMAIL = "viewer@example.com"
OIDC_CLIENT_ID = "onramp-rehearsal"
OIDC_CLIENT_SECRET = "onramp-rehearsal-secret"
STATUS_MARK = "@@HTTP_STATUS@@"
# Servers a runbook may tell the reader to start; the rehearsal starts the equivalent itself.
LONG_RUNNING = (
    re.compile(r"^make\s+(run|db-start)\b"),
    re.compile(r"(^|\s)gunicorn\s"),
    re.compile(r"flask\s+(--app\s+\S+\s+)?(run|worker)\b"),
    re.compile(r"-m\s+devtools\.(mocks\.(crm|smtp)|mock_oidc)\b"),
)


class RehearsalError(RuntimeError):
    """A step could not even be attempted (setup failure); reported as a failed check."""
