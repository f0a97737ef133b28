"""Template filters of the admin pages: times in UTC, durations, short ids, pretty JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from app.admin.web import bp


@bp.app_template_filter("when")
def when(value) -> str:
    """`2026-05-11 12:35:02 UTC` from a datetime or an ISO-8601 string; `—` for nothing."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("duration")
def duration(seconds) -> str:
    """`2 h 5 min`, `3 min 20 s`, `45 s`; `—` for nothing."""
    if seconds is None:
        return "—"
    seconds = max(0, round(float(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@bp.app_template_filter("short_id")
def short_id(value) -> str:
    """The first block of a uuid (the whole value is kept in the link and the title)."""
    text = str(value or "")
    return text.split("-", 1)[0] if len(text) == 36 else text


@bp.app_template_filter("pretty_json")
def pretty_json(value) -> str:
    """Indented JSON as text; the template escapes it like any other text."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@bp.app_template_filter("span")
def span(first, last) -> str:
    """`2026-05-11 12:31 → 14:45 UTC` (the date once when both fall on the same day)."""
    if first is None or last is None:
        return "—"
    start, end = when(first), when(last)
    if start[:10] == end[:10]:
        return f"{start[:16]} → {end[11:16]} UTC"
    return f"{start[:16]} → {end[:16]} UTC"
