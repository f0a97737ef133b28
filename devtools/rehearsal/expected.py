"""What an incident's rehearsal must find, and what it has done so far.

`Expected` reads the scenario's *.expected.json, plus the rows the rehearsal adds itself (the
outage's live triggers); `Progress` records what the walk has done (replays, jobs, plans, batches,
request ids), which is what later expectations depend on: a row the walk replayed or dismissed
has left the window's scope, a row a job failed now counts as `retry_limit_reached`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Progress:
    # Changes to the window's counts, by fate ("eligible" or a skip reason): a replayed or dismissed
    # row leaves the scope (its fate -1, `left_scope` +1); a failed replay moves a row from
    # "eligible" to "retry_limit_reached".
    shifts: Counter = field(default_factory=Counter)
    left_scope: int = 0
    replays: int = 0  # REPLAYED history rows (success + error)
    successes: int = 0
    delivered: int = 0  # successful replays whose notifications were sent (not suppressed)
    suppressed: int = 0
    batches: list[dict] = field(default_factory=list)  # every retry-batch response body, in order
    dismissals: list[dict] = field(default_factory=list)  # every dismiss-batch response body
    jobs: dict[str, dict] = field(default_factory=dict)  # job id -> the last answer about it
    job_order: list[str] = field(default_factory=list)
    job_moves: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)  # (event, reason)
    plan: dict | None = None  # the last preview: {"token", "eligible", "uuids", "suppress"}
    request_ids: list[str] = field(default_factory=list)  # X-Request-IDs the log must show
    last_batch: dict | None = None  # the last retry-batch or dismiss call that changed something
    dismiss_reason: str | None = None
    patch: dict | None = None  # {"uuid", "patch", "before"} of the patched replay
    cut_short: int = 0  # replays a killed worker may have had under way (rolled back, redone)
    summary: dict | None = None  # the last error-summary answer (curl)
    client_output: list[str] = field(default_factory=list)  # what every client command printed

    def replayed(self, fate: str, success: int, error: int, *, suppressed: bool) -> None:
        """`success` + `error` rows of `fate` were replayed."""
        self.replays += success + error
        self.successes += success
        if suppressed:
            self.suppressed += success
        else:
            self.delivered += success
        self.shifts[fate] -= success
        self.left_scope += success
        if error:
            self.shifts[fate] -= error
            self.shifts["retry_limit_reached"] += error

    def dismissed(self, fate: str, n: int) -> None:
        self.shifts[fate] -= n
        self.left_scope += n

    @property
    def untouched(self) -> bool:
        return self.replays == 0 and self.left_scope == 0

    def job(self, job_id: str | None = None) -> dict:
        return self.jobs[job_id or self.job_order[-1]]


class Expected:
    def __init__(self, data: dict) -> None:
        self.data = data
        # Live triggers the rehearsal fired on one ramp (the outage): ERROR rows the file lacks.
        self.live_ramp = ""
        self.live_vendor: int | None = None
        self.live_by_type: Counter = Counter()

    @property
    def live_count(self) -> int:
        return sum(self.live_by_type.values())

    def totals(self) -> dict[str, int]:
        """The scenario's fixed figures. Live triggers failed before any notify step; their
        replays fetch, create and notify."""
        e = self.data
        return {
            "eligible": e["eligible"] + self.live_count,
            "fetches": e["fetching_replays"] + self.live_count,
            "projects_before": e["projects_before"],
            "projects_in_window_before": e["projects_in_window_before"],
        }

    def blast_radius(self) -> list[dict]:
        groups = [dict(g) for g in self.data["blast_radius"]]
        for g in groups:
            if g["ramp_uuid"] == self.live_ramp:
                g["count"] += self.live_count
        return groups

    def summary(self) -> dict:
        """total / eligible / groups (vendor, ramp, error type) of the error summary, before any
        replay."""
        s = self.data["summary"]
        groups = {(g["vendor_id"], g["ramp_uuid"], g["error_type"]): dict(g) for g in s["groups"]}
        for error_type, n in self.live_by_type.items():
            key = (self.live_vendor, self.live_ramp, error_type)
            group = groups.setdefault(
                key, {"vendor_id": key[0], "ramp_uuid": key[1], "error_type": key[2], "count": 0, "eligible": 0}
            )
            group["count"] += n
            group["eligible"] += n
        return {
            "total": s["total"] + self.live_count,
            "eligible": s["eligible"] + self.live_count,
            "groups": sorted(groups.values(), key=lambda g: (g["vendor_id"], g["ramp_uuid"], g["error_type"])),
        }

    def scope(self, progress: Progress) -> dict:
        """matched / eligible / skipped_by_reason the incident's window shows now."""
        reasons = Counter(self.data["skipped_by_reason"])
        eligible = self.data["eligible"] + self.live_count + progress.shifts["eligible"]
        for fate, delta in progress.shifts.items():
            if fate != "eligible":
                reasons[fate] += delta
        return {
            "matched": self.data["matched"] + self.live_count - progress.left_scope,
            "eligible": eligible,
            "skipped_by_reason": {k: v for k, v in sorted(reasons.items()) if v},
        }
