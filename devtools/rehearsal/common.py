"""Paths, fixed names and the mock modules shared by the rehearsal's parts."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from app.config import REPO_ROOT

MOCKS_DIR = REPO_ROOT / "devtools" / "mock-integrations"
SCENARIOS_DIR = REPO_ROOT / "devtools" / "scenarios"
RUNBOOKS_DIR = REPO_ROOT / "runbooks"
VENV_BIN = Path(sys.executable).parent
SCENARIO_CRM_URL = "http://127.0.0.1:9300"  # what make_incidents.py writes into the scenarios
# URLs a runbook may print for the service; all of them mean "the service under rehearsal".
SERVICE_URLS = ("https://app.onramp.us", "http://127.0.0.1:8000", "http://localhost:8000")
RETRY_PATH = "/api/ramps/executions/retry-batch"
BATCH_CAP = 25
ADMIN_EMAIL = "oncall@example.com"
VIEWER_EMAIL = "viewer@example.com"
OIDC_CLIENT_ID = "onramp-rehearsal"
OIDC_CLIENT_SECRET = "onramp-rehearsal-secret"
STATUS_MARK = "@@HTTP_STATUS@@"
# Servers a runbook may tell the reader to start; the rehearsal starts the equivalent itself.
LONG_RUNNING = (
    re.compile(r"^make\s+(run|db-start)\b"),
    re.compile(r"(^|\s)gunicorn\s"),
    re.compile(r"flask\s+(--app\s+\S+\s+)?run\b"),
    re.compile(r"mock_crm\.py|smtp_sink\.py|-m\s+devtools\.mock_oidc"),
)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mock_crm = _load("mock_crm", MOCKS_DIR / "mock_crm.py")
smtp_sink = _load("smtp_sink", MOCKS_DIR / "smtp_sink.py")
fire_triggers = _load("fire_triggers", MOCKS_DIR / "fire_triggers.py")


class RehearsalError(RuntimeError):
    """A step could not even be attempted (setup failure); reported as a failed check."""
