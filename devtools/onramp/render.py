"""Tables and lines for people: the API's answers as rich tables (plain ASCII when not a terminal).

Consoles are made with markup off, so text from the service (error messages, reasons) is shown as
it is and never read as rich markup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.table import Table

from devtools.onramp.args import PROG

# Wide enough that a row of uuids never wraps in a log file or a pipe.
PLAIN_WIDTH = 400
MESSAGE_WIDTH = 48
MESSAGE_MIN_WIDTH = 20
UUID_WIDTH = 36


def make_console(file: IO[str]) -> Console:
    terminal = file.isatty()
    return Console(
        file=file,
        markup=False,
        emoji=False,
        highlight=False,
        width=None if terminal else PLAIN_WIDTH,
        color_system="auto" if terminal else None,
    )


def when(value: str | None, fmt: str = "%Y-%m-%d %H:%M:%SZ") -> str:
    """An API time in UTC, as `fmt` (default 2026-05-11 12:35:00Z)."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(fmt)


SHORT = "%m-%d %H:%M"  # in tables whose heading names the window and its year


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def clip(text: str | None, width: int = MESSAGE_WIDTH) -> str:
    if not text:
        return "-"
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(console: Console, *columns: str, title: str | None = None) -> Table:
    if title:
        # A line of its own: a table's title would be padded to the table's width.
        console.print(title, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else box.ASCII2)
    for column in columns:
        numeric = column in ("count", "eligible", "rows", "vendor", "done", "total", "success", "error", "skipped")
        uuid = column in ("execution", "ramp", "job")
        # On a narrow terminal the messages wrap; ids stay whole.
        wraps = column.endswith(("message", "reason", "name"))
        table.add_column(
            column,
            justify="right" if numeric else "left",
            no_wrap=not wraps,
            min_width=UUID_WIDTH if uuid else MESSAGE_MIN_WIDTH if column.endswith("message") else None,
            ratio=1 if column.endswith("message") else None,
        )
    return table


# ---- error-summary ----------------------------------------------------------------------------

_GROUP_COLUMNS = (
    ("vendor_id", "vendor"),
    ("ramp_uuid", "ramp"),
    ("ramp_name", "ramp name"),
    ("category", "category"),
    ("error_type", "error type"),
)


def summary(console: Console, answer: dict) -> None:
    console.print(
        f"Failures from {when(answer.get('since'))} to {when(answer.get('until'))}:"
        f" {answer['total']} in total, {answer['eligible']} eligible for a replay with the defaults"
    )
    groups = answer.get("groups", [])
    keys = [(key, title) for key, title in _GROUP_COLUMNS if any(key in group for group in groups)]
    table = _table(console, *(title for _, title in keys), "count", "eligible", "first at", "last at", "sample message")
    for group in groups:
        cells = ["-" if group.get(key) is None else str(group[key]) for key, _ in keys]
        table.add_row(
            *cells,
            str(group["count"]),
            str(group["eligible"]),
            when(group.get("first_at"), SHORT),
            when(group.get("last_at"), SHORT),
            clip(group.get("sample_message")),
        )
    console.print(table)
    if answer.get("groups_truncated"):
        console.print(f"Only the {len(groups)} biggest groups are shown (the service caps the list).")


# ---- retry-batch dry run ----------------------------------------------------------------------


def preview(console: Console, answer: dict, *, plan_hint: bool = True, of_plan: bool = False) -> None:
    """The dry run: summary, skipped by reason, the eligible rows; with `plan_hint`, the plan and
    finally its token alone on the last line (`| tail -1` takes it). `of_plan`: a dry run on a
    plan token, whose counts are the plan's rows."""
    s = answer["summary"]
    scope = (
        f" of plan {answer.get('plan_token')}: {s['matched']} rows in the plan"
        if of_plan
        else f": {s['matched']} rows in scope"
    )
    console.print(
        f"Dry run{scope}, {s['eligible']} eligible, {s['skipped']} skipped (batch {answer.get('batch_id', '-')})",
        soft_wrap=True,
    )
    reasons = {reason: n for reason, n in (s.get("skipped_by_reason") or {}).items() if n}
    if reasons:
        table = _table(console, "skipped because", "rows", title="Skipped by reason")
        for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            table.add_row(reason, str(count))
        console.print(table)
    rows = answer.get("eligible") or []
    if rows:
        title = f"Eligible rows, oldest first: {len(rows)} of {s['eligible']} listed"
        table = _table(console, "execution", "vendor", "ramp", "created at", "drift", "message", title=title)
        for row in rows:
            table.add_row(
                row["execution_uuid"],
                str(row.get("vendor_id", "-")),
                str(row.get("ramp_uuid", "-")),
                when(row.get("created_at")),
                "yes" if row.get("workflow_version_drift") else "no",
                clip(row.get("error_message")),
            )
        console.print(table)
    else:
        console.print("Nothing eligible.")
    token = answer.get("plan_token")
    if plan_hint and token:
        console.print(
            f"Plan of all {s['eligible']} eligible rows, valid until {when(answer.get('plan_expires_at'))}."
            f" Drain exactly these rows with: {PROG} drain --plan {token}"
        )
        console.print(token, soft_wrap=True)


