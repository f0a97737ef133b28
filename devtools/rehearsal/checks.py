"""The rehearsal's own checks around the runbook: credentials, hand-picked rows, the aftermath of
the recovery in the database and at the mocks, and the service's log."""

from __future__ import annotations

import math

import requests

from devtools.rehearsal.common import BATCH_CAP, RETRY_PATH, VIEWER_EMAIL
from devtools.rehearsal.expected import Expected, Progress
from devtools.rehearsal.report import Report
from devtools.rehearsal.world import World


class Checks:
    def __init__(self, world: World, expected: Expected, progress: Progress, report: Report) -> None:
        self.world = world
        self.expected = expected
        self.progress = progress
        self.report = report

    def auth(self) -> None:
        """No credentials: 401 with the request id echoed; a viewer's session (regression): 403."""
        r, w = self.report, self.world
        rid = f"rehearsal-{w.incident.name}-noauth"
        anonymous = requests.post(
            w.service.url + RETRY_PATH,
            json={"since": self.expected.data["since"]},
            headers={"X-Request-ID": rid},
            timeout=30,
        )
        r.check(
            "no credentials -> 401 (JSON, request id echoed)",
            (401, rid),
            (anonymous.status_code, anonymous.headers.get("X-Request-ID")),
        )
        self.progress.request_ids.append(rid)
        viewer_cookie = w.sign_in(VIEWER_EMAIL) if w.incident.name == "regression" else None
        if viewer_cookie:
            viewer = requests.post(
                w.service.url + RETRY_PATH,
                json={"since": self.expected.data["since"]},
                cookies={"session": viewer_cookie},
                timeout=30,
            )
            r.check("viewer session -> 403", 403, viewer.status_code)

    def hand_picked(self, response_body: dict, label: str) -> None:
        picked = self.expected.data["hand_picked"]
        got = {s["execution_uuid"]: s["reason"] for s in response_body.get("skipped", [])}
        want = dict(zip(picked["execution_uuids"], picked["reasons"], strict=True))
        self.report.check(f"{label}: reasons of hand-picked rows", want, {u: got.get(u) for u in want})

    def hand_picked_directly(self) -> None:
        """The hand-picked dry run, for a runbook that shows none."""
        if "hand_picked" not in self.expected.data:
            return
        uuids = self.expected.data["hand_picked"]["execution_uuids"]
        response = self.world.post_retry({"execution_uuids": uuids, "dry_run": True})
        self.report.check("hand-picked dry run answers 200", 200, response.status_code)
        if response.status_code == 200:
            self.hand_picked(response.json(), "hand-picked dry run")

    def recovery(self) -> None:
        """After the drain: history, projects, statuses and notifications in the database, and what
        reached the mock CRM and the SMTP sink."""
        r, w = self.report, self.world
        t = self.expected.totals()
        eligible = t["eligible"]
        history = w.sql(
            "SELECT COUNT(*), COUNT(DISTINCT execution_id), COUNT(DISTINCT batch_id) FROM or_workflow_history "
            "WHERE action = 'WORKFLOW_HISTORY_ACTION_REPLAYED'"
        )[0]
        r.check("verify: one REPLAYED history row per replay", (eligible, eligible), tuple(history[:2]))
        r.check("verify: history rows carry the execute calls' batch ids", math.ceil(eligible / BATCH_CAP), history[2])
        projects = w.sql(
            "SELECT COUNT(*) FROM or_projects p JOIN or_workflow_history h ON h.execution_id = p.execution_id "
            "AND h.action = 'WORKFLOW_HISTORY_ACTION_REPLAYED'"
        )[0][0]
        r.check("verify: a project for every replayed execution", eligible, projects)
        total_projects = w.scalar("SELECT COUNT(*) FROM or_projects")
        r.check("verify: no duplicate projects (total)", t["projects_before"] + eligible, total_projects)
        status = dict(
            w.sql(
                "SELECT e.status_code, COUNT(*) FROM or_ramp_executions e JOIN or_workflow_history h "
                "ON h.execution_id = e.id AND h.action = 'WORKFLOW_HISTORY_ACTION_REPLAYED' GROUP BY 1"
            )
        )
        r.check("verify: replayed executions are SUCCESS", {"SUCCESS": eligible}, status)
        notes = dict(
            w.sql(
                "SELECT n.channel || ':' || n.status, COUNT(*) FROM or_notification_outbox n JOIN or_workflow_history h "
                "ON h.execution_id = n.execution_id AND h.action = 'WORKFLOW_HISTORY_ACTION_REPLAYED' GROUP BY 1"
            )
        )
        status_word = "suppressed" if w.incident.suppress else "delivered"
        want_notes = {f"webhook:{status_word}": t["webhooks"], f"email:{status_word}": t["emails"]}
        r.check(f"verify: replay notifications {status_word}", want_notes, notes)
        # Deliveries run inside the execute calls, which have all returned, and the mocks record a
        # message before they answer it: whatever was sent has arrived.
        received = w.crm.snapshot()["counts"]
        if w.incident.suppress:
            r.check("verify: nothing reached the mock CRM (webhooks)", 0, received["webhooks"])
            r.check("verify: nothing reached the SMTP sink", 0, w.sink.count())
        else:
            r.check(
                "verify: mock CRM got one signed PROJECT_CREATED per replay",
                (t["webhooks"], t["webhooks"]),
                (received["webhooks"], received["webhooks_signature_valid"]),
            )
            r.check("verify: SMTP sink got one email per replay", t["emails"], w.sink.count())
        r.check("verify: CRM record fetches by replays of fetching versions", t["fetches"], received["fetches"])

    def logs(self) -> None:
        """JSON lines with request ids, the ids the rehearsal sent, one summary line per batch."""
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
        summaries = [line for line in app_lines if line.get("event") == "retry_batch.summary"]
        batch_ids = {str(b.get("batch_id")) for b in self.progress.batches}
        r.check(
            "logs: one retry_batch.summary line per retry-batch call",
            len(batch_ids),
            len({s.get("batch_id") for s in summaries} & batch_ids),
        )
