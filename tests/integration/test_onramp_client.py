"""The command-line client (`python -m devtools.onramp`) as a real subprocess against a real service.

Every run goes through `Cli.run`, which also checks that no credential (API key, secret, session
cookie) appears anywhere in what the client printed. Drains, with real worker processes, are in
test_onramp_client_drain.py; the pieces that need no service in test_onramp_client_parts.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.auth.users import create_user
from app.config import REPO_ROOT
from app.models.identity import ROLE_ADMIN
from tests.integration.auth_support import session_cookie, sign_in
from tests.support.retry_scenarios import api_key_headers, backlog, execution, iso

pytestmark = pytest.mark.slow

JOBS = "/api/ramps/executions/retry-jobs"
# What the client reads from the environment, and what could change how rich draws.
_CLIENT_ENV = ("ONRAMP_URL", "ONRAMP_API_KEY", "ONRAMP_API_SECRET", "ONRAMP_SESSION", "ONRAMP_STATE_DIR")
_DISPLAY_ENV = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES", "TERM")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def json(self):
        return json.loads(self.stdout)


class Cli:
    """Runs the client with credentials in its environment, the way an operator would."""

    def __init__(self, url: str, state_dir: Path, *, headers: dict | None = None, session: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV + _DISPLAY_ENV}
        env.update(ONRAMP_URL=url, ONRAMP_STATE_DIR=str(state_dir), PYTHONUNBUFFERED="1")
        self.secrets: list[str] = []
        if headers is not None:
            env.update(
                ONRAMP_API_KEY=headers["Authorization"], ONRAMP_API_SECRET=headers["or-internal-api-auth-secret"]
            )
            self.secrets += [headers["Authorization"], headers["or-internal-api-auth-secret"]]
        if session is not None:
            env["ONRAMP_SESSION"] = session
            self.secrets.append(session)
        self.env = env
        self.command = [sys.executable, "-m", "devtools.onramp"]

    def check_no_secrets(self, *texts: str) -> None:
        for text in texts:
            for value in self.secrets:
                assert value not in text, "a credential appears in the client's output"

    def run(self, *argv: str, stdin: str = "", env: dict | None = None, timeout: float = 120) -> Result:
        done = subprocess.run(
            [*self.command, *argv],
            cwd=REPO_ROOT,
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.check_no_secrets(done.stdout, done.stderr)
        return Result(done.returncode, done.stdout, done.stderr)

    def popen(self, *argv: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*self.command, *argv],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Ctrl-C as a terminal delivers it: a suite started in the background (`make test &`)
            # passes SIGINT on ignored, and Python then never raises KeyboardInterrupt.
            preexec_fn=_ctrl_c_delivered,
        )


def _ctrl_c_delivered() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Api:
    """The same service through plain HTTP, to compare the client's output with."""

    def __init__(self, url: str, headers: dict) -> None:
        self.url, self.headers = url, headers

    def get(self, path: str, **params):
        answer = requests.get(self.url + path, params=params, headers=self.headers, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str, body: dict, **headers):
        return requests.post(self.url + path, json=body, headers={**self.headers, **headers}, timeout=60)

    def job(self, job_id: str) -> dict:
        return self.get(f"{JOBS}/{job_id}")

    def jobs(self) -> list[dict]:
        return self.get(JOBS)["jobs"]


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="cli-admin")


@pytest.fixture
def service(service_process):
    with service_process("cli") as running:
        yield running


@pytest.fixture
def cli(service, admin, tmp_path) -> Cli:
    return Cli(service.url, tmp_path / "state", headers=admin)


@pytest.fixture
def api(service, admin) -> Api:
    return Api(service.url, admin)


WINDOW = ("--since", iso(0), "--until", iso(24 * 60))


def incident(n: int = 5, **backlog_options) -> dict:
    """`n` replayable rows plus one config error (skipped unless forced)."""
    world = backlog(n, **backlog_options)
    world["executions"].append(
        execution(world["ramps"][0], minutes=30, error_type="MissingTriggerField", error_message="no company.id")
    )
    return world


# ---- summary ----------------------------------------------------------------------------------


