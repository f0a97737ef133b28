"""One incident's world: a scratch database loaded with its scenario through the CLI verbs, the
service and its job workers running on it, a signed-in on-call admin and an API key, and the
environment the runbook's commands run in; torn down afterwards."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg2
import requests

from devtools.dbtools import drop_database, libpq_url, recreate_database
from devtools.rehearsal.common import (
    ADMIN_EMAIL,
    JOBS_PATH,
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    RETRY_PATH,
    SCENARIO_CRM_URL,
    STATUS_MARK,
    VENV_BIN,
    WORKER_CONCURRENCY,
    WORKERS,
    RehearsalError,
)
from devtools.rehearsal.report import Report
from devtools.rehearsal.runbook import Command, fill_named
from devtools.rehearsal.shell import ShellResult, run_shell
from devtools.service import ServiceProcess, ServiceStartError
from devtools.worker import WorkerProcess, WorkerStartError


class World:
    def __init__(self, incident, report: Report, runbook: list[Command], args, workdir: Path, crm, sink, oidc):
        self.incident = incident
        self.expected = incident.expected
        self.report = report
        self.runbook = runbook
        self.args = args
        self.workdir = workdir
        self.crm = crm
        self.sink = sink
        self.oidc = oidc
        self.db_name = f"{args.db_name}_{incident.name}"
        self.db_url = ""  # libpq form: psycopg2 and a runbook's `psql "$DATABASE_URL"` take it
        self.env: dict[str, str] = {}
        self.service: ServiceProcess | None = None
        self.workers: list[WorkerProcess] = []
        self.key_name = f"rehearsal-{incident.name}"
        # What the runbook's placeholders are filled with (see runbook.Placeholders).
        self.values: dict[str, str] = {}

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        r = self.report
        self.db_url = libpq_url(recreate_database(self.args.server_url, self.db_name))
        scenario = self.workdir / f"{self.incident.name}.json"
        scenario.write_text(self.incident.scenario.read_text().replace(SCENARIO_CRM_URL, self.crm.url))
        self.crm.set_mode("ok")
        self.crm.reset()
        self.sink.clear()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("SENTRY_DSN", "TEST_DATABASE_URL")},
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DATABASE_URL": self.db_url,
            "SECRET_KEY": secrets.token_hex(32),
            "ONRAMP_ENV": "development",
            "ONRAMP_INSTANCE_DIR": str(self.workdir / "instance"),
            "SESSION_COOKIE_SECURE": "false",
            "SMTP_URL": self.sink.url,
            "HTTP_TIMEOUT_SECONDS": "1",
            "OIDC_METADATA_URL": self.oidc.metadata_url,
            "OIDC_CLIENT_ID": OIDC_CLIENT_ID,
            "OIDC_CLIENT_SECRET": OIDC_CLIENT_SECRET,
            "ADMIN_EMAIL_DOMAINS": "example.com",
            "CURL_HOME": str(self.workdir),
            # Where the command-line client keeps the Idempotency-Keys of unanswered drains.
            "ONRAMP_STATE_DIR": str(self.workdir / f"onramp-state-{self.incident.name}"),
            "PYTHONUNBUFFERED": "1",
        }
        (self.workdir / ".curlrc").write_text(f'silent\nshow-error\nwrite-out = "\\n{STATUS_MARK} %{{http_code}}\\n"\n')

        # The CLI verbs the runbook and the README rely on (the runbook's own text when it has them).
        self.setup_cli("db upgrade", "flask --app wsgi db upgrade", expect=r"upgraded")
        load = self.setup_cli(
            "scenario load",
            f"flask --app wsgi scenario load {shlex.quote(str(scenario))}",
            fill={"file": str(scenario), "scenario": str(scenario), "scenario-file": str(scenario)},
        )
        loaded = _first_int(load.stdout, r"executions:\s*(\d+)")
        r.check(
            "scenario loaded",
            f"{self.expected['executions']} executions",
            f"{loaded} executions",
            loaded == self.expected["executions"],
        )
        key = self.setup_cli(
            "api-keys create",
            f"flask --app wsgi api-keys create --name {self.key_name} --role ONRAMP_ADMIN",
            fill={"name": self.key_name, "role": "ONRAMP_ADMIN"},
        )
        api_key = re.search(r"^key:\s*(\S+)", key.stdout, re.M)
        api_secret = re.search(r"^secret:\s*(\S+)", key.stdout, re.M)
        if not (api_key and api_secret):
            raise RehearsalError(f"api-keys create printed no key/secret:\n{key.stdout}\n{key.stderr}")
        # The name the runbook's command gave it: the actor of everything done with the key.
        self.key_name = self.scalar("SELECT name FROM or_api_keys ORDER BY id DESC LIMIT 1")

        # Retry jobs run on real workers, as `make run` (one) or a deployment (several) runs them;
        # they start up while gunicorn does.
        self.workers = [
            WorkerProcess(
                self.db_url,
                self.workdir / f"worker-{self.incident.name}-{n + 1}.log",
                env=self.env,
                name=f"worker-{n + 1}",
                concurrency=WORKER_CONCURRENCY,
            )
            for n in range(WORKERS)
        ]
        for worker in self.workers:
            worker.launch()
        # gunicorn.conf.py's workers, threads and timeout, as `make run` starts it.
        self.service = ServiceProcess(self.db_url, self.workdir / f"service-{self.incident.name}.log", env=self.env)
        try:
            self.service.start(timeout=45)
        except ServiceStartError as exc:
            raise RehearsalError(str(exc)) from exc
        r.check("service answers /healthz", 200, 200)
        try:
            for worker in self.workers:
                worker.wait_ready(timeout=45)
        except WorkerStartError as exc:
            raise RehearsalError(str(exc)) from exc
        r.check(f"{WORKERS} workers (`flask --app wsgi worker`) ready", WORKERS, sum(w.alive() for w in self.workers))
        cookie = self.sign_in(ADMIN_EMAIL)
        r.check("OIDC sign-in gives a session cookie", "cookie", "cookie" if cookie else None)
        self.values = {
            "since": self.expected["since"],
            "cookie": cookie or "",
            "api_key": api_key.group(1),
            "api_secret": api_secret.group(1),
            "base_url": self.service.url,
            "admin_email": ADMIN_EMAIL,
            "execution_uuid": (self.expected.get("hand_picked") or {}).get("execution_uuids", [""])[0],
        }
        self.env.update(
            {
                "ONRAMP_URL": self.service.url,
                "BASE_URL": self.service.url,
                "SESSION_COOKIE": cookie or "",
                "ONRAMP_API_KEY": api_key.group(1),
                "ONRAMP_API_SECRET": api_secret.group(1),
                "API_KEY": api_key.group(1),
                "API_SECRET": api_secret.group(1),
                "INCIDENT_START": self.expected["since"],
                # The names the runbook's examples use.
                "KEY": api_key.group(1),
                "SECRET": api_secret.group(1),
                "COOKIE": cookie or "",
            }
        )

    def setup_cli(
        self, verb: str, default: str, expect: str | None = None, fill: dict[str, str] | None = None
    ) -> ShellResult:
        """Run a setup CLI verb; when the runbook shows that verb, run the runbook's own text."""
        command = default
        for cmd in self.runbook:
            if cmd.kind == "shell" and re.search(rf"flask\s+--app\s+wsgi\s+{re.escape(verb)}\b", cmd.text):
                command = fill_named(cmd.text, fill or {})
                cmd.ran_in.append(self.incident.name)
                break
        result = run_shell(command, self.env, timeout=300)
        if result.rc != 0 or (expect and not re.search(expect, result.stdout)):
            raise RehearsalError(f"`{command}` failed (exit {result.rc}):\n{result.stdout}\n{result.stderr}")
        self.report.check(f"`flask --app wsgi {verb}`", "exit 0", f"exit {result.rc}", True)
        return result

    def sign_in(self, email: str) -> str | None:
        """The real authorization-code flow against the mock provider; returns the session cookie."""
        browser = requests.Session()
        login = browser.get(self.service.url + "/auth/login", allow_redirects=False, timeout=10)
        if login.status_code != 302:
            raise RehearsalError(f"/auth/login answered {login.status_code}: {login.text[:300]}")
        approved = requests.get(login.headers["Location"], params={"email": email}, allow_redirects=False, timeout=10)
        back = browser.get(approved.headers["Location"], allow_redirects=False, timeout=10)
        if back.status_code not in (302, 303):
            raise RehearsalError(f"/auth/callback answered {back.status_code}: {back.text[:300]}")
        return browser.cookies.get("session")

    def teardown(self) -> None:
        for worker in self.workers:
            worker.terminate()  # all at once: each finishes its in-flight work and exits
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
        if self.service is not None:
            self.service.stop(grace=15)
        if not self.args.keep:
            try:
                drop_database(self.args.server_url, self.db_name)
            except psycopg2.Error as exc:
                self.report.note(f"could not drop {self.db_name}: {exc}")

    # ------------------------------------------------------------------ the rehearsal's own calls
    def sql(self, statement: str) -> list[tuple]:
        conn = psycopg2.connect(self.db_url)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def scalar(self, statement: str) -> Any:
        rows = self.sql(statement)
        return rows[0][0] if rows else None

    def key_headers(self) -> dict[str, str]:
        return {"Authorization": self.values["api_key"], "or-internal-api-auth-secret": self.values["api_secret"]}

    def get_job(self, job_id: str) -> dict:
        response = requests.get(f"{self.service.url}{JOBS_PATH}/{job_id}", headers=self.key_headers(), timeout=30)
        if response.status_code != 200:
            raise RehearsalError(f"GET job {job_id}: HTTP {response.status_code} {response.text[:200]}")
        return response.json()

    def api_get(self, path: str, params: dict | None = None) -> dict:
        response = requests.get(self.service.url + path, params=params, headers=self.key_headers(), timeout=30)
        if response.status_code != 200:
            raise RehearsalError(f"GET {path}: HTTP {response.status_code} {response.text[:200]}")
        return response.json()

    def wait_for_deliveries(self, timeout: float = 15.0) -> int:
        """Replays deliver their notifications right after their commit, so the last ones of a job
        may still be on their way when it completes: wait (bounded) until none is pending; the
        number still pending."""
        deadline = time.monotonic() + timeout
        while True:
            pending = self.scalar("SELECT COUNT(*) FROM or_notification_outbox WHERE status = 'pending'")
            if not pending or time.monotonic() > deadline:
                return pending
            time.sleep(0.2)

    def post_retry(self, body: dict, auth: str = "key", request_id: str | None = None) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if request_id:
            headers["X-Request-ID"] = request_id
        cookies = None
        if auth == "key":
            headers.update(
                {"Authorization": self.values["api_key"], "or-internal-api-auth-secret": self.values["api_secret"]}
            )
        elif auth == "cookie":
            cookies = {"session": self.values["cookie"]}
        return requests.post(
            self.service.url + RETRY_PATH, data=json.dumps(body), headers=headers, cookies=cookies, timeout=300
        )


def _first_int(text: str, pattern: str) -> int | None:
    match = re.search(pattern, text)
    return int(match.group(1)) if match else None
