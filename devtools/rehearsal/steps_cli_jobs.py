"""The walk's command-line client steps for retry jobs (`python -m devtools.onramp jobs list |
show | pause | resume | cancel`): each runs the runbook's command as printed and checks what it
prints, and what the API shows afterwards, against the job as the API answers it."""

from __future__ import annotations

import time

from devtools.rehearsal import client_output as out
from devtools.rehearsal.common import JOBS_PATH
from devtools.rehearsal.shell import flag_value
from devtools.rehearsal.steps_jobs import AFTER_MOVE, EVENT_OF_MOVE

# What `jobs show --json` must share with the API's answer (the rate and ETA move between two calls).
SHOWN = ("job_id", "state", "state_reason", "progress", "recent_errors", "request", "plan_token")


class ClientJobSteps:
    def step_cli_job_show(self, cmd, text, **_):
        r = self.report
        job_id = self.world.values["job_id"]
        label = self.label(cmd, f"client jobs show {job_id[:8]}")
        shown = self.client(cmd, text, json_out=True).body
        job = self.world.get_job(job_id)
        r.check(f"{label} --json: the API's job", {k: job.get(k) for k in SHOWN}, {k: shown.get(k) for k in SHOWN})
        human = self.client(cmd, text)
        lines = out.details(human.stdout)
        p = job["progress"]
        state = job["state"] + (f" ({job['state_reason']})" if job.get("state_reason") else "")
        errors = out.table_after(human.stdout, "Recent failed replays") or []
        r.check(
            f"{label}: exit 0; its job, state (with the reason), progress and recent failed replays",
            (
                job_id,
                state,
                f"{p['done']}/{p['total']} done ({out.counts(p)}), {p['remaining']} remaining",
                [e["execution_uuid"] for e in job.get("recent_errors", [])],
            ),
            (lines.get("job"), lines.get("state"), lines.get("progress"), [row.get("execution") for row in errors]),
        )
        return job

    def step_cli_job_list(self, cmd, text, *, state: str, **_):
        job_id = self.world.values["job_id"]
        human = self.client(cmd, text)
        found = out.tables(human.stdout)
        rows = found[0] if found else []
        wanted = flag_value(text, "--state")
        listed = self.world.api_get(JOBS_PATH, {"state": wanted} if wanted else None)["jobs"]
        self.report.check(
            self.label(cmd, f"client jobs list of {state} jobs: ours, only {state} ones, as the API lists them"),
            (True, {state}, [j["job_id"] for j in listed]),
            (
                job_id in [row.get("job") for row in rows],
                {row.get("state") for row in rows},
                [row.get("job") for row in rows],
            ),
        )
        return rows

    def step_cli_job_pause(self, cmd, text, **_):
        return self.client_move(cmd, text, "pause")

    def step_cli_job_resume(self, cmd, text, *, goes_on: bool = False, **_):
        """`goes_on`: the job must also replay again (its `done` grows) once resumed."""
        before = self.world.get_job(self.world.values["job_id"])["progress"]["done"]
        job = self.client_move(cmd, text, "resume")
        if goes_on:
            deadline = time.monotonic() + 30
            while job["state"] != "completed" and job["progress"]["done"] <= before and time.monotonic() < deadline:
                time.sleep(0.3)
                job = self.world.get_job(job["job_id"])
            self.report.check(
                self.label(cmd, "client jobs resume: the job replays again"),
                True,
                job["progress"]["done"] > before,
            )
            self.progress.jobs[job["job_id"]] = job
        return job

    def step_cli_job_cancel(self, cmd, text, **_):
        was = self.world.get_job(self.world.values["job_id"])["state"]
        return self.cancelled(self.client_move(cmd, text, "cancel"), was)

    def client_move(self, cmd, text, action: str) -> dict:
        job_id = self.world.values["job_id"]
        reason = flag_value(text, "--reason")
        human = self.client(cmd, text)
        said = out.line_matching(human.stdout, rf"^Job {job_id} is now (\w+)\.$")
        job = self.world.get_job(job_id)
        state = job.get("state")
        self.report.check(
            self.label(cmd, f"client jobs {action}: exit 0, the new state, and the API shows it with the reason"),
            (True, True, reason),
            (
                bool(said) and said.group(1) in AFTER_MOVE[action],
                state in AFTER_MOVE[action],
                reason if state == "completed" else job.get("state_reason"),
            ),
        )
        self.progress.jobs[job_id] = job
        self.progress.job_moves.setdefault(job_id, []).append((EVENT_OF_MOVE[action], reason))
        return job
