"""Use cases of browser sign-in and sign-out; each owns its transactions.

Failed sign-ins count per client address (app/auth/throttle.py): a bad state, nonce or signature,
a refused domain and an unknown user all count; after LIMIT of them in a window the address gets
429 at /auth/login and /auth/callback until that window has passed. The provider round trip
(oidc.finish_sign_in) runs outside any transaction, so no connection waits on the network.

`/auth/login?next=/admin/jobs` brings the browser back to that page after sign-in: the path is
checked by `safe_next_path` (a path on this site, never another host) and kept in the signed
cookie session across the provider round trip.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from app.auth import oidc, sessions, throttle
from app.auth.users import find_user

log = logging.getLogger(__name__)

MAX_NEXT_LENGTH = 2000
# Sign-in's own steps: going back to one of them after sign-in would start another round trip.
_NO_RETURN_TO = ("/auth/login", "/auth/callback", "/auth/logout")


@dataclass(frozen=True)
class SignedIn:
    email: str
    sid: uuid.UUID


def safe_next_path(value: object) -> str | None:
    """`value` if it is a path on this site (`/admin/jobs?state=running`), else None.

    Only a relative path that starts with one `/` passes: no scheme (`https:`, `javascript:`), no
    host (`//evil.example`), no backslash (browsers read `/\\evil.example` as `//evil.example`), no
    whitespace or control character (browsers drop tabs and newlines, which could join `/` and
    `/evil.example`), and none of sign-in's own steps.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_NEXT_LENGTH:
        return None
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    if parts.path.rstrip("/") in _NO_RETURN_TO:
        return None
    return value


def _ensure_not_throttled(session_factory: sessionmaker[Session], subject: str) -> None:
    with session_factory() as session, session.begin():
        blocked_for = throttle.retry_after(session, subject)
    if blocked_for is not None:
        raise throttle.too_many(blocked_for, "Too many failed sign-ins from this address; try again later")


def _record_failure(session_factory: sessionmaker[Session], subject: str, reason: str) -> None:
    with session_factory() as session, session.begin():
        throttle.record_failure(session, subject)
    log.warning("sign-in refused: %s", reason)


def begin_sign_in(session_factory: sessionmaker[Session], remote_addr: str | None):
    """The 302 to the provider (state, nonce and PKCE verifier go into the cookie session)."""
    _ensure_not_throttled(session_factory, throttle.signin_subject(remote_addr))
    return oidc.authorize_redirect()


def complete_sign_in(session_factory: sessionmaker[Session], remote_addr: str | None) -> SignedIn:
    """Finish the provider's callback and open a server-side session for a known user."""
    subject = throttle.signin_subject(remote_addr)
    _ensure_not_throttled(session_factory, subject)
    try:
        identity = oidc.finish_sign_in()
    except (oidc.SignInFailed, oidc.SignInRefused) as exc:
        _record_failure(session_factory, subject, (exc.details or {}).get("reason", exc.code))
        raise
    with session_factory() as session, session.begin():
        user = find_user(session, identity.email)
        if user is None:
            throttle.record_failure(session, subject)
            sid = None
        else:
            sid = sessions.create_session(session, user).sid
    if sid is None:
        # A proven email is not an account: only the users table grants access.
        log.warning("sign-in refused: unknown_user")
        raise oidc.SignInRefused(
            f"{identity.email} has no access here; an administrator must add you first",
            details={"reason": "unknown_user"},
        )
    log.info("signed in: %s", identity.email)
    return SignedIn(email=identity.email, sid=sid)


def sign_out(session_factory: sessionmaker[Session], sid: uuid.UUID) -> bool:
    """Revoke the session server-side; True if a live one was revoked."""
    with session_factory() as session, session.begin():
        return sessions.revoke_session(session, sid)
