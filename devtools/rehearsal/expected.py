"""What an incident's rehearsal must find, and what it has done so far.

`Expected` reads the scenario's *.expected.json, plus the rows the rehearsal adds itself (the
outage's live triggers); `Progress` records what the walk has done (replays, batches, request ids),
which is what later expectations depend on.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Progress:
    executed: bool = False  # an execute call has drained the window
    replayed: int = 0  # replays done (success + error), i.e. REPLAYED history rows
    batches: list[dict] = field(default_factory=list)  # every retry-batch response body, in order
    request_ids: list[str] = field(default_factory=list)  # X-Request-IDs the log must show
    last_replay_batch: dict | None = None  # the last execute call that replayed something


class Expected:
    def __init__(self, data: dict) -> None:
        self.data = data
        # Live triggers the rehearsal fired on one ramp (the outage): ERROR rows the file lacks.
        self.live_count = 0
        self.live_ramp = ""

    def totals(self) -> dict[str, int]:
        """What the whole recovery must have produced. Live triggers failed before any notify
        step; their replays fetch, create and notify."""
        e = self.data
        return {
            "eligible": e["eligible"] + self.live_count,
            "webhooks": e["webhooks_per_full_replay"] + self.live_count,
            "emails": e["emails_per_full_replay"] + self.live_count,
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

    def scope(self, executed: bool) -> dict:
        """matched / eligible / skipped_by_reason the window shows before or after the recovery."""
        reasons = dict(self.data["skipped_by_reason"])
        if executed:
            return {"matched": sum(reasons.values()), "eligible": 0, "skipped_by_reason": reasons}
        return {
            "matched": self.data["matched"] + self.live_count,
            "eligible": self.data["eligible"] + self.live_count,
            "skipped_by_reason": reasons,
        }