def test_summary_prints_the_blast_radius_table_and_json_prints_the_api_answer(cli, api, load):
    world = incident(5)
    load(world)
    ramp_uuid = world["ramps"][0]["uuid"]

    table = cli.run("summary", *WINDOW)
    assert table.code == 0, table.stderr
    assert table.lines[0] == (
        "Failures from 2026-05-11 12:30:00Z to 2026-05-12 12:30:00Z: 6 in total, 5 eligible for a replay with the defaults"
    )
    rows = [line for line in table.lines if ramp_uuid in line]
    assert len(rows) == 2  # grouped by vendor, ramp, error type: two error types
    unbound = next(line for line in rows if "UnboundLocalError" in line)
    assert re.search(r"\|\s+5 \|\s+5 \|", unbound), unbound  # count 5, eligible 5
    config = next(line for line in rows if "MissingTriggerField" in line)
    assert re.search(r"\|\s+1 \|\s+0 \|", config) and "no company.id" in config
    assert "\x1b" not in table.stdout  # not a terminal: no colours, no cursor moves

    by_category = cli.run("summary", *WINDOW, "--group-by", "category", "--vendor-ids", "1")
    assert by_category.code == 0
    assert [line.split("|")[1].strip() for line in by_category.lines if "| runtime" in line or "| config" in line] == [
        "runtime",
        "config",
    ]

    as_json = cli.run("summary", *WINDOW, "--json")
    assert as_json.code == 0 and as_json.stderr == ""
    assert as_json.json() == api.get(
        "/api/ramps/executions/error-summary", since=iso(0), until=iso(24 * 60), group_by="vendor,ramp,error_type"
    )


# ---- preview ----------------------------------------------------------------------------------


def test_preview_shows_summary_reasons_rows_and_prints_the_plan_token_last(cli, load):
    world = incident(5)
    load(world)
    uuids = [row["uuid"] for row in world["executions"]]

    shown = cli.run("preview", *WINDOW, "--suppress-notifications")
    assert shown.code == 0, shown.stderr
    assert shown.lines[0].startswith("Dry run: 6 rows in scope, 5 eligible, 1 skipped (batch ")
    assert re.search(r"\| config_error\s+\|\s+1 \|", shown.stdout)
    listed = [line for line in shown.lines if any(u in line for u in uuids)]
    assert [next(u for u in uuids if u in line) for line in listed] == uuids[:5]  # the eligible ones, oldest first
    assert "Eligible rows, oldest first: 5 of 5 listed" in shown.stdout
    token = shown.lines[-1]
    assert re.fullmatch(r"plan_[A-Za-z0-9_-]+", token)
    assert f"drain --plan {token}" in shown.lines[-2]

    # The token is the plan of that dry run: previewing it shows the same five rows.
    again = cli.run("preview", "--plan", token, "--json")
    assert again.code == 0, again.stderr
    answer = again.json()
    assert answer["plan_token"] == token
    assert answer["summary"]["matched"] == 5 and answer["summary"]["eligible"] == 5
    assert [row["execution_uuid"] for row in answer["eligible"]] == uuids[:5]

    forced = cli.run("preview", *WINDOW, "--force-retry", "--json")
    assert forced.json()["summary"]["eligible"] == 6


# ---- jobs -------------------------------------------------------------------------------------


def test_jobs_list_show_pause_resume_cancel(cli, api, load):
    load(backlog(3))
    # No worker runs here: the job waits, queued, for the moves below.
    created = api.post(JOBS, {"since": iso(0), "until": iso(24 * 60), "suppress_notifications": True})
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]

    listing = cli.run("jobs", "list")
    assert listing.code == 0, listing.stderr
    [row] = [line for line in listing.lines if job_id in line]
    assert re.search(r"\| queued\s+\| cli-admin\s+\|.*\|\s+0 \|\s+3 \|", row), row
    assert cli.run("jobs", "list", "--state", "paused").lines == ["No jobs."]
    assert cli.run("jobs", "list", "--json").json() == {"jobs": api.jobs()}

    shown = cli.run("jobs", "show", job_id)
    assert shown.code == 0
    assert f"job            {job_id}" in shown.lines
    assert "state          queued" in shown.lines
    assert "progress       0/3 done (0 success, 0 error, 0 skipped), 3 remaining" in shown.lines
    assert "notifications  suppressed" in shown.lines

    paused = cli.run("jobs", "pause", job_id, "--reason", "CRM flapping")
    assert paused.code == 0, paused.stderr
    assert paused.lines[0] == f"Job {job_id} is now paused."
    assert (api.job(job_id)["state"], api.job(job_id)["state_reason"]) == ("paused", "CRM flapping")

    resumed = cli.run("jobs", "resume", job_id, "--json")
    assert resumed.code == 0 and resumed.json()["state"] == "queued"

    cancelled = cli.run("jobs", "cancel", job_id, "--reason", "handled by hand")
    assert cancelled.code == 0 and f"Job {job_id} is now cancelled." in cancelled.lines
    assert api.job(job_id)["state"] == "cancelled"

    again = cli.run("jobs", "cancel", job_id)
    assert again.code == 3 and again.stdout == ""
    assert re.fullmatch(
        r"error: 409 invalid_transition: Cannot cancel a job that is cancelled \(state: cancelled; action: cancel;"
        r" allowed_from: halted paused queued running\) \[request_id cli-[0-9a-f]{16}\]\n",
        again.stderr,
    ), again.stderr

    missing = cli.run("jobs", "show", str(uuid.uuid4()))
    assert missing.code == 3 and missing.stderr.startswith(
        "error: 404 not_found: No retry job has this id [request_id "
    )


