"""The runbook rehearsal, run exactly as CI and a new engineer run it.

`devtools/rehearse.py` starts the mocks, a real service (gunicorn) and real job workers on scratch
databases and runs every command of runbooks/*.md against it; it exits non-zero when any result
differs from what the runbook and the scenario promise. This test is what keeps the runbook from
drifting from the code: a changed field name, reason, state, CLI verb or table breaks it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import REPO_ROOT

pytestmark = pytest.mark.slow  # a real service, workers, the mocks and scratch databases per incident

REHEARSE = REPO_ROOT / "devtools" / "rehearse.py"
RUNBOOK = REPO_ROOT / "runbooks" / "retry-batch.md"


def _run(*args: str, timeout: float = 360) -> subprocess.CompletedProcess:
    from devtools.dbtools import server_url

    db_prefix = os.environ.get("TEST_DB_NAME", "onramp_test") + "_rehearsal"
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    return subprocess.run(
        [sys.executable, str(REHEARSE), "--database-url", server_url(), "--db-name", db_prefix, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _explain(done: subprocess.CompletedProcess) -> str:
    return (
        f"exit {done.returncode}\n--- stdout (tail) ---\n{done.stdout[-6000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
    )


@pytest.mark.timeout(400)
def test_both_incidents_rehearse_cleanly_against_the_runbook():
    assert RUNBOOK.exists(), "runbooks/retry-batch.md is what the rehearsal walks"
    done = _run()
    assert done.returncode == 0, _explain(done)
    out = done.stdout
    assert "FAIL" not in out.split("incident   | step")[-1], _explain(done)
    # The summary table covers both stories and every runbook command.
    table = out.split("incident   | step")[-1]
    assert "regression | verify (suppressed job): nothing reached the mock CRM (webhooks)" in table
    assert "regression | job completed; its total and the cancelled job's replays add up" in table
    assert "outage     | job started while the CRM answers 503: halted by the brake" in table
    assert "outage     | new job completed; with the cancelled job's, every row replayed" in table
    assert "outage     | after the outage: mock CRM got one signed PROJECT_CREATED" in table
    # The command-line client's commands are checked, not merely run: against curl, the SQL and the
    # API, in both stories (a row's step starts with the runbook line and is cut to 64 characters).
    for incident, step in (
        ("regression", r"client summary --json: total = th"),
        ("outage    ", r"client summary: exit 0; its first"),
        ("regression", r"client preview: the last line is"),
        ("regression", r"client preview \(again, after repl"),
        ("regression", r"client jobs show [0-9a-f]{8}: exit 0"),
        ("regression", r"client jobs resume: the job repla"),
        ("regression", r"client drain: asked first, naming"),
        ("regression", r"client drain: ends with the job c"),
        ("outage    ", r"client drain: ends with the job h"),
        ("outage    ", r"client jobs list of halted jobs"),
        ("outage    ", r"client jobs pause: exit 0, the ne"),
        ("outage    ", r"client jobs cancel: exit 0, the n"),
        ("regression", r"client: nothing it printed \(\d+ runs\) shows a cr"),
        ("outage    ", r"client: nothing it printed \(\d+ runs\) shows a cr"),
    ):
        row = rf"^{incident} \| (runbooks/retry-batch\.md:\d+ )?{step}.*\| PASS"
        assert re.search(row, table, re.M), f"no passing row {incident.strip()}: {step}\n" + _explain(done)
    commands = re.search(r"(\d+) of (\d+) runbook commands run", out.splitlines()[-1])
    assert commands and commands.group(1) == commands.group(2) != "0", out.splitlines()[-1]


@pytest.mark.timeout(300)
def test_a_drifted_runbook_fails_the_rehearsal(tmp_path: Path):
    # A runbook whose SQL names a column that does not exist, whose curl needs a value nobody
    # defined, whose job control uses a verb the API does not have, and whose client command uses a
    # verb the client does not have: exactly the drift the rehearsal is there to catch. Rehearsed
    # for one incident, the rest of the runbook passes, so these four are the only failures.
    drifted = tmp_path / "retry-batch.md"
    original = RUNBOOK.read_text() if RUNBOOK.exists() else ""
    drifted.write_text(
        original
        + "\n\n```sql\nSELECT COUNT(*) FROM or_ramp_executions WHERE error_kind = 'regression';\n```\n"
        + "\n```bash\ncurl -X POST https://app.onramp.us/api/ramps/executions/retry-batch "
        + '-H "Authorization: <mystery-token>" -d \'{"dry_run": true}\'\n```\n'
        + '\n```bash\ncurl -sS -X POST "$API/retry-jobs/<job_id>/suspend" -H "Authorization: $ONRAMP_API_KEY" '
        + '-H "or-internal-api-auth-secret: $ONRAMP_API_SECRET" -H "Content-Type: application/json" -d \'{}\'\n```\n'
        + '\n```sh\npython -m devtools.onramp jobs suspend <job_id> --reason "CRM flapping"\n```\n'
    )
    done = _run("--incident", "outage", "--runbook", str(drifted))
    assert done.returncode == 1, _explain(done)
    listed = done.stderr.split("REHEARSAL FAILED:")[-1]
    failures = [line for line in listed.splitlines() if line.startswith("  outage: ")]
    assert len(failures) == 4, _explain(done)
    assert any("error_kind" in line for line in failures), _explain(done)
    assert any("<mystery-token>" in line for line in failures), _explain(done)
    assert any("retry-jobs/<job_id>/susp" in line and "HTTP 404" in line for line in failures), _explain(done)
    assert any("devtools.onramp jobs suspend" in line and "exit 2" in line for line in failures), _explain(done)
