"""The walk's SQL steps: each of the runbook's queries runs on the scratch database as written
(placeholders filled in), and its rows are compared with what the walk has done so far."""

from __future__ import annotations

import psycopg2

from devtools.rehearsal.common import RehearsalError


class SqlSteps:
    def query(self, cmd, text) -> list[tuple]:
        self.mark(cmd)
        try:
            return self.world.sql(text)
        except psycopg2.Error as exc:
            raise RehearsalError(f"{type(exc).__name__}: {exc}".strip()) from exc

    def step_sql(self, cmd, text, **_):
        try:
            rows = self.query(cmd, text)
        except RehearsalError as exc:
            self.report.check(self.label(cmd, "SQL"), "runs", str(exc), False)
            return None
        self.report.check(
            self.label(cmd, f"SQL `{' '.join(cmd.text.split())[:40]}...`"), "runs", f"{len(rows)} row(s)", True
        )
        return rows

    def step_blast_sql(self, cmd, text, **_):
        rows = self.query(cmd, text)
        ramp_uuid = dict(self.world.sql("SELECT id, uuid::text FROM or_ramps"))
        got = sorted(
            ({"vendor_id": int(v), "ramp_uuid": ramp_uuid[int(rid)], "count": int(n)} for n, v, rid in rows),
            key=lambda x: (x["vendor_id"], x["ramp_uuid"]),
        )
        want = self.expected.blast_radius()
        total_got, total_want = sum(g["count"] for g in got), sum(w["count"] for w in want)
        self.report.check(
            self.label(cmd, "blast radius (SQL as written)"),
            f"{len(want)} groups, {total_want} ERROR rows",
            f"{len(got)} groups, {total_got} ERROR rows",
            got == want,
        )
        return rows

    def step_workers_sql(self, cmd, text, *, lanes: int, **_):
        rows = self.query(cmd, text)
        self.report.check(self.label(cmd, "live worker lanes (SQL)"), lanes, rows[0][0] if rows else None)
        return rows

    def step_job_history_sql(self, cmd, text, **_):
        rows = self.query(cmd, text)
        p = self.progress.job(self.world.values["job_id"])["progress"]
        want = {k: p[k] for k in ("success", "error") if p.get(k)}
        got = {str(outcome): int(n) for outcome, n in rows}
        self.report.check(self.label(cmd, "the job's history rows by outcome = its progress"), want, got)
        return rows

    def step_batch_history_sql(self, cmd, text, **_):
        rows = self.query(cmd, text)
        summary = (self.progress.last_batch or {}).get("summary", {})
        want = {k: summary[k] for k in ("success", "error") if summary.get(k)}
        got = {str(outcome): int(n) for outcome, n in rows}
        self.report.check(self.label(cmd, "the call's history rows by outcome"), want, got)
        return rows

    def step_outbox_sql(self, cmd, text, **_):
        self.world.wait_for_deliveries()
        rows = self.query(cmd, text)
        job = self.progress.job(self.world.values["job_id"])
        status = "suppressed" if (job.get("request") or {}).get("suppress_notifications") else "delivered"
        success = job["progress"]["success"]
        want = {f"webhook:{status}": success, f"email:{status}": success} if success else {}
        got = {f"{channel}:{state}": int(n) for channel, state, n in rows}
        self.report.check(self.label(cmd, f"the job's notifications ({status})"), want, got)
        return rows

    def step_projects_sql(self, cmd, text, **_):
        rows = self.query(cmd, text)
        totals = self.expected.totals()
        before = totals["projects_in_window_before" if "created_at >=" in text else "projects_before"]
        self.report.check(
            self.label(cmd, "projects (SQL as written)"),
            before + self.progress.successes,
            rows[0][0] if rows else None,
        )
        return rows

    def step_job_events_sql(self, cmd, text, **_):
        rows = self.query(cmd, text)
        job_id = self.world.values["job_id"]
        # "started" is the engine's: a job paused before a worker took it has none.
        want = [(event, reason) for event, reason in self.progress.job_moves.get(job_id, [])]
        got = [(str(event), reason) for _, event, _, reason in rows if event != "started"]
        self.report.check(self.label(cmd, "the job's events and reasons"), want, got)
        people = {event: actor for _, event, actor, _ in rows}
        key = f"api_key:{self.world.key_name}"
        moved_by = {e: people.get(e) for e, _ in want if e in ("created", "paused", "resumed", "cancelled")}
        self.report.check(self.label(cmd, "the job's moves name the API key"), dict.fromkeys(moved_by, key), moved_by)
        return rows

    def step_dismiss_sql(self, cmd, text, **_):
        rows = self.query(cmd, text)
        dismissed = sorted((self.progress.dismissals[-1] if self.progress.dismissals else {}).get("dismissed", []))
        want = [(u, "DISMISSED", self.world.key_name, self.progress.dismiss_reason) for u in dismissed]
        got = sorted((str(u), status, actor, reason) for u, status, actor, reason in rows)
        self.report.check(self.label(cmd, "one DISMISSED history row each, with actor and reason"), want, got)
        return rows

    def step_patch_sql(self, cmd, text, **_):
        rows = self.query(cmd, text)
        patch = self.progress.patch or {}
        want = [(patch.get("uuid"), "SUCCESS", patch.get("patch"), patch.get("before"))]
        got = [(str(u), status, p, before) for u, status, p, before in rows]
        self.report.check(self.label(cmd, "the patched replay's history row keeps patch and payload before"), want, got)
        return rows
