"""Walking the runbook in an incident's world: every command, in order, with its placeholders
filled in, run as a reader would run it, and its answer compared with what the incident says.

SQL runs on the scratch database as written; shell commands run through bash as printed (with
the variables earlier commands set, as in one terminal); retry-batch curl calls get the
incident's window and are repeated until the backlog is drained, as the runbook instructs.
"""

from __future__ import annotations

import math
import re

import psycopg2

from devtools.rehearsal.checks import Checks
from devtools.rehearsal.common import BATCH_CAP, LONG_RUNNING, RETRY_PATH, RehearsalError
from devtools.rehearsal.expected import Expected, Progress
from devtools.rehearsal.report import Report, fmt
from devtools.rehearsal.runbook import Command, Placeholders
from devtools.rehearsal.shell import ShellResult, curl_parts, run_shell, with_body
from devtools.rehearsal.world import World


class RunbookWalk:
    def __init__(self, world: World, expected: Expected, progress: Progress, report: Report, checks: Checks):
        self.world = world
        self.incident = world.incident
        self.expected = expected
        self.progress = progress
        self.report = report
        self.checks = checks
        # Shell variables the runbook sets for later commands (`URL=$BASE/...`), as in one terminal.
        self.prelude: list[str] = []

    def shell(self, text: str, timeout: float = 180) -> ShellResult:
        return run_shell("\n".join([*self.prelude, text]), self.world.env, timeout=timeout)

    def fill(self, text: str) -> str:
        return Placeholders(self.world.values, self.incident.text_changes).fill(text)

    def targets_retry(self, command: str) -> bool:
        """Does this curl call the retry endpoint, directly or through a variable set earlier?"""
        if RETRY_PATH in command:
            return True
        for line in self.prelude:
            name, _, value = line.removeprefix("export ").partition("=")
            if RETRY_PATH in value and re.search(rf"\$\{{?{re.escape(name)}\b", command):
                return True
        return False

    # ------------------------------------------------------------------ the walk
    def walk(self, runbook: list[Command]) -> None:
        steps_seen: set[str] = set()
        for cmd in runbook:
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

    # ------------------------------------------------------------------ SQL
    def run_sql_command(self, cmd: Command, text: str) -> str:
        flat = " ".join(text.lower().split())
        try:
            rows = self.world.sql(text)
        except psycopg2.Error as exc:
            cmd.ran_in.append(self.incident.name)
            self.report.check(f"runbook {cmd.source} SQL", "runs", f"{type(exc).__name__}: {exc}".strip(), False)
            return "sql"
        cmd.ran_in.append(self.incident.name)
        last = (self.progress.last_replay_batch or {}).get("summary")
        replayed = self.progress.replayed
        if "from or_ramp_executions" in flat and "group by vendor_id, ramp_id" in flat:
            self.check_blast_radius(cmd, rows)
            return "blast_radius"
        if "or_workflow_history" in flat and "group by" in flat and "batch_id" in flat and last:
            want = {k: v for k, v in (("success", last.get("success")), ("error", last.get("error"))) if v}
            got = {str(row[0]): int(row[1]) for row in rows if len(row) == 2}
            self.report.check(f"runbook {cmd.source} outcomes of the last batch (history rows)", want, got)
            return "history_sql"
        if "workflow_history_action_replayed" in flat and "count(" not in flat:
            self.report.check(f"runbook {cmd.source} one row per replay attempt", replayed, len(rows))
            return "history_sql"
        if "from or_projects" in flat and "count(" in flat and len(rows) == 1 and len(rows[0]) == 1:
            want = self.expected.totals()["projects_in_window_before" if "created_at >=" in flat else "projects_before"]
            self.report.check(f"runbook {cmd.source} projects (SQL as written)", want + replayed, rows[0][0])
            return "projects_sql"
        if "or_workflow_history" in flat and "count(" in flat and len(rows) == 1 and len(rows[0]) == 1:
            if "batch_id" in flat and last:
                want = last["success"] + last["error"]
                self.report.check(f"runbook {cmd.source} history rows of the last batch", want, rows[0][0])
            else:
                self.report.check(f"runbook {cmd.source} replay history rows", replayed, rows[0][0])
            return "history_sql"
        self.report.check(f"runbook {cmd.source} SQL `{_short(cmd.one_line)}`", "runs", f"{len(rows)} row(s)", True)
        return "sql"

    def check_blast_radius(self, cmd: Command, rows: list[tuple]) -> None:
        ramp_uuid = dict(self.world.sql("SELECT id, uuid::text FROM or_ramps"))
        got = sorted(
            ({"vendor_id": int(v), "ramp_uuid": ramp_uuid[int(rid)], "count": int(n)} for n, v, rid in rows),
            key=lambda x: (x["vendor_id"], x["ramp_uuid"]),
        )
        want = self.expected.blast_radius()
        total_got, total_want = sum(g["count"] for g in got), sum(w["count"] for w in want)
        self.report.check(
            f"runbook {cmd.source} blast radius (SQL as written)",
            f"{len(want)} groups, {total_want} ERROR rows",
            f"{len(got)} groups, {total_got} ERROR rows",
            got == want,
        )

    # ------------------------------------------------------------------ retry-batch calls
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
                f"{fmt(result.body) if result.body else result.stderr.strip()[:200]}"
            )
        self.progress.batches.append(result.body)
        summary = result.body.get("summary") or {}
        if result.body.get("dry_run") is False and summary.get("selected"):
            # `<batch-id>` in later runbook commands means the last batch that replayed something.
            self.progress.last_replay_batch = result.body
            self.world.values["batch_id"] = str(result.body.get("batch_id"))
        return result

    def check_dry_run(self, cmd: Command, body: dict) -> None:
        executed = self.progress.executed
        want = self.expected.scope(executed)
        summary = body.get("summary", {})
        got_reasons = {k: v for k, v in (summary.get("skipped_by_reason") or {}).items() if v}
        label = f"runbook {cmd.source} dry run" + (" (after recovery)" if executed else "")
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
        history = self.world.scalar(
            "SELECT COUNT(*) FROM or_workflow_history WHERE action = 'WORKFLOW_HISTORY_ACTION_REPLAYED'"
        )
        self.report.check(f"{label}: changes nothing (replay history rows)", self.progress.replayed, history)

    def drain(self, cmd: Command, command: str) -> None:
        """Repeat the execute call until nothing is eligible, as the runbook says."""
        eligible = self.expected.scope(self.progress.executed)["eligible"]
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
        self.progress.executed = True
        self.progress.replayed += success + errors
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
        self.checks.recovery()

    def run_hand_picked(self, cmd: Command, text: str) -> str:
        if "hand_picked" not in self.expected.data:
            raise RehearsalError("this incident has no hand-picked rows to try")
        uuids = self.expected.data["hand_picked"]["execution_uuids"]
        body = self.call_retry(cmd, with_body(text, {"execution_uuids": uuids, "dry_run": True})).body
        self.checks.hand_picked(body, f"runbook {cmd.source} hand-picked")
        return "hand_picked"


def shows_hand_picked(cmd: Command) -> bool:
    """Is this a curl call with hand-picked execution uuids?"""
    return cmd.kind == "shell" and cmd.text.lstrip().startswith("curl") and "execution_uuids" in cmd.text


def _short(text: str, width: int = 50) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
