"""People, internal API keys, browser sessions and sign-in throttling."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column, new_uuid

ROLE_ADMIN = "ONRAMP_ADMIN"
ROLE_VIEWER = "ONRAMP_VIEWER"
ROLES = (ROLE_ADMIN, ROLE_VIEWER)


class User(Base):
    __tablename__ = "or_users"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Stored lower-cased.
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """Internal API key: `key` is the public identifier, the secret is stored only as a hash."""

    __tablename__ = "or_api_keys"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    # Stored as a SHA-256 hex digest of the key string, so the table never holds a usable key.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # Hash of the secret (scheme-prefixed, e.g. "scrypt$...").
    secret_hash: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<ApiKey {self.name} role={self.role}>"


class UserSession(Base):
    """Server-side record of a browser session, so logout and role changes take effect at once."""

    __tablename__ = "or_user_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, nullable=False, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("or_users.id", ondelete="CASCADE"), index=True, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    last_seen_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuthThrottle(Base):
    """Failed-attempt counters per subject (an API key, an IP address) for rate limiting."""

    __tablename__ = "or_auth_throttle"
    __table_args__ = (Index("ix_or_auth_throttle_window_start", "window_start"),)

    subject: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    window_start: Mapped[datetime] = created_at_column()
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
