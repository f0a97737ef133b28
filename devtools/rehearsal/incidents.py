"""One incident's rehearsal: set up its world, walk the runbook in it, verify the aftermath."""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import requests

from devtools.rehearsal.common import (
    ADMIN_EMAIL,
    BATCH_CAP,
    LONG_RUNNING,
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    RETRY_PATH,
    SCENARIO_CRM_URL,
    SCENARIOS_DIR,
    STATUS_MARK,
    VENV_BIN,
    VIEWER_EMAIL,
    RehearsalError,
    fire_triggers,
)
from devtools.rehearsal.processes import (
    Service,
    ShellResult,
    curl_parts,
    drop_database,
    recreate_database,
    run_shell,
    with_body,
)
from devtools.rehearsal.report import Report, _fmt
from devtools.rehearsal.runbook import _PLACEHOLDER, Command, Placeholders, _normalise


@dataclass
class Incident:
    name: str  # "regression" | "outage"
    scenario: Path
    expected: dict
    suppress: bool  # whether the replays' notifications end up suppressed
    body_changes: dict[str, Any]  # how the runbook's retry-batch bodies are adapted to this incident
    execute_changes: dict[str, Any] = field(default_factory=dict)  # ... and its execute calls
    text_changes: dict[str, str] = field(default_factory=dict)  # literal text swaps (incident start)


