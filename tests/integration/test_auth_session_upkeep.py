"""The sessions' upkeep (`auth.delete_dead_sessions`, run by the worker): browser sessions that
died over 30 days ago are deleted, whatever killed them (sign-out or revocation, idleness, age);
live ones and ones that died recently stay, and a live one still signs in afterwards."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from app.auth.manage import purge_dead_sessions
from app.auth.sessions import DEAD_SESSION_RETENTION, Lifetimes, load_active_session
from app.auth.users import create_user
from app.models.base import utcnow
from app.models.identity import ROLE_ADMIN, UserSession


def test_sessions_dead_for_over_30_days_go_and_live_or_recently_dead_ones_stay(session_factory, config):
    lifetimes = Lifetimes.from_config(config)
    now = utcnow()
    keep, idle, absolute = DEAD_SESSION_RETENTION, lifetimes.idle, lifetimes.absolute
    day, minute = timedelta(days=1), timedelta(minutes=1)
    # name: (created_at, last_seen_at, revoked_at)
    made = {
        "live": (now - 2 * idle, now - minute, None),
        "signed out 31 days ago": (now - 31 * day, now - 31 * day, now - 31 * day),
        "signed out 29 days ago": (now - 29 * day, now - 29 * day, now - 29 * day),
        "idle since 31 days ago": (now - 31 * day - idle, now - 31 * day - idle, None),
        "idle since 2 days ago": (now - 2 * day, now - 2 * day, None),
        # In use until its absolute lifetime ended: only its age says it is dead.
        "too old since 30 days and 31 minutes ago": (
            now - keep - 31 * minute - absolute,
            now - keep - 32 * minute,
            None,
        ),
        "too old since 29 days ago": (now - 29 * day - absolute, now - 29 * day - minute, None),
    }
    assert keep == 30 * day
    sids: dict[str, uuid.UUID] = {}
    with session_factory() as session, session.begin():
        user = create_user(session, email="ops@example.com", role=ROLE_ADMIN)
        for name, (created, seen, revoked) in made.items():
            sids[name] = uuid.uuid4()
            session.add(
                UserSession(sid=sids[name], user_id=user.id, created_at=created, last_seen_at=seen, revoked_at=revoked)
            )

    assert purge_dead_sessions(session_factory, lifetimes) == 3
    assert purge_dead_sessions(session_factory, lifetimes) == 0

    with session_factory() as session, session.begin():
        kept = set(session.scalars(select(UserSession.sid)))
        assert load_active_session(session, sids["live"], lifetimes) is not None
    assert kept == {sids[name] for name in made if "31 days" not in name and "31 minutes" not in name}
