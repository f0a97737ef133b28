"""The two incidents a rehearsal walks through: what each one is (scenario, expected numbers, how
the runbook's calls are adapted to it) and its story around the runbook."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devtools.mocks import triggers
from devtools.rehearsal.checks import Checks
from devtools.rehearsal.common import SCENARIOS_DIR
from devtools.rehearsal.expected import Expected, Progress
from devtools.rehearsal.report import Report
from devtools.rehearsal.runbook import Command
from devtools.rehearsal.walk import RunbookWalk, shows_hand_picked
from devtools.rehearsal.world import World


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
    """One incident: its world (setup, teardown), the runbook walk in it and the checks around it."""

    def __init__(
        self, incident: Incident, report: Report, runbook: list[Command], args, workdir: Path, crm, sink, oidc
    ):
        self.incident = incident
        self.report = report
        self.runbook = runbook
        self.world = World(incident, report, runbook, args, workdir, crm, sink, oidc)
        self.expected = Expected(incident.expected)
        self.progress = Progress()
        self.checks = Checks(self.world, self.expected, self.progress, report)
        self.walk = RunbookWalk(self.world, self.expected, self.progress, report, self.checks)

    @property
    def service(self):
        return self.world.service

    def setup(self) -> None:
        self.world.setup()

    def teardown(self) -> None:
        self.world.teardown()

    def run(self) -> None:
        raise NotImplementedError


class RegressionRehearsal(Rehearsal):
    def run(self) -> None:
        self.checks.auth()
        self.walk.walk(self.runbook)
        if not any(shows_hand_picked(c) for c in self.runbook):
            self.checks.hand_picked_directly()
        # A repeat of the dry run after recovery: only the intentionally skipped rows remain.
        if self.progress.executed:
            data = self.expected.data
            response = self.world.post_retry(
                {"since": data["since"], "error_pattern": data["error_pattern"], "dry_run": True}, auth="cookie"
            )
            summary = (response.json() if response.status_code == 200 else {}).get("summary", {})
            self.report.check(
                "after recovery: nothing eligible, only intentional skips",
                (0, sum(data["skipped_by_reason"].values())),
                (summary.get("eligible"), summary.get("matched")),
            )
        self.checks.logs()


class OutageRehearsal(Rehearsal):
    # (CRM mode, triggers fired in it, the error type each run must end with)
    LIVE = (
        ("503", 6, "IntegrationConnectionError"),
        ("429", 2, "RateLimitError"),
        ("timeout", 1, "ModuleTimeoutError"),
    )

    def run(self) -> None:
        self.checks.auth()
        self.crm_goes_down()
        self.crm_comes_back()
        self.walk.walk(self.runbook)
        self.checks.logs()

    def crm_goes_down(self) -> None:
        """Fresh signed triggers fail in fetch_crm_record with integration errors."""
        r, w, expected = self.report, self.world, self.expected
        expected.live_ramp, secret = triggers.ramp_from_scenario(str(self.incident.scenario))
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
                expected.live_count += 1
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
        """The runbook's commands then drain the backlog with suppression off: these runs never
        notified anyone, so the PROJECT_CREATED webhooks and emails are owed."""
        w = self.world
        requests.post(w.crm.url + "/_control", json={"mode": "ok"}, timeout=5)
        w.crm.reset()
        w.sink.clear()
        self.report.check("mock CRM back to ok", "ok", w.crm.mode)


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