# ---- retry jobs -------------------------------------------------------------------------------


def counts(progress: dict) -> str:
    return f"{progress['success']} success, {progress['error']} error, {progress['skipped']} skipped"


def progress_line(job: dict) -> str:
    p = job["progress"]
    line = f"job {job['job_id']} {job['state']}: {p['done']}/{p['total']} done ({counts(p)})"
    if job["state"] in ("queued", "running", "paused"):
        line += f", {job.get('rate_per_second') or 0:.1f}/s, ETA {duration(job.get('eta_seconds'))}"
    if job.get("state_reason"):
        line += f"; {job['state_reason']}"
    return line


def jobs_table(console: Console, jobs: list[dict]) -> None:
    if not jobs:
        console.print("No jobs.")
        return
    table = _table(
        console, "job", "state", "created by", "created at", "done", "total", "success", "error", "skipped", "reason"
    )
    for job in jobs:
        p = job["progress"]
        table.add_row(
            job["job_id"],
            job["state"],
            str(job.get("created_by") or "-"),
            when(job.get("created_at")),
            str(p["done"]),
            str(p["total"]),
            str(p["success"]),
            str(p["error"]),
            str(p["skipped"]),
            clip(job.get("state_reason"), 50),
        )
    console.print(table)


def job_detail(console: Console, job: dict) -> None:
    p = job["progress"]
    request = job.get("request") or {}
    scope = {k: v for k, v in request.items() if v not in (None, False) and k != "suppress_notifications"}
    for label, value in (
        ("job", job["job_id"]),
        ("state", job["state"] + (f" ({job['state_reason']})" if job.get("state_reason") else "")),
        ("created", f"{when(job.get('created_at'))} by {job.get('created_by') or '-'}"),
        ("started", when(job.get("started_at"))),
        ("finished", when(job.get("finished_at"))),
        ("plan", job.get("plan_token") or "-"),
        ("scope", ", ".join(f"{k}={_scalar(v)}" for k, v in scope.items()) or "-"),
        ("notifications", "suppressed" if request.get("suppress_notifications") else "sent"),
        ("pace", f"at most {job.get('max_replays_per_second'):g} replays/s"),
        ("brake", f"halt above {job.get('halt_error_rate')} failed of the last {job.get('halt_window')}"),
        ("progress", f"{p['done']}/{p['total']} done ({counts(p)}), {p['remaining']} remaining"),
        (
            "rate",
            f"{job.get('rate_per_second') or 0:.1f}/s over the last minute, ETA {duration(job.get('eta_seconds'))}",
        ),
    ):
        console.print(f"{label:<14} {value}", soft_wrap=True)
    reasons = {reason: n for reason, n in (p.get("skipped_by_reason") or {}).items() if n}
    if reasons:
        table = _table(console, "skipped because", "rows", title="Skipped by reason")
        for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            table.add_row(reason, str(count))
        console.print(table)
    recent_errors(console, job)


def recent_errors(console: Console, job: dict, limit: int = 20) -> None:
    errors = (job.get("recent_errors") or [])[:limit]
    if not errors:
        return
    table = _table(console, "execution", "at", "error type", "category", "message", title="Recent failed replays")
    for item in errors:
        error = item.get("error") or {}
        table.add_row(
            item.get("execution_uuid", "-"),
            when(item.get("at")),
            str(error.get("type") or "-"),
            str(error.get("category") or "-"),
            clip(error.get("message")),
        )
    console.print(table)


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
