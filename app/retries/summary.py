"""The blast radius of an incident (SPEC section 8), without raw SQL: the window's ERROR rows
grouped by vendor, ramp, category and/or error type, and how many of each group a retry-batch
call with only this window (and the defaults) would find eligible.

`total` is what the runbook's `SELECT COUNT(*) ... WHERE status_code = 'ERROR' AND created_at >= ...`
counts, and `eligible` what a dry run of the same window reports: the groups are computed by the
same eligibility SQL, in one statement whatever the window holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.retries import eligibility
from app.retries.schemas import RetryRequest

DEFAULT_GROUP_BY = ("vendor", "ramp", "error_type")


@dataclass(frozen=True)
class SummaryRequest:
    since: datetime
    until: datetime
    vendor_ids: tuple[int, ...] | None
    group_by: tuple[str, ...]


def error_summary(session_factory: sessionmaker[Session], query: SummaryRequest) -> dict:
    retry = RetryRequest(since=query.since, until=query.until, vendor_ids=query.vendor_ids)
    with session_factory() as session, session.begin():
        session.execute(text(f"SET TRANSACTION READ ONLY; {eligibility.NO_JIT}"))
        rows = eligibility.error_summary(session, retry, query.group_by)
    keys = [alias for name in query.group_by for alias, _ in eligibility.SUMMARY_GROUPS[name]]
    groups = [
        {
            **{key: (str(row[key]) if key == "ramp_uuid" and row[key] is not None else row[key]) for key in keys},
            "count": row["count"],
            "eligible": row["eligible"],
            "first_at": row["first_at"],
            "last_at": row["last_at"],
            "sample_message": row["sample_message"],
        }
        for row in rows
    ]
    first = rows[0] if rows else {"total_rows": 0, "total_eligible": 0, "total_groups": 0}
    return {
        "since": query.since,
        "until": query.until,
        "total": int(first["total_rows"]),
        "eligible": int(first["total_eligible"]),
        "groups": groups,
        "groups_truncated": int(first["total_groups"]) > len(groups),
    }
