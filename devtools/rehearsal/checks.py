"""The rehearsal's own checks around the runbook: credentials, what reached the mocks, the
aftermath of the whole recovery in the database, the window after it, and the logs."""

from __future__ import annotations

import requests

from devtools.rehearsal.common import JOBS_PATH, RETRY_PATH, SUMMARY_PATH, VIEWER_EMAIL
from devtools.rehearsal.expected import Expected, Progress
from devtools.rehearsal.report import Report
from devtools.rehearsal.world import World

REPLAYED = "WORKFLOW_HISTORY_ACTION_REPLAYED"


class Checks:
    def __init__(self, world: World, expected: Expected, progress: Progress, report: Report) -> None:
        self.world = world
        self.expected = expected
        self.progress = progress
        self.report = report

    def auth(self) -> None:
        """No credentials: 401 with the request id echoed. A viewer's session (regression) may read
        the summary and jobs but not act: 403."""
        r, w = self.report, self.world
        rid = f"rehearsal-{w.incident.name}-noauth"
        since = self.expected.data["since"]
        anonymous = requests.post(
            w.service.url + RETRY_PATH, json={"since": since}, headers={"X-Request-ID": rid}, timeout=30
        )
        r.check(
            "no credentials -> 401 (JSON, request id echoed)",
            (401, rid),
            (anonymous.status_code, anonymous.headers.get("X-Request-ID")),
        )
        self.progress.request_ids.append(rid)
        viewer_cookie = w.sign_in(VIEWER_EMAIL) if w.incident.name == "regression" else None
        if viewer_cookie:
            cookies = {"session": viewer_cookie}
            replay = requests.post(w.service.url + RETRY_PATH, json={"since": since}, cookies=cookies, timeout=30)
            job = requests.post(w.service.url + JOBS_PATH, json={"since": since}, cookies=cookies, timeout=30)
            summary = requests.get(w.service.url + SUMMARY_PATH, params={"since": since}, cookies=cookies, timeout=30)
            jobs = requests.get(w.service.url + JOBS_PATH, cookies=cookies, timeout=30)
            r.check(
                "viewer session: retry-batch, retry-jobs -> 403; summary, job list -> 200",
                (403, 403, 200, 200),
                (replay.status_code, job.status_code, summary.status_code, jobs.status_code),
            )

    def nothing_sent(self, when: str) -> None:
        """Suppressed replays reach neither the mock CRM nor the SMTP sink."""
        received = self.world.crm.snapshot()["counts"]
        self.report.check(f"{when}: nothing reached the mock CRM (webhooks)", 0, received["webhooks"])
        self.report.check(f"{when}: nothing reached the SMTP sink", 0, self.world.sink.count())

    def sent(self, when: str, n: int) -> None:
        """One signed PROJECT_CREATED webhook and one email per replay whose notifications are owed."""
        self.world.wait_for_deliveries()
        received = self.world.crm.snapshot()["counts"]
        self.report.check(
            f"{when}: mock CRM got one signed PROJECT_CREATED per replay",
            (n, n),
            (received["webhooks"], received["webhooks_signature_valid"]),
        )
        self.report.check(f"{when}: SMTP sink got one email per replay", n, self.world.sink.count())

    def client_quiet(self) -> None:
        """Nothing the command-line client printed, tables, progress lines and errors alike, shows
        a credential it was given (the API key, its secret) or the session cookie."""
        printed = "\n".join(self.progress.client_output)
        values = {name: self.world.values.get(name) for name in ("api_key", "api_secret", "cookie")}
        shown = sorted(name for name, value in values.items() if value and value in printed)
        self.report.check(
            f"client: nothing it printed ({len(self.progress.client_output)} runs) shows a credential",
            (True, []),
            (bool(self.progress.client_output), shown),
        )

    def recovery(self) -> None:
        """After everything: history, projects, statuses and notifications in the database, and what
        reached the mocks, against every replay the walk made."""
        r, w, p = self.report, self.world, self.progress
        totals = self.expected.totals()
        history = w.scalar(f"SELECT COUNT(*) FROM or_workflow_history WHERE action = '{REPLAYED}'")
        r.check("verify: one REPLAYED history row per replay attempt", p.replays, history)
        replayed = f"SELECT execution_id FROM or_workflow_history WHERE action = '{REPLAYED}'"
        status = dict(
            w.sql(f"SELECT status_code, COUNT(*) FROM or_ramp_executions WHERE id IN ({replayed}) GROUP BY 1")
        )
        r.check("verify: replayed executions are SUCCESS", {"SUCCESS": p.successes}, status)
        projects = w.scalar(f"SELECT COUNT(*) FROM or_projects WHERE execution_id IN ({replayed})")
        r.check("verify: a project for every replayed execution", p.successes, projects)
        total_projects = w.scalar("SELECT COUNT(*) FROM or_projects")
        r.check("verify: no duplicate projects (total)", totals["projects_before"] + p.successes, total_projects)
        w.wait_for_deliveries()
        notes = dict(
            w.sql(
                "SELECT channel || ':' || status, COUNT(*) FROM or_notification_outbox "
                f"WHERE execution_id IN ({replayed}) GROUP BY 1"
            )
        )
        want = {
            f"{channel}:{state}": n
            for state, n in (("suppressed", p.suppressed), ("delivered", p.delivered))
            if n
            for channel in ("email", "webhook")
        }
        r.check("verify: replay notifications suppressed / delivered", want, notes)
        received = w.crm.snapshot()["counts"]
        r.check(
            "verify: the mock CRM and the SMTP sink got exactly the delivered ones",
            (p.delivered, p.delivered, p.delivered),
            (received["webhooks"], received["webhooks_signature_valid"], w.sink.count()),
        )
        # A replay that a killed worker had under way fetched its record and then rolled back; the
        # replay that took the row over fetched it again.
        extra = self.progress.cut_short
        r.check(
            "verify: CRM record fetches by replays of fetching versions"
            + (f" (+ up to {extra} cut short by a killed worker)" if extra else ""),
            f"{totals['fetches']}..{totals['fetches'] + extra}",
            received["fetches"],
            totals["fetches"] <= received["fetches"] <= totals["fetches"] + extra,
        )

    def window_after(self) -> None:
        """A last preview of the incident's window: nothing eligible, and the counts are what the
        walk's replays and dismissals left."""
        data = self.expected.data
        body = {"since": data["since"], "dry_run": True}
        if data.get("error_pattern"):
            body["error_pattern"] = data["error_pattern"]
        response = self.world.post_retry(body, auth="cookie")
        summary = (response.json() if response.status_code == 200 else {}).get("summary", {})
        want = self.expected.scope(self.progress)
        self.report.check(
            "after recovery: the window's matched / eligible / skip reasons",
            (want["matched"], 0, want["skipped_by_reason"]),
            (
                summary.get("matched"),
                summary.get("eligible"),
                {k: v for k, v in (summary.get("skipped_by_reason") or {}).items() if v},
            ),
        )

    def logs(self) -> None:
        """JSON lines with request ids, the ids the rehearsal sent, one summary line per call, and
        the workers' job lines."""
        lines = self.world.service.log_lines()
        app_lines = [line for line in lines if "logger" in line]
        r = self.report
        r.check(
            "logs: app lines are JSON with a request_id key",
            True,
            bool(app_lines) and all("request_id" in line for line in app_lines),
        )
        for rid in self.progress.request_ids:
            r.check(
                f"logs: request id {rid} is in the service log",
                True,
                any(line.get("request_id") == rid for line in app_lines),
            )
        for event, calls in (
            ("retry_batch.summary", self.progress.batches),
            ("dismiss_batch.summary", self.progress.dismissals),
        ):
            batch_ids = {str(b.get("batch_id")) for b in calls}
            logged = {s.get("batch_id") for s in app_lines if s.get("event") == event}
            r.check(f"logs: one {event} line per call", len(batch_ids), len(logged & batch_ids))
        moves = [
            (line.get("job_id"), line.get("action"))
            for worker in self.world.workers
            for line in worker.records(event="retry_job.state")
        ]
        for job_id in self.progress.job_order:
            wanted = [e for e, _ in self.progress.job_moves[job_id] if e in ("halted", "completed")]
            if wanted:
                r.check(
                    f"logs: the workers logged job {job_id[:8]} {' and '.join(wanted)}",
                    sorted(wanted),
                    sorted(a for j, a in moves if j == job_id and a in wanted),
                )
