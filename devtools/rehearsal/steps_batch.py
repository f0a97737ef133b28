"""The walk's synchronous steps: the error summary, previews (window, hand-picked, patched),
executing a plan with retry-batch, and dismiss-batch. Each runs the runbook's curl command and
checks its answer against the incident."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from devtools.rehearsal.common import BATCH_CAP, RehearsalError
from devtools.rehearsal.shell import curl_parts

PLAN_LIFETIME = timedelta(hours=24)


def merge_patch(target, patch):
    """RFC 7396, written out here so the rehearsal does not check the service with its own code."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class BatchSteps:
    # ------------------------------------------------------------------ 1. size the damage
    def step_summary(self, cmd, text, **_):
        body = self.call(cmd, text).body
        r, w = self.report, self.world
        got_groups = sorted(
            (
                {k: g.get(k) for k in ("vendor_id", "ramp_uuid", "error_type", "count", "eligible")}
                for g in body.get("groups", [])
            ),
            key=lambda g: (g["vendor_id"], g["ramp_uuid"], g["error_type"]),
        )
        if self.progress.untouched:
            want = self.expected.summary()
            r.check(
                self.label(cmd, "error summary: total / eligible"),
                (want["total"], want["eligible"]),
                (body.get("total"), body.get("eligible")),
            )
            r.check(
                self.label(cmd, f"error summary: {len(want['groups'])} groups (vendor, ramp, error type)"),
                want["groups"],
                got_groups,
            )
        since = self.expected.data["since"]
        counted = w.scalar(
            f"SELECT COUNT(*) FROM or_ramp_executions WHERE status_code = 'ERROR' AND created_at >= '{since}'"
        )
        r.check(self.label(cmd, "error summary: total equals the SQL COUNT(*)"), counted, body.get("total"))
        own = w.post_retry({"since": since})
        r.check(
            self.label(cmd, "error summary: eligible equals a dry run of the window"),
            own.json().get("summary", {}).get("eligible") if own.status_code == 200 else f"HTTP {own.status_code}",
            body.get("eligible"),
        )
        self.progress.summary = body
        return body

    # ------------------------------------------------------------------ 2. preview
    def step_dry_run(self, cmd, text, **_):
        changes = {**self.incident.body_changes, "suppress_notifications": self.incident.suppress}
        _, _, printed = _body(text)
        if self.incident.suppress:
            # A mass recovery after a regression: the runbook's preview must already suppress.
            self.report.check(
                self.label(cmd, "preview sends suppress_notifications"), True, printed.get("suppress_notifications")
            )
        body = self.call(cmd, text, changes).body
        self.progress.batches.append(body)
        want = self.expected.scope(self.progress)
        summary = body.get("summary", {})
        got_reasons = {k: v for k, v in (summary.get("skipped_by_reason") or {}).items() if v}
        label = self.label(cmd, "dry run" + ("" if self.progress.untouched else " (again, after replays)"))
        self.report.check(
            f"{label}: matched/eligible",
            (want["matched"], want["eligible"]),
            (summary.get("matched"), summary.get("eligible")),
        )
        self.report.check(f"{label}: skipped_by_reason", want["skipped_by_reason"], got_reasons)
        listed = min(BATCH_CAP, want["eligible"])
        outcomes = {e.get("outcome") for e in body.get("eligible", [])}
        self.report.check(
            f"{label}: lists the first {listed} as would_replay",
            (True, listed, {"would_replay"} if listed else set()),
            (body.get("dry_run"), len(body.get("eligible", [])), outcomes),
        )
        self.check_unchanged(label)
        self.keep_plan(label, body, fate="eligible", suppress=self.incident.suppress)
        return body

    def step_hand_picked_dry(self, cmd, text, *, uuids: list[str], reasons: dict[str, str], **_):
        """`uuids` hand-picked; `reasons`: the skip reason of those that are not eligible."""
        changes = {"execution_uuids": uuids, "suppress_notifications": self.incident.suppress}
        body = self.call(cmd, text, changes).body
        self.progress.batches.append(body)
        label = self.label(cmd, "hand-picked dry run")
        got = {s["execution_uuid"]: s["reason"] for s in body.get("skipped", [])}
        self.report.check(f"{label}: reasons of the skipped rows", reasons, {u: got.get(u) for u in reasons})
        eligible = sorted(u for u in uuids if u not in reasons)
        listed = sorted(e["execution_uuid"] for e in body.get("eligible", []))
        self.report.check(f"{label}: the other {len(eligible)} rows are eligible", eligible, listed)
        self.check_unchanged(label)
        self.keep_plan(label, body, fate="retry_limit_reached", suppress=self.incident.suppress)
        return body

    def step_patch_dry(self, cmd, text, *, uuid: str, payload: dict, **_):
        _, _, printed = _body(text)
        patches = printed.get("payload_patches") or {}
        if len(patches) != 1:
            raise RehearsalError("the payload-patch example should patch one row")
        (patch,) = patches.values()
        body = self.call(cmd, text, {"execution_uuids": [uuid], "payload_patches": {uuid: patch}}).body
        self.progress.batches.append(body)
        label = self.label(cmd, "patched dry run")
        rows = body.get("eligible", [])
        self.report.check(
            f"{label}: the config_error row is eligible with force_retry",
            (1, [uuid]),
            (body.get("summary", {}).get("eligible"), [e.get("execution_uuid") for e in rows]),
        )
        self.report.check(
            f"{label}: shows the payload it would run with (merge patch)",
            merge_patch(payload, patch),
            rows[0].get("payload") if rows else None,
        )
        self.check_unchanged(label)
        self.keep_plan(label, body, fate="config_error", suppress=bool(printed.get("suppress_notifications")))
        self.progress.patch = {"uuid": uuid, "patch": patch, "before": payload}
        return body

    def keep_plan(self, label: str, body: dict, *, fate: str, suppress: bool) -> None:
        token, expires = body.get("plan_token"), body.get("plan_expires_at")
        try:
            lifetime = datetime.fromisoformat(expires) - datetime.now(UTC)
        except (TypeError, ValueError):
            lifetime = None
        self.report.check(
            f"{label}: answers a plan_token, expiring in 24 hours",
            True,
            bool(token) and lifetime is not None and PLAN_LIFETIME - timedelta(minutes=5) < lifetime <= PLAN_LIFETIME,
        )
        eligible = body.get("summary", {}).get("eligible", 0)
        self.progress.plan = {"token": token, "eligible": eligible, "fate": fate, "suppress": suppress}
        self.world.values["plan_token"] = token or ""

    def check_unchanged(self, label: str) -> None:
        history = self.world.scalar(
            "SELECT COUNT(*) FROM or_workflow_history WHERE action = 'WORKFLOW_HISTORY_ACTION_REPLAYED'"
        )
        self.report.check(f"{label}: changes nothing (replay history rows)", self.progress.replays, history)

    # ------------------------------------------------------------------ 4, 6. execute a plan
    def step_plan_execute(self, cmd, text, **_):
        plan = self.progress.plan
        if not plan:
            raise RehearsalError("no preview to execute")
        body = self.call(cmd, text).body
        self.progress.batches.append(body)
        summary = body.get("summary", {})
        label = self.label(cmd, f"execute the plan of {plan['eligible']}")
        selected = min(BATCH_CAP, plan["eligible"])
        self.report.check(
            f"{label}: matched / selected / success / error / remaining",
            (plan["eligible"], selected, selected, 0, plan["eligible"] - selected),
            tuple(summary.get(k) for k in ("matched", "selected", "success", "error", "remaining")),
        )
        rows = body.get("eligible", [])
        self.report.check(
            f"{label}: each row success with its project_uuid",
            True,
            bool(rows) and all(e.get("outcome") == "success" and e.get("project_uuid") for e in rows),
        )
        self.progress.replayed(
            plan["fate"], summary.get("success", 0), summary.get("error", 0), suppressed=plan["suppress"]
        )
        self.progress.last_batch = body
        self.world.values["batch_id"] = str(body.get("batch_id"))
        return body

    # ------------------------------------------------------------------ 5. dismiss
    def step_dismiss_dry(self, cmd, text, *, uuids: list[str], **_):
        return self.dismiss(cmd, text, uuids, dry=True)

    def step_dismiss_exec(self, cmd, text, *, uuids: list[str], fate: str, **_):
        body = self.dismiss(cmd, text, uuids, dry=False)
        self.progress.dismissed(fate, len(body.get("dismissed", [])))
        return body

    def dismiss(self, cmd, text, uuids: list[str], *, dry: bool) -> dict:
        _, _, printed = _body(text)
        body = self.call(cmd, text, {"execution_uuids": uuids}).body
        self.progress.dismissals.append(body)
        label = self.label(cmd, "dismiss dry run" if dry else "dismiss")
        n = len(uuids)
        self.report.check(
            f"{label}: summary and rows",
            ({"matched": n, "dismissed": n, "skipped": 0}, sorted(uuids), dry),
            (body.get("summary"), sorted(body.get("dismissed", [])), body.get("dry_run")),
        )
        listed = ", ".join(f"'{u}'" for u in uuids)
        statuses = dict(
            self.world.sql(f"SELECT status_code, COUNT(*) FROM or_ramp_executions WHERE uuid IN ({listed}) GROUP BY 1")
        )
        self.report.check(f"{label}: statuses", {"ERROR" if dry else "DISMISSED": n}, statuses)
        if not dry:
            self.progress.last_batch = body
            self.progress.dismiss_reason = printed.get("reason")
            self.world.values["batch_id"] = str(body.get("batch_id"))
        return body


def _body(text: str):
    tokens, index, body = curl_parts(text)
    if body is None:
        raise RehearsalError("curl command without a JSON body")
    return tokens, index, body
