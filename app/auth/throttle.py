"""Failed-attempt throttling in or_auth_throttle: a fixed window per subject.

A subject (one API key, one client address signing in) gets LIMIT failures per WINDOW; after that
every attempt -- right or wrong -- is answered 429 with Retry-After until the window that
collected the failures has passed. Nothing is locked for longer than one window, so the real
holder of a key is never locked out for good.
"""

from __future__ import annotations

import hashlib
import math
import random
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models.base import utcnow

LIMIT = 10
WINDOW = timedelta(minutes=5)
# Roughly one failure in fifty also sweeps expired rows, so random junk keys cannot grow the table.
_PURGE_PROBABILITY = 0.02


def api_key_subject(key: str) -> str:
    # A digest, never the key itself: the table must not hold usable credentials.
    return "api_key:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def signin_subject(remote_addr: str | None) -> str:
    return f"signin:{remote_addr or 'unknown'}"[:400]


def retry_after(session: Session, subject: str, *, now: datetime | None = None) -> int | None:
    """Seconds until `subject` may try again, or None when it is not blocked."""
    now = now or utcnow()
    blocked_until = session.execute(
        text("SELECT blocked_until FROM or_auth_throttle WHERE subject = :subject"),
        {"subject": subject},
    ).scalar()
    if blocked_until is None or blocked_until <= now:
        return None
    return max(1, math.ceil((blocked_until - now).total_seconds()))


def record_failure(session: Session, subject: str, *, now: datetime | None = None) -> int:
    """Count one failure; returns the failures in the current window."""
    now = now or utcnow()
    cutoff = now - WINDOW
    # One atomic upsert: concurrent failures for the same subject all count.
    failures = session.execute(
        text(
            """
            INSERT INTO or_auth_throttle AS t (subject, failures, window_start, blocked_until)
            VALUES (:subject, 1, :now,
                    CASE WHEN 1 >= :limit THEN CAST(:now AS timestamptz) + :window END)
            ON CONFLICT (subject) DO UPDATE SET
                failures = CASE WHEN t.window_start <= :cutoff THEN 1 ELSE t.failures + 1 END,
                window_start = CASE WHEN t.window_start <= :cutoff THEN :now
                                    ELSE t.window_start END,
                blocked_until = CASE
                    WHEN t.window_start <= :cutoff THEN
                        CASE WHEN 1 >= :limit THEN CAST(:now AS timestamptz) + :window END
                    WHEN t.failures + 1 >= :limit THEN t.window_start + :window
                    ELSE NULL
                END
            RETURNING failures
            """
        ),
        {"subject": subject, "now": now, "cutoff": cutoff, "limit": LIMIT, "window": WINDOW},
    ).scalar_one()
    if random.random() < _PURGE_PROBABILITY:
        purge_expired(session, now=now)
    return failures


def clear(session: Session, subject: str) -> None:
    session.execute(text("DELETE FROM or_auth_throttle WHERE subject = :subject"), {"subject": subject})


def purge_expired(session: Session, *, now: datetime | None = None) -> int:
    now = now or utcnow()
    result = session.execute(
        text(
            "DELETE FROM or_auth_throttle WHERE window_start <= :cutoff"
            " AND (blocked_until IS NULL OR blocked_until <= :now)"
        ),
        {"cutoff": now - WINDOW, "now": now},
    )
    return result.rowcount or 0
