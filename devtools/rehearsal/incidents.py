"""The two incidents a rehearsal walks through: what each one is (scenario, expected numbers, how
the runbook's calls are adapted to it) and its story, told with the runbook's own commands, the
curl ones and the command-line client's.

regression: size the damage and preview (curl and client), start a job from the client's plan,
  pause it, look at it with the client, resume it, cancel it; preview again with the client and
  drain its plan with the client while a worker is killed mid-job, to completion; verify; a few
  hand-picked rows through retry-batch with a plan; dismiss; a payload patch.
outage: the CRM is down and fresh triggers fail; a drain started too early halts by its brake
  (the client exits 1); the client lists and shows the halted job; the CRM comes back; resume;
  the CRM flaps: pause and cancel with the client; a new job from a fresh preview completes; the
  rows the first job failed are replayed by hand."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devtools.mocks import triggers
from devtools.rehearsal.checks import Checks
from devtools.rehearsal.common import (
    GENTLE_PACE,
    OUTAGE_PACE,
    REGRESSION_PACE,
    SCENARIOS_DIR,
    WORKER_CONCURRENCY,
    WORKERS,
)
from devtools.rehearsal.expected import Expected, Progress
from devtools.rehearsal.report import Report
from devtools.rehearsal.runbook import Command
from devtools.rehearsal.walk import RunbookWalk
from devtools.rehearsal.world import World
from devtools.worker import LANES

BRAKE_REASON = re.compile(r"^(\d+) of the last (\d+) replays failed, limit (\d+) \((\d+)%\)$")


@dataclass
class Incident:
    name: str  # "regression" | "outage"
    scenario: Path
    expected: dict
    suppress: bool  # whether the mass replay suppresses its notifications
    pace: float  # max_replays_per_second of the rehearsal's jobs
    body_changes: dict[str, Any]  # how the runbook's window previews are adapted to this incident
    text_changes: dict[str, str] = field(default_factory=dict)  # literal text swaps (incident start)


class Rehearsal:
    """One incident: its world (setup, teardown), the runbook walk in it and the checks around it."""

    def __init__(
        self, incident: Incident, report: Report, runbook: list[Command], args, workdir: Path, crm, sink, oidc
    ):
        self.incident = incident
        self.report = report
        self.world = World(incident, report, runbook, args, workdir, crm, sink, oidc)
        self.expected = Expected(incident.expected)
        self.progress = Progress()
        self.checks = Checks(self.world, self.expected, self.progress, report)
        self.walk = RunbookWalk(self.world, self.expected, self.progress, report, self.checks, runbook)

    @property
    def service(self):
        return self.world.service

    def setup(self) -> None:
        self.world.setup()

    def teardown(self) -> None:
        self.walk.stop_background()
        self.world.teardown()

    def run(self) -> None:
        raise NotImplementedError

    def size_and_preview(self) -> None:
        """Size the damage and preview, with curl and with the client; the client's preview gives the
        plan the story goes on with."""
        w = self.walk
        w.run_prelude()
        w.run("workers_sql", lanes=WORKERS * LANES)
        w.run("summary")
        w.run("cli_summary")
        w.run("blast_sql")
        w.run("dry_run", every=True)
        w.run("cli_preview")

    def finish(self) -> None:
        self.walk.run_rest()
        self.checks.recovery()
        self.checks.window_after()
        self.checks.logs()
        self.checks.client_quiet()


class RegressionRehearsal(Rehearsal):
    def run(self) -> None:
        w, r, data = self.walk, self.report, self.expected.data
        self.checks.auth()
        self.size_and_preview()

        # Start a job gently from the client's plan, pause it to look at the first replays, resume it,
        # then cancel it to start over at a higher pace.
        first = w.run("job_create", pace=GENTLE_PACE, suppress=True)
        w.run("job_pause")
        w.hold_still("paused")
        w.run("cli_job_show")
        w.run("cli_job_resume", goes_on=True)
        w.run("job_cancel")
        w.run("job_events_sql")
        done_first = self.progress.job()["progress"]["success"] if first else 0

        # Start over: a fresh preview (the cancelled job's replays are no longer eligible) and its plan
        # drained with the client, which follows the job to the end although a worker is killed.
        w.run("cli_preview", again=True)
        drain = w.run("cli_drain", pace=self.incident.pace, suppress=True)
        killed: list[str] = []
        final = w.run("job_get", during=self.kill_a_worker_midway(killed), expect_rate=True) if drain else None
        w.end_drain(drain, "completed")
        if drain and final:
            p = final["progress"]
            r.check(
                "job completed; its total and the cancelled job's replays add up to the preview",
                ("completed", data["eligible"], p["total"], 0),
                (final["state"], done_first + p["total"], p["success"], p["error"]),
            )
            r.check("a worker was SIGKILLed mid-job; the other carried the job to the end", ["worker-1"], killed)
        w.run("job_history_sql")
        w.run("outbox_sql")
        w.run("projects_sql")
        self.checks.nothing_sent("verify (suppressed job)")

        # A few hand-picked rows: one more try for rows an earlier on-call replayed without luck.
        picked = data["hand_picked"]
        small = data["small_batch"]["execution_uuids"]
        reasons = dict(zip(picked["execution_uuids"], picked["reasons"], strict=True))
        uuids = [*picked["execution_uuids"], *small]
        w.run("hand_picked_dry", uuids=uuids, reasons=reasons, values={"execution_uuid": uuids[0]})
        w.run("plan_execute")
        w.run("batch_history_sql")

        # Deals deleted in the CRM: dismissed, never replayed.
        gone = data["dismiss"]
        one = {"execution_uuid": gone["execution_uuids"][0]}
        w.run("dismiss_dry", uuids=gone["execution_uuids"], values=one)
        w.run("dismiss_exec", uuids=gone["execution_uuids"], fate=gone["fate"], values=one)
        w.run("dismiss_sql")

        # A trigger without company.id: replayed with the id patched in; its notifications are owed.
        patch = data["patch"]
        w.run(
            "patch_dry",
            uuid=patch["execution_uuid"],
            payload=patch["payload"],
            values={"execution_uuid": patch["execution_uuid"]},
        )
        w.run("plan_execute")
        w.run("patch_sql")
        self.checks.sent("after the patched replay (not suppressed)", self.progress.delivered)
        self.finish()

    def kill_a_worker_midway(self, killed: list[str]):
        """SIGKILL one worker once the job is a third done: the other carries it to the end."""

        def during(job: dict) -> None:
            p = job.get("progress", {})
            if not killed and job.get("state") == "running" and p.get("done", 0) >= p.get("total", 0) // 3:
                worker = self.world.workers[0]
                worker.kill()
                killed.append(worker.name)
                self.progress.cut_short += WORKER_CONCURRENCY
                self.report.note(f"killed {worker.name} (SIGKILL) at {p.get('done')} of {p.get('total')} rows")

        return during


class OutageRehearsal(Rehearsal):
    # (CRM mode, triggers fired in it, the error type each run must end with)
    LIVE = (
        ("503", 6, "IntegrationConnectionError"),
        ("429", 2, "RateLimitError"),
        ("timeout", 1, "ModuleTimeoutError"),
    )

    def run(self) -> None:
        w, r = self.walk, self.report
        self.checks.auth()
        self.crm_goes_down()
        self.world.crm.set_mode("503")  # still down while the on-call starts replaying

        # Drained with the client while the CRM still answers 503, at the runbook's gentle pace: the
        # brake halts the job in its canary and the drain exits 1.
        self.size_and_preview()
        drain = w.run("cli_drain", pace=None, suppress=False)
        w.end_drain(drain, "halted")
        halted = w.run("job_get") if drain else None
        if halted:
            self.check_brake(halted)
            halted = w.hold_still("halted")
        w.run("job_list", state="halted")
        w.run("cli_job_list", state="halted")
        w.run("cli_job_show")

        # The CRM comes back: resume (another canary). It flaps again: pause, and cancel; a new job
        # from a fresh preview once it is stable.
        self.crm_comes_back()
        w.run("job_resume")
        w.run("cli_job_pause")
        w.hold_still("paused")
        first = w.run("cli_job_cancel")
        w.run("job_events_sql")
        w.run("dry_run", again=True)
        w.run("job_create", pace=self.incident.pace, suppress=False)
        final = w.run("job_get")
        if final and first and halted:
            p, q = final["progress"], first["progress"]
            r.check(
                "new job completed; with the cancelled job's, every row replayed once, only the canary failed",
                ("completed", self.expected.totals()["eligible"], halted["progress"]["error"], 0, 0),
                (final["state"], q["success"] + q["error"] + p["total"], q["error"], p["error"], p["skipped"]),
            )
        w.run("job_history_sql")
        w.run("outbox_sql")
        w.run("projects_sql")

        # The rows the first job failed while the CRM was down: one more try, by hand.
        failed = [e["execution_uuid"] for e in (first or {}).get("recent_errors", [])]
        r.check(
            "recent_errors names every row the cancelled job failed",
            (first or {}).get("progress", {}).get("error"),
            len(set(failed)),
        )
        w.run("hand_picked_dry", uuids=failed, reasons={}, values={"execution_uuid": failed[0] if failed else ""})
        w.run("plan_execute")
        w.run("batch_history_sql")
        self.checks.sent("after the outage", self.progress.delivered)
        self.finish()

    def check_brake(self, job: dict) -> None:
        r = self.report
        match = BRAKE_REASON.match(job.get("state_reason") or "")
        limit = int(job["halt_error_rate"] * job["halt_window"])
        r.check(
            "job started while the CRM answers 503: halted by the brake, in the canary",
            ("halted", True, True),
            (
                job.get("state"),
                bool(match) and int(match.group(1)) > limit and int(match.group(2)) <= job["halt_window"],
                bool(match)
                and (int(match.group(3)), int(match.group(4))) == (limit, round(job["halt_error_rate"] * 100)),
            ),
        )
        p = job["progress"]
        errors = {(e["error"]["type"], e["error"]["category"]) for e in job.get("recent_errors", [])}
        r.check(
            f"halted job: state_reason `{job.get('state_reason')}`; nothing succeeded; recent_errors say why",
            (0, True, {("IntegrationConnectionError", "integration")}),
            (p["success"], p["error"] > limit, errors),
        )

    def crm_goes_down(self) -> None:
        """Fresh signed triggers fail in fetch_crm_record with integration errors."""
        r, w, expected = self.report, self.world, self.expected
        expected.live_ramp, secret = triggers.ramp_from_scenario(str(self.incident.scenario))
        expected.live_vendor = next(
            ramp["vendor_id"]
            for ramp in json.loads(self.incident.scenario.read_text())["ramps"]
            if ramp["uuid"] == expected.live_ramp
        )
        stamp = time.strftime("%H%M%S")
        for mode, count, error_type in self.LIVE:
            control = requests.post(w.crm.url + "/_control", json={"mode": mode, "delay": 3}, timeout=5)
            r.check(f"mock CRM switched to {mode}", 200, control.status_code)
            for n in range(count):
                result = triggers.fire(
                    w.service.url,
                    expected.live_ramp,
                    secret,
                    f"deal-live-{stamp}-{mode}-{n}",
                    triggers.make_payload(n, f"{stamp}{mode}", "Live Customer", "owner@customer.example"),
                    timeout=30,
                )
                body = result.body if isinstance(result.body, dict) else {}
                error = body.get("error") or {}
                r.check(
                    f"trigger during CRM {mode} #{n + 1}: {triggers.describe(result)[:40]}",
                    (201, "ERROR", "integration", error_type),
                    (result.status, body.get("status"), error.get("category"), error.get("type")),
                )
                expected.live_by_type[error_type] += 1
        bad = triggers.fire(
            w.service.url,
            expected.live_ramp,
            secret,
            f"deal-live-{stamp}-forged",
            {"company": {"id": "x", "name": "Forged"}},
            bad_signature=True,
        )
        r.check("trigger with a forged signature is refused", 401, bad.status)
        failed = w.scalar(
            "SELECT COUNT(*) FROM or_ramp_executions WHERE status_code = 'ERROR' "
            f"AND last_error_category = 'integration' AND created_at >= '{expected.data['since']}'"
        )
        r.check(
            "SQL: ERROR rows with integration errors since the outage began",
            expected.data["eligible"] + expected.live_count,
            failed,
        )

    def crm_comes_back(self) -> None:
        """The CRM answers again (its control endpoint, as in the mock's README); what it received
        from now on is what the recovery sent."""
        w = self.world
        control = requests.post(w.crm.url + "/_control", json={"mode": "ok"}, timeout=5)
        w.crm.reset()
        w.sink.clear()
        self.report.check("mock CRM back to ok (POST /_control)", (200, "ok"), (control.status_code, w.crm.mode))


def build_incidents(names: list[str]) -> list[tuple[type[Rehearsal], Incident]]:
    def expected(name: str) -> dict:
        return json.loads((SCENARIOS_DIR / f"{name}.expected.json").read_text())

    regression_exp = expected("regression-incident")
    outage_exp = expected("crm-outage")
    table = {
        "regression": (
            RegressionRehearsal,
            Incident(
                "regression",
                SCENARIOS_DIR / "regression-incident.json",
                regression_exp,
                suppress=True,
                pace=REGRESSION_PACE,
                body_changes={},
            ),
        ),
        "outage": (
            OutageRehearsal,
            Incident(
                "outage",
                SCENARIOS_DIR / "crm-outage.json",
                outage_exp,
                # No suppression: these runs failed before `notify`, and the vendors' CRMs need the
                # PROJECT_CREATED webhooks.
                suppress=False,
                pace=OUTAGE_PACE,
                # The outage's own window, no error pattern (every integration error is owed a replay).
                body_changes={"since": outage_exp["since"], "until": None, "error_pattern": None},
                text_changes={regression_exp["since"]: outage_exp["since"]},
            ),
        ),
    }
    return [table[n] for n in names]