class Rehearsal:
    def __init__(
        self, incident: Incident, report: Report, runbook: list[Command], args, workdir: Path, crm, sink, oidc
    ):
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
        self.db_url = ""
        self.env: dict[str, str] = {}
        self.service: Service | None = None
        self.values: dict[str, str] = {}
        self.executed = False
        self.replayed = 0
        self.batches: list[dict] = []  # every retry-batch response body, in order
        self.request_ids: list[str] = []
        self.last_replay_batch: dict | None = None
        # Shell variables the runbook sets for later commands (`URL=$BASE/...`), as in one terminal.
        self.prelude: list[str] = []

    def shell(self, text: str, timeout: float = 180) -> ShellResult:
        return run_shell("\n".join([*self.prelude, text]), self.env, timeout=timeout)

    def fill(self, text: str) -> str:
        return Placeholders(self.values, self.incident.text_changes).fill(text)

    def targets_retry(self, command: str) -> bool:
        """Does this curl call the retry endpoint, directly or through a variable set earlier?"""
        if RETRY_PATH in command:
            return True
        for line in self.prelude:
            name, _, value = line.removeprefix("export ").partition("=")
            if RETRY_PATH in value and re.search(rf"\$\{{?{re.escape(name)}\b", command):
                return True
        return False

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        r = self.report
        self.db_url = recreate_database(self.args.server_url, self.db_name)
        scenario = self.workdir / f"{self.incident.name}.json"
        scenario.write_text(self.incident.scenario.read_text().replace(SCENARIO_CRM_URL, self.crm.url))
        self.crm.set_mode("ok")
        self.crm.reset()
        self.sink.messages.clear()
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
            "PYTHONUNBUFFERED": "1",
        }
        (self.workdir / ".curlrc").write_text(f'silent\nshow-error\nwrite-out = "\\n{STATUS_MARK} %{{http_code}}\\n"\n')

        # The CLI verbs the runbook and the README rely on (the runbook's own text when it has them).
        self._setup_cli("db upgrade", "flask --app wsgi db upgrade", expect=r"upgraded")
        load = self._setup_cli(
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
        key = self._setup_cli(
            "api-keys create",
            f"flask --app wsgi api-keys create --name rehearsal-{self.incident.name} --role ONRAMP_ADMIN",
            fill={"name": f"rehearsal-{self.incident.name}", "role": "ONRAMP_ADMIN"},
        )
        api_key = re.search(r"^key:\s*(\S+)", key.stdout, re.M)
        api_secret = re.search(r"^secret:\s*(\S+)", key.stdout, re.M)
        if not (api_key and api_secret):
            raise RehearsalError(f"api-keys create printed no key/secret:\n{key.stdout}\n{key.stderr}")

        self.service = Service(self.env, self.workdir / f"service-{self.incident.name}.log")
        self.service.start()
        r.check("service answers /healthz", 200, 200)
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

    def _setup_cli(
        self, verb: str, default: str, expect: str | None = None, fill: dict[str, str] | None = None
    ) -> ShellResult:
        """Run a setup CLI verb; when the runbook shows that verb, run the runbook's own text."""
        command = default
        for cmd in self.runbook:
            if cmd.kind == "shell" and re.search(rf"flask\s+--app\s+wsgi\s+{re.escape(verb)}\b", cmd.text):
                command = _fill_simple(cmd.text, fill or {})
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
        if self.service is not None:
            self.service.stop()
        if not self.args.keep:
            try:
                drop_database(self.args.server_url, self.db_name)
            except psycopg2.Error as exc:
                self.report.note(f"could not drop {self.db_name}: {exc}")

    # ------------------------------------------------------------------ SQL
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

    # ------------------------------------------------------------------ HTTP (the rehearsal's own calls)
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

    # ------------------------------------------------------------------ walking the runbook
    def walk_runbook(self) -> None:
        steps_seen: set[str] = set()
        for cmd in self.runbook:
            if self.incident.name in cmd.ran_in:
                continue  # already run as part of setup
            try:
                kind = self.run_command(cmd)
            except RehearsalError as exc:
                self.report.check(f"runbook {cmd.source}", "runs", str(exc), False)
                continue
            steps_seen.add(kind)
        for needed, label in (
            ("blast_radius", "the blast-radius SQL"),
            ("dry_run", "a dry-run call"),
            ("execute", "an execute call"),
        ):
            self.report.check(
                f"runbook has {label}",
                "present",
                "present" if needed in steps_seen else "missing",
                needed in steps_seen,
            )

    def run_command(self, cmd: Command) -> str:
        text = self.fill(cmd.text)
        if cmd.kind == "sql":
            return self.run_sql_command(cmd, text)
        first = text.lstrip()
        if re.fullmatch(r"(export\s+)?[A-Za-z_][A-Za-z0-9_]*=\S*", first.strip()):
            result = self.shell(first)
            cmd.ran_in.append(self.incident.name)
            self.prelude.append(first.strip())
            self.report.check(
                f"runbook {cmd.source} `{_short(cmd.one_line)}`", "exit 0", f"exit {result.rc}", result.rc == 0
            )
            return "variable"
        if any(p.search(first) for p in LONG_RUNNING):
            # A server the reader starts and leaves running; the rehearsal started its equivalent.
            cmd.ran_in.append(self.incident.name)
            self.report.check(f"runbook {cmd.source} (server)", "started by the rehearsal", "started", True)
            return "server"
        if first.startswith("curl") and self.targets_retry(first):
            return self.run_retry_command(cmd, text)
        result = self.shell(text)
        cmd.ran_in.append(self.incident.name)
        ok = result.rc == 0 and (result.http_status is None or 200 <= result.http_status < 300)
        self.report.check(
            f"runbook {cmd.source} `{_short(cmd.one_line)}`",
            "exit 0" + (", HTTP 2xx" if result.http_status else ""),
            f"exit {result.rc}"
            + (f", HTTP {result.http_status}" if result.http_status else "")
            + (f" {result.stderr.strip()[:80]}" if result.rc else ""),
            ok,
        )
        return "shell"

    def run_sql_command(self, cmd: Command, text: str) -> str:
        flat = " ".join(text.lower().split())
        try:
            rows = self.sql(text)
        except psycopg2.Error as exc:
            cmd.ran_in.append(self.incident.name)
            self.report.check(f"runbook {cmd.source} SQL", "runs", f"{type(exc).__name__}: {exc}".strip(), False)
            return "sql"
        cmd.ran_in.append(self.incident.name)
        if "from or_ramp_executions" in flat and "group by vendor_id, ramp_id" in flat:
            self.check_blast_radius(cmd, rows)
            return "blast_radius"
        if "or_workflow_history" in flat and "group by" in flat and "batch_id" in flat and self.last_replay_batch:
            last = self.last_replay_batch["summary"]
            want = {k: v for k, v in (("success", last.get("success")), ("error", last.get("error"))) if v}
            got = {str(row[0]): int(row[1]) for row in rows if len(row) == 2}
            self.report.check(f"runbook {cmd.source} outcomes of the last batch (history rows)", want, got)
            return "history_sql"
        if "workflow_history_action_replayed" in flat and "count(" not in flat:
            self.report.check(f"runbook {cmd.source} one row per replay attempt", self.replayed, len(rows))
            return "history_sql"
        if "from or_projects" in flat and "count(" in flat and len(rows) == 1 and len(rows[0]) == 1:
            want = self.totals()["projects_in_window_before" if "created_at >=" in flat else "projects_before"]
            self.report.check(f"runbook {cmd.source} projects (SQL as written)", want + self.replayed, rows[0][0])
            return "projects_sql"
        if "or_workflow_history" in flat and "count(" in flat and len(rows) == 1 and len(rows[0]) == 1:
            if "batch_id" in flat and self.last_replay_batch:
                last = self.last_replay_batch["summary"]
                want = last["success"] + last["error"]
                self.report.check(f"runbook {cmd.source} history rows of the last batch", want, rows[0][0])
            else:
                self.report.check(f"runbook {cmd.source} replay history rows", self.replayed, rows[0][0])
            return "history_sql"
        self.report.check(f"runbook {cmd.source} SQL `{_short(cmd.one_line)}`", "runs", f"{len(rows)} row(s)", True)
        return "sql"

    def check_blast_radius(self, cmd: Command, rows: list[tuple]) -> None:
        ramp_uuid = dict(self.sql("SELECT id, uuid::text FROM or_ramps"))
        got = sorted(
            ({"vendor_id": int(v), "ramp_uuid": ramp_uuid[int(rid)], "count": int(n)} for n, v, rid in rows),
            key=lambda x: (x["vendor_id"], x["ramp_uuid"]),
        )
        want = self.expected_blast_radius()
        total_got, total_want = sum(g["count"] for g in got), sum(w["count"] for w in want)
        self.report.check(
            f"runbook {cmd.source} blast radius (SQL as written)",
            f"{len(want)} groups, {total_want} ERROR rows",
            f"{len(got)} groups, {total_got} ERROR rows",
            got == want,
        )

    def expected_blast_radius(self) -> list[dict]:
        return self.expected["blast_radius"]

    def run_retry_command(self, cmd: Command, text: str) -> str:
        _, _, body = curl_parts(text)
        if body is None:
            raise RehearsalError("retry-batch curl without a JSON body")
        if "execution_uuids" in body:
            return self.run_hand_picked(cmd, text)
        changes = dict(self.incident.body_changes)
        dry = bool(body.get("dry_run", True))
        if not dry:
            changes.update(self.incident.execute_changes)
            if "suppress_notifications" not in changes:
                # Mass recovery after a regression: the runbook's execute call must suppress.
                self.report.check(
                    f"runbook {cmd.source} execute sends suppress_notifications",
                    True,
                    body.get("suppress_notifications"),
                )
        command = with_body(text, changes) if changes else text
        if dry:
            result = self.call_retry(cmd, command)
            self.check_dry_run(cmd, result.body)
            return "dry_run"
        self.drain(cmd, command)
        return "execute"

    def call_retry(self, cmd: Command, command: str) -> ShellResult:
        result = self.shell(command)
        if self.incident.name not in cmd.ran_in:
            cmd.ran_in.append(self.incident.name)
        if result.rc != 0 or result.http_status != 200 or not isinstance(result.body, dict):
            raise RehearsalError(
                f"HTTP {result.http_status}, exit {result.rc}: "
                f"{_fmt(result.body) if result.body else result.stderr.strip()[:200]}"
            )
        self.batches.append(result.body)
        summary = result.body.get("summary") or {}
        if result.body.get("dry_run") is False and summary.get("selected"):
            # `<batch-id>` in later runbook commands means the last batch that replayed something.
            self.last_replay_batch = result.body
            self.values["batch_id"] = str(result.body.get("batch_id"))
        return result

    def expected_scope(self) -> dict:
        """matched / eligible / skipped_by_reason the window should show right now."""
        if self.executed:
            reasons = dict(self.expected["skipped_by_reason"])
            return {"matched": sum(reasons.values()), "eligible": 0, "skipped_by_reason": reasons}
        return {
            "matched": self.expected["matched"],
            "eligible": self.expected["eligible"],
            "skipped_by_reason": dict(self.expected["skipped_by_reason"]),
        }

    def check_dry_run(self, cmd: Command, body: dict) -> None:
        want = self.expected_scope()
        summary = body.get("summary", {})
        got_reasons = {k: v for k, v in (summary.get("skipped_by_reason") or {}).items() if v}
        label = f"runbook {cmd.source} dry run" + (" (after recovery)" if self.executed else "")
        self.report.check(
            f"{label}: matched/eligible",
            (want["matched"], want["eligible"]),
            (summary.get("matched"), summary.get("eligible")),
        )
        self.report.check(f"{label}: skipped_by_reason", want["skipped_by_reason"], got_reasons)
        selected = min(BATCH_CAP, want["eligible"])
        outcomes = {e.get("outcome") for e in body.get("eligible", [])}
        self.report.check(
            f"{label}: lists the first {selected} as would_replay",
            (True, selected, {"would_replay"} if selected else set()),
            (body.get("dry_run"), len(body.get("eligible", [])), outcomes),
        )
        history = self.scalar(
            "SELECT COUNT(*) FROM or_workflow_history WHERE action = 'WORKFLOW_HISTORY_ACTION_REPLAYED'"
        )
        self.report.check(f"{label}: changes nothing (replay history rows)", self.replayed, history)

    def drain(self, cmd: Command, command: str) -> None:
        """Repeat the execute call until nothing is eligible, as the runbook says."""
        eligible = self.expected_scope()["eligible"]
        calls_needed = math.ceil(eligible / BATCH_CAP)
        success = errors = calls = 0
        per_call_ok = True
        last: dict = {}
        # Bounded: an endpoint that does not drain fails the call-count check below.
        for _ in range(calls_needed + 3):
            last = self.call_retry(cmd, command).body
            summary = last["summary"]
            calls += 1
            success += summary.get("success", 0)
            errors += summary.get("error", 0)
            per_call_ok &= summary.get("selected", 0) <= BATCH_CAP and last.get("dry_run") is False
            if summary.get("selected", 0) == 0:
                break  # the runbook's stop condition: an identical call finds nothing more
        self.executed = True
        self.replayed += success + errors
        self.report.check(
            f"runbook {cmd.source} execute until drained: calls",
            f"{calls_needed} + 1 empty",
            f"{calls - 1} + 1 empty",
            calls == calls_needed + 1 and last["summary"].get("selected") == 0,
        )
        self.report.check(f"runbook {cmd.source} execute: success / error", (eligible, 0), (success, errors))
        self.report.check(
            f"runbook {cmd.source} execute: at most {BATCH_CAP} per call, dry_run false", True, per_call_ok
        )
        self.report.check(
            f"runbook {cmd.source} execute: last call remaining/eligible",
            (0, 0),
            (last["summary"].get("remaining"), last["summary"].get("eligible")),
        )
        self.verify_recovery()

    # ------------------------------------------------------------------ verification
    def totals(self) -> dict[str, int]:
        """What the whole recovery must have produced."""
        e = self.expected
        return {
            "eligible": e["eligible"],
            "webhooks": e["webhooks_per_full_replay"],
            "emails": e["emails_per_full_replay"],
            "fetches": e["fetching_replays"],
            "projects_before": e["projects_before"],
            "projects_in_window_before": e["projects_in_window_before"],
        }

    def verify_recovery(self) -> None:
        r = self.report
        t = self.totals()
        eligible = t["eligible"]
        history = self.sql(
            "SELECT COUNT(*), COUNT(DISTINCT execution_id), COUNT(DISTINCT batch_id) FROM or_workflow_history "
            "WHERE action = 'WORKFLOW_HISTORY_ACTION_REPLAYED'"
        )[0]
        r.check("verify: one REPLAYED history row per replay", (eligible, eligible), tuple(history[:2]))
        r.check("verify: history rows carry the execute calls' batch ids", math.ceil(eligible / BATCH_CAP), history[2])
        projects = self.sql(
            "SELECT COUNT(*) FROM or_projects p JOIN or_workflow_history h ON h.execution_id = p.execution_id "
            "AND h.action = 'WORKFLOW_HISTORY_ACTION_REPLAYED'"
        )[0][0]
        r.check("verify: a project for every replayed execution", eligible, projects)
        total_projects = self.scalar("SELECT COUNT(*) FROM or_projects")
        r.check("verify: no duplicate projects (total)", t["projects_before"] + eligible, total_projects)
        status = dict(
            self.sql(
                "SELECT e.status_code, COUNT(*) FROM or_ramp_executions e JOIN or_workflow_history h "
                "ON h.execution_id = e.id AND h.action = 'WORKFLOW_HISTORY_ACTION_REPLAYED' GROUP BY 1"
            )
        )
        r.check("verify: replayed executions are SUCCESS", {"SUCCESS": eligible}, status)
        notes = dict(
            self.sql(
                "SELECT n.channel || ':' || n.status, COUNT(*) FROM or_notification_outbox n JOIN or_workflow_history h "
                "ON h.execution_id = n.execution_id AND h.action = 'WORKFLOW_HISTORY_ACTION_REPLAYED' GROUP BY 1"
            )
        )
        status_word = "suppressed" if self.incident.suppress else "delivered"
        want_notes = {f"webhook:{status_word}": t["webhooks"], f"email:{status_word}": t["emails"]}
        r.check(f"verify: replay notifications {status_word}", want_notes, notes)
        time.sleep(0.3)  # deliveries are synchronous after commit; a moment for the sockets to settle
        received = self.crm.snapshot()["counts"]
        if self.incident.suppress:
            r.check("verify: nothing reached the mock CRM (webhooks)", 0, received["webhooks"])
            r.check("verify: nothing reached the SMTP sink", 0, self.sink.count())
        else:
            r.check(
                "verify: mock CRM got one signed PROJECT_CREATED per replay",
                (t["webhooks"], t["webhooks"]),
                (received["webhooks"], received["webhooks_signature_valid"]),
            )
            r.check("verify: SMTP sink got one email per replay", t["emails"], self.sink.count())
        r.check("verify: CRM record fetches by replays of fetching versions", t["fetches"], received["fetches"])

    # ------------------------------------------------------------------ the rehearsal's own checks
    def check_auth(self) -> None:
        r = self.report
        rid = f"rehearsal-{self.incident.name}-noauth"
        anonymous = requests.post(
            self.service.url + RETRY_PATH,
            json={"since": self.expected["since"]},
            headers={"X-Request-ID": rid},
            timeout=30,
        )
        r.check(
            "no credentials -> 401 (JSON, request id echoed)",
            (401, rid),
            (anonymous.status_code, anonymous.headers.get("X-Request-ID")),
        )
        self.request_ids.append(rid)
        viewer_cookie = self.sign_in(VIEWER_EMAIL) if self.incident.name == "regression" else None
        if viewer_cookie:
            viewer = requests.post(
                self.service.url + RETRY_PATH,
                json={"since": self.expected["since"]},
                cookies={"session": viewer_cookie},
                timeout=30,
            )
            r.check("viewer session -> 403", 403, viewer.status_code)

    def check_hand_picked(self, response_body: dict, label: str) -> None:
        picked = self.expected["hand_picked"]
        got = {s["execution_uuid"]: s["reason"] for s in response_body.get("skipped", [])}
        want = dict(zip(picked["execution_uuids"], picked["reasons"], strict=True))
        self.report.check(f"{label}: reasons of hand-picked rows", want, {u: got.get(u) for u in want})

    def run_hand_picked(self, cmd: Command, text: str) -> str:
        if "hand_picked" not in self.expected:
            raise RehearsalError("this incident has no hand-picked rows to try")
        command = with_body(text, {"execution_uuids": self.expected["hand_picked"]["execution_uuids"], "dry_run": True})
        body = self.call_retry(cmd, command).body
        self.check_hand_picked(body, f"runbook {cmd.source} hand-picked")
        return "hand_picked"

    def check_hand_picked_directly(self) -> None:
        if "hand_picked" not in self.expected:
            return
        response = self.post_retry(
            {"execution_uuids": self.expected["hand_picked"]["execution_uuids"], "dry_run": True}
        )
        self.report.check("hand-picked dry run answers 200", 200, response.status_code)
        if response.status_code == 200:
            self.check_hand_picked(response.json(), "hand-picked dry run")

    def check_logs(self) -> None:
        lines = self.service.log_lines()
        app_lines = [line for line in lines if "logger" in line]
        r = self.report
        r.check(
            "logs: app lines are JSON with a request_id key",
            True,
            bool(app_lines) and all("request_id" in line for line in app_lines),
        )
        for rid in self.request_ids:
            r.check(
                f"logs: request id {rid} is in the service log",
                True,
                any(line.get("request_id") == rid for line in app_lines),
            )
        summaries = [line for line in app_lines if line.get("event") == "retry_batch.summary"]
        batch_ids = {str(b.get("batch_id")) for b in self.batches}
        r.check(
            "logs: one retry_batch.summary line per retry-batch call",
            len(batch_ids),
            len({s.get("batch_id") for s in summaries} & batch_ids),
        )

    def run(self) -> None:
        raise NotImplementedError


class RegressionRehearsal(Rehearsal):
    def run(self) -> None:
        self.check_auth()
        self.walk_runbook()
        if not any(cmd_has_hand_picked(c) for c in self.runbook):
            self.check_hand_picked_directly()
        # A repeat of the dry run after recovery: only the intentionally skipped rows remain.
        if self.executed:
            response = self.post_retry(
                {"since": self.expected["since"], "error_pattern": self.expected["error_pattern"], "dry_run": True},
                auth="cookie",
            )
            body = response.json() if response.status_code == 200 else {}
            summary = body.get("summary", {})
            self.report.check(
                "after recovery: nothing eligible, only intentional skips",
                (0, sum(self.expected["skipped_by_reason"].values())),
                (summary.get("eligible"), summary.get("matched")),
            )
        self.check_logs()


class OutageRehearsal(Rehearsal):
    LIVE = (
        ("503", 6, "IntegrationConnectionError"),
        ("429", 2, "RateLimitError"),
        ("timeout", 1, "ModuleTimeoutError"),
    )

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.live_count = 0
        self.live_ramp = ""

    def totals(self) -> dict[str, int]:
        # The live triggers failed before any notify step; their replays fetch, create and notify.
        t = super().totals()
        for key in ("eligible", "webhooks", "emails", "fetches"):
            t[key] += self.live_count
        return t

    def expected_blast_radius(self) -> list[dict]:
        groups = [dict(g) for g in self.expected["blast_radius"]]
        for g in groups:
            if g["ramp_uuid"] == self.live_ramp:
                g["count"] += self.live_count
        return groups

    def expected_scope(self) -> dict:
        scope = super().expected_scope()
        if not self.executed:
            scope["matched"] += self.live_count
            scope["eligible"] += self.live_count
        return scope

    def run(self) -> None:
        r = self.report
        self.check_auth()
        self.live_ramp, secret = fire_triggers.ramp_from_scenario(str(self.incident.scenario))
        # 1. The CRM goes down: fresh triggers fail in fetch_crm_record with integration errors.
        stamp = time.strftime("%H%M%S")
        for mode, count, error_type in self.LIVE:
            control = requests.post(self.crm.url + "/_control", json={"mode": mode, "delay": 3}, timeout=5)
            r.check(f"mock CRM switched to {mode}", 200, control.status_code)
            for n in range(count):
                result = fire_triggers.fire(
                    self.service.url,
                    self.live_ramp,
                    secret,
                    f"deal-live-{stamp}-{mode}-{n}",
                    fire_triggers.make_payload(n, f"{stamp}{mode}", "Live Customer", "owner@customer.example"),
                    timeout=30,
                )
                body = result.body if isinstance(result.body, dict) else {}
                error = body.get("error") or {}
                r.check(
                    f"trigger during CRM {mode} #{n + 1}: {fire_triggers.describe(result)[:40]}",
                    (201, "ERROR", "integration", error_type),
                    (result.status, body.get("status"), error.get("category"), error.get("type")),
                )
                self.live_count += 1
        bad = fire_triggers.fire(
            self.service.url,
            self.live_ramp,
            secret,
            f"deal-live-{stamp}-forged",
            {"company": {"id": "x", "name": "Forged"}},
            bad_signature=True,
        )
        r.check("trigger with a forged signature is refused", 401, bad.status)
        failed = self.scalar(
            "SELECT COUNT(*) FROM or_ramp_executions WHERE status_code = 'ERROR' "
            f"AND last_error_category = 'integration' AND created_at >= '{self.expected['since']}'"
        )
        r.check(
            "SQL: ERROR rows with integration errors since the outage began",
            self.expected["eligible"] + self.live_count,
            failed,
        )
        # 2. The CRM is back; the runbook's commands drain the backlog (suppression off: these runs
        #    never notified anyone, so the PROJECT_CREATED webhooks and emails are owed).
        requests.post(self.crm.url + "/_control", json={"mode": "ok"}, timeout=5)
        self.crm.reset()
        self.sink.messages.clear()
        r.check("mock CRM back to ok", "ok", self.crm.mode)
        self.walk_runbook()
        self.check_logs()


def cmd_has_hand_picked(cmd: Command) -> bool:
    return cmd.kind == "shell" and cmd.text.lstrip().startswith("curl") and "execution_uuids" in cmd.text


def _fill_simple(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        return values.get(_normalise(match.group(1)), match.group(0))

    return _PLACEHOLDER.sub(replace, text)


def _first_int(text: str, pattern: str) -> int | None:
    match = re.search(pattern, text)
    return int(match.group(1)) if match else None


def _short(text: str, width: int = 50) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def build_incidents(names: list[str]) -> list[tuple[type[Rehearsal], Incident]]:
    def expected(name: str) -> dict:
        return json.loads((SCENARIOS_DIR / f"{name}.expected.json").read_text())

    regression_exp = expected("regression-incident")
    outage_exp = expected("crm-outage")
    table = {
        "regression": (
            RegressionRehearsal,
            Incident(
                "regression", SCENARIOS_DIR / "regression-incident.json", regression_exp, suppress=True, body_changes={}
            ),
        ),
        "outage": (
            OutageRehearsal,
            Incident(
                "outage",
                SCENARIOS_DIR / "crm-outage.json",
                outage_exp,
                suppress=False,
                # The outage's own window, no error pattern (every integration error is owed a replay),
                # and no suppression: these runs failed before `notify`, so nobody was told yet.
                body_changes={"since": outage_exp["since"], "until": None, "error_pattern": None},
                execute_changes={"suppress_notifications": False},
                text_changes={regression_exp["since"]: outage_exp["since"]},
            ),
        ),
    }
    return [table[n] for n in names]
