"""The walk's retry-job steps (curl): start a job from the plan (and re-send it with its
Idempotency-Key), watch it until it stops, pause, resume, cancel, and list jobs by state."""

from __future__ import annotations

import time

from devtools.rehearsal.common import RehearsalError
from devtools.rehearsal.shell import curl_parts

ACTIVE = ("queued", "running")
FINISHED = ("completed", "cancelled", "failed")
# What each move answers with: the job as it is right after the move (a resumed job may already
# have been picked up by a worker, or even have finished).
AFTER_MOVE = {"pause": {"paused"}, "resume": {"queued", "running", "completed"}, "cancel": {"cancelled"}}
EVENT_OF_MOVE = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


class JobSteps:
    def step_job_create(self, cmd, text, *, pace: float, suppress: bool, **_):
        _, _, printed = curl_parts(text)
        plan = self.progress.plan
        if not isinstance(printed, dict) or "plan_token" not in printed or not plan:
            raise RehearsalError("the runbook's job is not started from a preview's plan_token")
        label = self.label(cmd, "start the job from the plan")
        if self.incident.suppress:
            # A mass recovery after a regression: the runbook's job must suppress, whatever the plan says.
            self.report.check(f"{label}: sends suppress_notifications", True, printed.get("suppress_notifications"))
        # The runbook's pace is a production one; the rehearsal's jobs run faster.
        changes = {"max_replays_per_second": pace, "suppress_notifications": suppress}
        job = self.call(cmd, text, changes, status=202).body
        request = job.get("request") or {}
        self.report.check(
            f"{label}: 202, state / total / plan / suppression / pace",
            (True, plan["eligible"], plan["token"], suppress, pace),
            (
                job.get("state") in ACTIVE,
                job.get("progress", {}).get("total"),
                request.get("plan_token"),
                request.get("suppress_notifications"),
                job.get("max_replays_per_second"),
            ),
        )
        job_id = str(job.get("job_id"))
        again = self.call(cmd, text, changes, status=(200, 202))
        self.report.check(
            f"{label}: sent again (same Idempotency-Key) -> the same job, 200",
            (200, job_id),
            (again.http_status, again.body.get("job_id")),
        )
        self.register_job(job)
        return job

    def register_job(self, job: dict) -> None:
        """A job the story started: the one later steps (`<job_id>`) are about."""
        job_id = str(job.get("job_id"))
        self.world.values["job_id"] = job_id
        self.progress.jobs[job_id] = job
        self.progress.job_order.append(job_id)
        self.progress.job_moves[job_id] = [("created", None)]

    def step_job_get(self, cmd, text, *, during=None, timeout: float = 150, expect_rate: bool = False, **_):
        """Watch the job as the runbook says, until it is no longer queued or running; the last answer."""
        samples: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            job = self.call(cmd, text).body
            samples.append(job)
            if during is not None:
                during(job)
            if job.get("state") not in ACTIVE:
                break
            if time.monotonic() > deadline:
                raise RehearsalError(f"the job is still {job.get('state')} after {timeout:g}s: {job.get('progress')}")
            time.sleep(0.3)
        label = self.label(cmd, "watch the job")
        self.report.check(
            f"{label}: {len(samples)} answers, progress adds up and only grows",
            True,
            _consistent(samples),
        )
        if expect_rate:
            self.report.check(
                f"{label}: while running it shows rate_per_second and eta_seconds",
                True,
                any(
                    j["state"] == "running" and j.get("rate_per_second", 0) > 0 and j.get("eta_seconds") is not None
                    for j in samples
                ),
            )
        last = samples[-1]
        job_id = str(last.get("job_id"))
        self.progress.jobs[job_id] = last
        if last["state"] == "halted":
            self.progress.job_moves[job_id].append(("halted", last.get("state_reason")))
        elif last["state"] in FINISHED:
            if last["state"] == "completed":
                self.progress.job_moves[job_id].append(("completed", None))
            self.job_finished(last)
        return last

    def job_finished(self, job: dict) -> None:
        """A job's rows are final: count its replays."""
        p = job.get("progress", {})
        if p.get("skipped"):
            # Rows that became ineligible while the job ran: none of the stories expects any.
            self.report.check(self.label_job(job, "rows skipped at their turn"), 0, p.get("skipped"))
        self.progress.replayed(
            "eligible",
            p.get("success", 0),
            p.get("error", 0),
            suppressed=bool((job.get("request") or {}).get("suppress_notifications")),
        )

    def label_job(self, job: dict, what: str) -> str:
        return f"job {str(job.get('job_id'))[:8]}: {what}"

    def step_job_pause(self, cmd, text, **_):
        return self.move(cmd, text, "pause")

    def step_job_resume(self, cmd, text, **_):
        return self.move(cmd, text, "resume")

    def step_job_cancel(self, cmd, text, **_):
        was = self.world.get_job(self.world.values["job_id"])["state"]
        return self.cancelled(self.move(cmd, text, "cancel"), was)

    def cancelled(self, job: dict, was: str) -> dict:
        """The cancelled job, its rows final: a job cancelled while it ran is looked at again once
        the replays under way at the cancel have finished."""
        if was in ACTIVE:
            job = self.hold_still("cancelled")
            self.progress.jobs[str(job.get("job_id"))] = job
        self.job_finished(job)
        return job

    def move(self, cmd, text, action: str) -> dict:
        _, _, printed = curl_parts(text)
        reason = (printed or {}).get("reason")
        job = self.call(cmd, text).body
        state = job.get("state")
        self.report.check(
            self.label(cmd, f"{action}: state, and the reason as state_reason"),
            (True, reason),
            (state in AFTER_MOVE[action], reason if state == "completed" else job.get("state_reason")),
        )
        job_id = str(job.get("job_id"))
        self.progress.jobs[job_id] = job
        self.progress.job_moves.setdefault(job_id, []).append((EVENT_OF_MOVE[action], reason))
        return job

    def hold_still(self, what: str, seconds: float = 2.0) -> dict:
        """The job replays nothing more: its progress is the same `seconds` apart (the first look
        after the 2 seconds within which a pause takes effect)."""
        job_id = self.world.values["job_id"]
        time.sleep(1.0)  # the replays under way when the job stopped finish
        first = self.world.get_job(job_id)
        time.sleep(seconds)
        second = self.world.get_job(job_id)
        self.report.check(
            f"job {job_id[:8]}: {what}, replays nothing more ({seconds:g} s apart)",
            (first["state"], first["progress"]["done"]),
            (second["state"], second["progress"]["done"]),
        )
        return second

    def step_job_list(self, cmd, text, *, state: str, **_):
        body = self.call(cmd, text).body
        jobs = body.get("jobs", [])
        self.report.check(
            self.label(cmd, f"list {state} jobs: ours is there, and only {state} ones"),
            (True, {state}),
            (self.world.values.get("job_id") in [j.get("job_id") for j in jobs], {j.get("state") for j in jobs}),
        )
        return body


def _consistent(samples: list[dict]) -> bool:
    done_before = 0
    for job in samples:
        p = job.get("progress", {})
        if p.get("done") != p.get("success", 0) + p.get("error", 0) + p.get("skipped", 0):
            return False
        if p.get("remaining") != p.get("total", 0) - p.get("done", 0) or p.get("done", 0) < done_before:
            return False
        if job.get("state") != "running" and job.get("eta_seconds") is not None:
            return False
        done_before = p.get("done", 0)
    return True
