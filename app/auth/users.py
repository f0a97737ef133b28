"""The `users` table decides who may do what; signing in only proves an email address.

Functions run inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationError
from app.models.identity import ROLES, User


def normalize_email(email: str) -> str:
    email = (email or "").strip().lower()
    if email.count("@") != 1 or not email.split("@")[0] or "." not in email.split("@")[1]:
        raise ValidationError("not an email address", details={"email": email})
    return email


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", details={"role": role})


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def get_user(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise NotFound(f"no user {email.strip().lower()!r}")
    return user


def create_user(session: Session, *, email: str, role: str) -> User:
    email = normalize_email(email)
    _check_role(role)
    if find_user(session, email) is not None:
        raise Conflict(f"user {email!r} already exists")
    user = User(email=email, role=role)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(func.lower(User.email))))


def set_user_role(session: Session, *, email: str, role: str) -> User:
    _check_role(role)
    user = get_user(session, email)
    user.role = role
    session.flush()
    return user


def delete_user(session: Session, email: str) -> None:
    """Delete the user; their sessions go with them (ON DELETE CASCADE), so cookies stop at once."""
    user = get_user(session, email)
    session.delete(user)
    session.flush()
