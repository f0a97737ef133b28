"""Use cases behind `flask users ...` and `flask api-keys ...`, and the sessions' upkeep: one
transaction each.

They return the rows they touched (loaded before the commit, so readable after it) and, where a
credential is made, its plain value, which exists nowhere else.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from app.auth import api_keys, sessions, users
from app.models.identity import ApiKey, User


def add_user(session_factory: sessionmaker[Session], *, email: str, role: str) -> User:
    with session_factory() as session, session.begin():
        return users.create_user(session, email=email, role=role)


def all_users(session_factory: sessionmaker[Session]) -> list[User]:
    with session_factory() as session, session.begin():
        return users.list_users(session)


def change_user_role(session_factory: sessionmaker[Session], *, email: str, role: str) -> User:
    with session_factory() as session, session.begin():
        return users.set_user_role(session, email=email, role=role)


def remove_user(session_factory: sessionmaker[Session], email: str) -> None:
    with session_factory() as session, session.begin():
        users.delete_user(session, email)


def issue_api_key(session_factory: sessionmaker[Session], *, name: str, role: str) -> tuple[ApiKey, str, str]:
    """(row, key, secret): the plain key and secret are shown once and never stored."""
    with session_factory() as session, session.begin():
        return api_keys.create_api_key(session, name=name, role=role)


def all_api_keys(session_factory: sessionmaker[Session]) -> list[ApiKey]:
    with session_factory() as session, session.begin():
        return api_keys.list_api_keys(session)


def revoke_api_key(session_factory: sessionmaker[Session], name: str) -> ApiKey:
    with session_factory() as session, session.begin():
        return api_keys.revoke_api_key(session, name)


def rotate_api_key(session_factory: sessionmaker[Session], name: str) -> tuple[ApiKey, str]:
    """(row, new secret); the old secret stops working at the commit."""
    with session_factory() as session, session.begin():
        return api_keys.rotate_api_key(session, name)


def purge_dead_sessions(session_factory: sessionmaker[Session], lifetimes: sessions.Lifetimes) -> int:
    """The worker's upkeep: sessions dead for longer than `sessions.DEAD_SESSION_RETENTION` go."""
    with session_factory() as session, session.begin():
        return sessions.delete_dead_sessions(session, lifetimes)
