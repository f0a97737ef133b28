"""Use cases of browser sign-in and sign-out; each owns its transactions.

Failed sign-ins count per client address (app/auth/throttle.py): a bad state, nonce or signature,
a refused domain and an unknown user all count; after LIMIT of them in a window the address gets
429 at /auth/login and /auth/callback until that window has passed. The provider round trip
(oidc.finish_sign_in) runs outside any transaction, so no connection waits on the network.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.auth import oidc, sessions, throttle
from app.auth.users import find_user

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignedIn:
    email: str
    sid: uuid.UUID


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