# ---- errors and credentials -------------------------------------------------------------------


def test_a_400_is_one_line_with_code_message_details_and_request_id(cli):
    bad = cli.run("preview", "--since", iso(60), "--until", iso(0))
    assert bad.code == 3 and bad.stdout == ""
    assert re.fullmatch(
        r"error: 400 validation_error: The request is not valid \(until: Must be later than since\.\)"
        r" \[request_id cli-[0-9a-f]{16}\]\n",
        bad.stderr,
    ), bad.stderr

    as_json = cli.run("jobs", "list", "--state", "sleeping", "--json")
    assert as_json.code == 3
    body = as_json.json()  # the API's error document, for scripts
    assert body["error"]["code"] == "validation_error" and "state" in body["error"]["details"]
    assert f"[request_id {body['request_id']}]" in as_json.stderr


def test_bad_flags_and_environment_are_usage_errors_before_any_request(cli, service):
    # The service is never asked: its access log stays empty of API calls.
    for argv, says in (
        (("summary",), "the following arguments are required: --since"),
        (("summary", "--since", iso(0), "--bogus"), "unrecognized arguments: --bogus"),
        (("preview", "--since", iso(0), "--vendor-ids", "1,x"), "not a comma-separated list of integers"),
        (("preview", "--plan", "plan_x", "--since", iso(0)), "--plan cannot be combined with --since"),
        (("drain", "--rate", "5"), "give --plan TOKEN, or a scope"),
        (("jobs", "explode", "x"), "invalid choice: 'explode'"),
    ):
        result = cli.run(*argv)
        assert result.code == 2, (argv, result.stderr)
        assert says in result.stderr, (argv, result.stderr)

    env_cases = (
        ({"ONRAMP_URL": ""}, "set ONRAMP_URL"),
        ({"ONRAMP_API_SECRET": ""}, "ONRAMP_API_SECRET is not set"),
        ({"ONRAMP_SESSION": "abc"}, "not both"),
        ({"ONRAMP_URL": "http://user:pw@127.0.0.1:1"}, "must not carry credentials"),
        ({"ONRAMP_URL": "ftp://127.0.0.1"}, "must be http(s)://"),
    )
    for env, says in env_cases:
        result = cli.run("jobs", "list", env=env)
        assert result.code == 2 and says in result.stderr, (env, result.stderr)
    assert not [line for line in service.log_lines() if line.get("path", "").startswith("/api/")]


def test_credentials_never_appear_in_output_even_when_they_are_wrong(cli, admin, service, tmp_path):
    wrong = Cli(service.url, tmp_path / "s2", headers={**admin, "or-internal-api-auth-secret": "wrong-" + "x" * 30})
    refused = wrong.run("jobs", "list")
    assert refused.code == 3 and refused.stderr.startswith("error: 401 unauthorized: ")
    refused_json = wrong.run("summary", "--since", iso(0), "--json")
    assert refused_json.code == 3 and refused_json.json()["error"]["code"] == "unauthorized"

    unreachable = Cli("http://127.0.0.1:9", tmp_path / "s3", headers=admin).run("jobs", "list")
    assert unreachable.code == 4
    assert re.fullmatch(
        r"error: cannot reach the service at http://127\.0\.0\.1:9: connection refused \[request_id cli-[0-9a-f]{16}\]\n",
        unreachable.stderr,
    )
    # A path prefix that the service does not serve: a 404 without the service's JSON error.
    prefixed = Cli(service.url + "/nothing-here", tmp_path / "s4", headers=admin).run("jobs", "list")
    assert prefixed.code == 3 and "404" in prefixed.stderr
    # Every run above went through Cli.run, which checked stdout and stderr for the key and secret.
    assert wrong.secrets and cli.secrets


def test_the_browser_session_cookie_works_and_never_shows(
    auth_app, session_factory, service_process, monkeypatch, config, load, tmp_path
):
    # A session signed in through the mock OIDC provider, for a service with the same SECRET_KEY.
    with session_factory() as session, session.begin():
        create_user(session, email="ops@example.com", role=ROLE_ADMIN)
    browser = auth_app.test_client()
    assert sign_in(browser, "ops@example.com").status_code == 302
    cookie = session_cookie(browser)
    monkeypatch.setenv("SECRET_KEY", config.secret_key)
    load(backlog(2))
    with service_process("cookie") as service:
        cli = Cli(service.url, tmp_path / "state", session=cookie)
        preview = cli.run("preview", *WINDOW, "--json")  # a POST: JSON, as cookie writes must be
        assert preview.code == 0, preview.stderr
        assert preview.json()["summary"]["eligible"] == 2
        assert cli.run("jobs", "list").code == 0

        ended = Cli(service.url, tmp_path / "s2", session=cookie + "tampered").run("jobs", "list")
        assert ended.code == 3 and "401 unauthorized" in ended.stderr
