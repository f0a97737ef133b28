"""The walk's command-line client steps that size, preview and drain (`python -m devtools.onramp
summary | preview | drain`). Each runs the runbook's client command through bash as printed (its
flags adapted to the incident as the curl bodies are), reads its human output, and, where numbers
are needed, the same command with `--json`; both are compared with the incident and with what the
curl steps answered. The `jobs ...` verbs are in steps_cli_jobs.py."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devtools.rehearsal import client_output as out
from devtools.rehearsal.common import RehearsalError
from devtools.rehearsal.shell import Background, ShellResult, flag_value, has_flag, with_flags

PROG = "python -m devtools.onramp"
DRAIN_TIMEOUT = 180.0
_STARTED = r"^Started job (\S+): (\d+) rows\.$"
_PREVIEW = re.compile(r"^Dry run: (\d+) rows in scope, (\d+) eligible, (\d+) skipped \(batch (\S+)\)$")
_SUMMARY = re.compile(r": (\d+) in total, (\d+) eligible for a replay with the defaults$")
_PLAN = re.compile(r"^Plan of all (\d+) eligible rows, valid until (.+?)\. Drain exactly these rows with: (.+)$")


def scope_flags(changes: dict[str, Any]) -> dict[str, Any]:
    """retry-batch body changes (the incident's `body_changes`) as the client's flags."""
    flags: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "suppress_notifications":
            flags["--suppress-notifications"] = bool(value)
            flags["--notify"] = not value
        elif isinstance(value, list):
            flags["--" + name.replace("_", "-")] = ",".join(str(v) for v in value)
        else:
            flags["--" + name.replace("_", "-")] = value
    return flags


@dataclass
class Drain:
    """A `drain` running in the background while the story goes on."""

    cmd: Any
    label: str
    job_id: str
    shell: Background
    question: str  # what it must have asked before starting (on stderr, the line left open)


class ClientSteps:
    # ------------------------------------------------------------------ running the client
    def client(self, cmd, text: str, *, json_out: bool = False, rc: int = 0) -> ShellResult:
        """Run a client command of the runbook (with `--json` added: its answer as `body`); a
        RehearsalError when it does not exit with `rc`."""
        command = f"{text.rstrip()} --json" if json_out else text
        result = self.shell(command)
        self.mark(cmd)
        self.progress.client_output.append(result.stdout + result.stderr)
        if result.rc != rc:
            raise RehearsalError(
                f"{cmd.source}: exit {result.rc} (expected {rc}): {(result.stderr or result.stdout).strip()[-300:]}"
            )
        if json_out:
            try:
                result.body = json.loads(result.stdout)
            except ValueError as exc:
                raise RehearsalError(f"{cmd.source}: --json printed no JSON: {result.stdout[:200]}") from exc
        return result

    # ------------------------------------------------------------------ 1. size the damage
    def step_cli_summary(self, cmd, text, **_):
        r = self.report
        label = self.label(cmd, "client summary")
        answer = self.client(cmd, text, json_out=True).body
        groups = sorted(
            (
                {k: g.get(k) for k in ("vendor_id", "ramp_uuid", "error_type", "count", "eligible")}
                for g in answer.get("groups", [])
            ),
            key=lambda g: (g["vendor_id"], g["ramp_uuid"], g["error_type"]),
        )
        if self.progress.untouched:
            want = self.expected.summary()
            r.check(
                f"{label} --json: total / eligible / groups are the scenario's",
                (want["total"], want["eligible"], want["groups"]),
                (answer.get("total"), answer.get("eligible"), groups),
            )
        since = self.expected.data["since"]
        counted = self.world.scalar(
            f"SELECT COUNT(*) FROM or_ramp_executions WHERE status_code = 'ERROR' AND created_at >= '{since}'"
        )
        curl = self.progress.summary or {}
        r.check(
            f"{label} --json: total = the SQL's COUNT(*) = the curl summary's; eligible and groups as curl's",
            (counted, counted, curl.get("eligible"), len(curl.get("groups", []))),
            (answer.get("total"), curl.get("total"), answer.get("eligible"), len(answer.get("groups", []))),
        )
        human = self.client(cmd, text)
        head = _SUMMARY.search(human.stdout.splitlines()[0] if human.stdout else "")
        found = out.tables(human.stdout)
        r.check(
            f"{label}: exit 0; its first line's total / eligible, one table row per group",
            (counted, answer.get("eligible"), len(groups)),
            (
                int(head.group(1)) if head else None,
                int(head.group(2)) if head else None,
                len(found[0]) if found else None,
            ),
        )
        return answer

    # ------------------------------------------------------------------ 2. preview
    def step_cli_preview(self, cmd, text, **_):
        r = self.report
        if self.incident.suppress:
            r.check(self.label(cmd, "client preview suppresses"), True, has_flag(text, "--suppress-notifications"))
        adapted = with_flags(
            text, scope_flags({**self.incident.body_changes, "suppress_notifications": self.incident.suppress})
        )
        want = self.expected.scope(self.progress)
        label = self.label(cmd, "client preview" + ("" if self.progress.untouched else " (again, after replays)"))
        answer = self.client(cmd, adapted, json_out=True).body
        self.progress.batches.append(answer)
        summary = answer.get("summary", {})
        reasons = {k: v for k, v in (summary.get("skipped_by_reason") or {}).items() if v}
        r.check(
            f"{label} --json: matched / eligible / skipped_by_reason",
            (want["matched"], want["eligible"], want["skipped_by_reason"]),
            (summary.get("matched"), summary.get("eligible"), reasons),
        )
        human = self.client(cmd, adapted)
        lines = human.stdout.splitlines()
        head = _PREVIEW.match(lines[0]) if lines else None
        if head:
            self.progress.batches.append({"batch_id": head.group(4)})
        table = out.table_after(human.stdout, "Skipped by reason") or []
        r.check(
            f"{label}: exit 0; its first line's matched / eligible / skipped, and the skip reasons table",
            (want["matched"], want["eligible"], want["matched"] - want["eligible"], want["skipped_by_reason"]),
            (
                *((int(head.group(n)) for n in (1, 2, 3)) if head else (None, None, None)),
                {row.get("skipped because"): int(row.get("rows", 0)) for row in table},
            ),
        )
        token = lines[-1].strip() if lines else ""
        plan = _PLAN.match(lines[-2]) if len(lines) > 1 else None
        r.check(
            f"{label}: the last line is the plan token alone, the line before it the drain command",
            (True, f"{PROG} drain --plan {token}"),
            (bool(re.fullmatch(r"plan_[A-Za-z0-9_-]{16,}", token)), plan.group(3) if plan else lines[-2:]),
        )
        expires = None
        if plan:
            try:
                expires = datetime.strptime(plan.group(2), "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC).isoformat()
            except ValueError:
                expires = None
        self.check_unchanged(label)
        # The token a following step uses (`--plan <plan_token>`, `"plan_token": "<plan_token>"`).
        self.keep_plan(
            label,
            {
                "plan_token": token,
                "plan_expires_at": expires,
                "summary": {"eligible": int(head.group(2)) if head else 0},
            },
            fate="eligible",
            suppress=self.incident.suppress,
        )
        return answer

    # ------------------------------------------------------------------ 3. drain a plan as a job
    def step_cli_drain(self, cmd, text, *, pace: float | None, suppress: bool, **_):
        """Start the runbook's `drain` in the background at a terminal, answer its question "y",
        and return once its job has started (the story then watches it and ends it: end_drain)."""
        r = self.report
        plan = self.progress.plan
        if not plan or flag_value(text, "--plan") != plan["token"]:
            raise RehearsalError("the runbook's drain does not drain a preview's plan (--plan <plan_token>)")
        label = self.label(cmd, "client drain")
        if self.incident.suppress:
            r.check(f"{label}: suppresses", True, has_flag(text, "--suppress-notifications"))
        changes = scope_flags({"suppress_notifications": suppress})
        if pace is not None:  # the runbook's pace is a production one
            changes["--rate"] = f"{pace:g}"
        adapted = with_flags(text, changes)
        rate = float(flag_value(adapted, "--rate") or 5)
        self.mark(cmd)
        shell = Background("\n".join([*self.prelude, adapted]), self.world.env, answer="y\n")
        self.background.append(shell)
        started = shell.wait_for(_STARTED, timeout=60)
        if not started:
            result = shell.finish(timeout=10)
            self.progress.client_output.append(result.stdout + result.stderr)
            raise RehearsalError(f"{cmd.source}: no job started (exit {result.rc}): {result.stderr.strip()[-300:]}")
        job_id = started.group(1)
        notified = "suppressed (nothing is sent)" if suppress else "SENT (webhooks and emails reach customers)"
        question = (
            f"Drain these {plan['eligible']} rows (plan {plan['token']}) in a background job, at most {rate:g}"
            f" replays/s, notifications {notified}? [y/N] "
        )
        job = self.world.get_job(job_id)
        request = job.get("request") or {}
        r.check(
            f"{label}: started job {job_id[:8]}: its total / plan / suppression / pace",
            (plan["eligible"], plan["eligible"], plan["token"], suppress, rate),
            (
                int(started.group(2)),
                job.get("progress", {}).get("total"),
                request.get("plan_token"),
                request.get("suppress_notifications"),
                job.get("max_replays_per_second"),
            ),
        )
        self.register_job(job)
        return Drain(cmd, label, job_id, shell, question)

    def end_drain(self, drain: Drain | None, state: str) -> dict | None:
        """Wait for the drain to end: exit 0 with the completed line, or exit 1 with the job's
        state and state_reason (and, halted, the next commands)."""
        if drain is None:
            return None
        result = drain.shell.finish(timeout=DRAIN_TIMEOUT)
        self.progress.client_output.append(result.stdout + result.stderr)
        self.report.check(
            f"{drain.label}: asked first, naming the rows, the plan, the pace and the notifications",
            drain.question,
            result.stderr[: len(drain.question)],
        )
        job = self.world.get_job(drain.job_id)
        p, job_id = job["progress"], drain.job_id
        lines = result.stdout.splitlines()
        if state == "completed":
            want = (0, "completed", f"Job {job_id} completed: {p['total']} rows, {out.counts(p)}.")
            got = (result.rc, job["state"], lines[-1] if lines else result.stderr[-200:])
        else:
            want = (
                1,
                state,
                f"Job {job_id} {state}: {job.get('state_reason')}.",
                f"Resume it (the brake starts afresh): {PROG} jobs resume {job_id}",
            )
            ended = next((line for line in lines if line.startswith(f"Job {job_id} ")), result.stderr[-200:])
            resume = next((line for line in lines if line.startswith("Resume it")), None)
            got = (result.rc, job["state"], ended, resume)
        self.report.check(f"{drain.label}: ends with the job {state}", want, got)
        followed = [line for line in lines if line.startswith(f"job {job_id} ")]
        reason = f"; {job['state_reason']}" if job.get("state_reason") else ""
        self.report.check(
            f"{drain.label}: followed the job in plain lines (not a terminal), the last one {state}",
            (True, f"job {job_id} {state}: {p['done']}/{p['total']} done ({out.counts(p)}){reason}"),
            (len(followed) >= 2, followed[-1] if followed else None),
        )
        return job
