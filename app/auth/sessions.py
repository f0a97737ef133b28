"""Server-side browser sessions (or_user_sessions).

The signed `session` cookie carries only a random sid; everything that decides access -- whether
the session was revoked, how long it has been idle, how old it is, and the user's role -- is read
from the database on every request. Functions here run inside the caller's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from app.models.base import utcnow
from app.models.identity import User, UserSession

# A dead session (revoked, idle too long, or past its absolute lifetime) is kept this long after
# it died, to answer "who was signed in then", and is then deleted by the worker's upkeep.
DEAD_SESSION_RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta
    absolute: timedelta

    @classmethod
    def from_config(cls, config) -> Lifetimes:
        return cls(
            idle=timedelta(minutes=config.session_idle_minutes),
            absolute=timedelta(hours=config.session_absolute_hours),
        )


def parse_sid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def create_session(session: Session, user: User, *, now: datetime | None = None) -> UserSession:
    now = now or utcnow()
    user_session = UserSession(sid=uuid.uuid4(), user_id=user.id, created_at=now, last_seen_at=now)
    session.add(user_session)
    user.last_login_at = now
    session.flush()
    return user_session


def load_active_session(
    session: Session, sid: uuid.UUID, lifetimes: Lifetimes, *, now: datetime | None = None
) -> tuple[UserSession, User] | None:
    """The live session and its user, with last_seen_at moved to now; None if it is not live."""
    now = now or utcnow()
    row = session.execute(
        select(UserSession, User).join(User, User.id == UserSession.user_id).where(UserSession.sid == sid)
    ).first()
    if row is None:
        return None
    user_session, user = row
    if (
        user_session.revoked_at is not None
        or now - user_session.last_seen_at > lifetimes.idle
        or now - user_session.created_at > lifetimes.absolute
    ):
        return None
    user_session.last_seen_at = now
    session.flush()
    return user_session, user


def revoke_session(session: Session, sid: uuid.UUID, *, now: datetime | None = None) -> bool:
    """Revoke one session; True if a live one was revoked."""
    result = session.execute(
        update(UserSession)
        .where(UserSession.sid == sid, UserSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return bool(result.rowcount)


def revoke_user_sessions(session: Session, user_id: int, *, now: datetime | None = None) -> int:
    result = session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return result.rowcount or 0


def delete_dead_sessions(
    session: Session, lifetimes: Lifetimes, *, now: datetime | None = None, keep: timedelta = DEAD_SESSION_RETENTION
) -> int:
    """Delete the sessions that died more than `keep` ago; how many went. Live ones never match:
    each condition is the matching reason of `load_active_session`, pushed `keep` further back."""
    cutoff = (now or utcnow()) - keep
    result = session.execute(
        delete(UserSession).where(
            or_(
                UserSession.revoked_at < cutoff,
                UserSession.last_seen_at < cutoff - lifetimes.idle,
                UserSession.created_at < cutoff - lifetimes.absolute,
            )
        )
    )
    return result.rowcount or 0
