"""Failed-attempt throttling in or_auth_throttle: a fixed window per subject.

A subject (one API key, one client address signing in, one client address sending API keys) gets
LIMIT failures per WINDOW; after that it is answered 429 with Retry-After until the window that
collected the failures has passed. Nothing is locked for longer than one window, so the real
holder of a key is never locked out for good. What a blocked subject still may do is decided by
the caller (app/auth/credentials.py, app/auth/signin.py).

Client addresses are counted per IPv4 address and per IPv6 /64, the block one client is usually
given (so walking through the addresses of one's own /64 gains nothing).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import random
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import TooManyRequests
from app.models.base import utcnow

LIMIT = 10
WINDOW = timedelta(minutes=5)
# Roughly one failure in fifty also sweeps expired rows, so subjects that stopped failing (old
# addresses, keys) do not pile up.
_PURGE_PROBABILITY = 0.02


def api_key_subject(key: str) -> str:
    # A digest, never the key itself: the table must not hold usable credentials.
    return "api_key:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def client_address(remote_addr: str | None) -> str:
    """The address a client is counted under: itself for IPv4, its /64 for IPv6."""
    if not remote_addr:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return remote_addr[:200]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def signin_subject(remote_addr: str | None) -> str:
    return f"signin:{client_address(remote_addr)}"


def api_client_subject(remote_addr: str | None) -> str:
    """Failed API-key attempts (unknown keys included) from one client address."""
    return f"api_client:{client_address(remote_addr)}"


def too_many(seconds: int, message: str = "Too many failed attempts; try again later") -> TooManyRequests:
    return TooManyRequests(
        message,
        details={"retry_after_seconds": seconds},
        headers={"Retry-After": str(seconds)},
    )


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
