"""Use cases that authenticate one request; each owns its transaction.

API key (`authenticate_api_key_request`), in this order:
  1. the key is looked up by its SHA-256 digest. An unknown or revoked key never reaches scrypt:
     it costs one indexed lookup and counts one failure against the client address (one row per
     address, not per key). Once the address is blocked it gets 429 and writes nothing.
  2. a known key blocked by its own failures gets 429, even with the right secret, so guessing a
     key's secret gains nothing.
  3. otherwise the secret is checked (scrypt). A wrong one counts against the key and against the
     address. An address block does not stop a known key with its correct secret: addresses are
     shared (NAT, proxies), so strangers' junk must not lock out a caller holding real credentials.

Browser session (`authenticate_session`): the live session and its user's current role, with
`last_seen_at` moved on.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session, sessionmaker

from app.auth import api_keys, sessions, throttle
from app.auth.actor import Actor
from app.errors import Unauthorized

# Longest credential value we bother to check; anything longer is simply wrong.
MAX_CREDENTIAL_LENGTH = 512


def authenticate_api_key_request(
    session_factory: sessionmaker[Session], key: str, secret: str, *, remote_addr: str | None
) -> Actor:
    """The key's actor; Unauthorized (401) for bad credentials, TooManyRequests (429) when blocked."""
    if len(key) > MAX_CREDENTIAL_LENGTH or len(secret) > MAX_CREDENTIAL_LENGTH:
        raise Unauthorized("Invalid API key or secret")
    address = throttle.api_client_subject(remote_addr)
    with session_factory() as session, session.begin():
        # Failures are recorded in this transaction and committed although the request fails.
        outcome = _check_api_key(session, key, secret, address)
    if isinstance(outcome, Actor):
        return outcome
    if outcome is not None:
        raise throttle.too_many(outcome)
    raise Unauthorized("Invalid API key or secret")


def _check_api_key(session: Session, key: str, secret: str, address: str) -> Actor | int | None:
    """An Actor, the seconds to wait when blocked, or None for bad credentials."""
    api_key = api_keys.find_live_key(session, key)
    if api_key is None:
        blocked_for = throttle.retry_after(session, address)
        if blocked_for is None:
            throttle.record_failure(session, address)
        return blocked_for
    subject = throttle.api_key_subject(key)
    blocked_for = throttle.retry_after(session, subject)
    if blocked_for is not None:
        return blocked_for
    if api_keys.accept_secret(session, api_key, secret):
        return Actor(kind="api_key", name=api_key.name, role=api_key.role)
    throttle.record_failure(session, subject)
    throttle.record_failure(session, address)
    return None


def authenticate_session(
    session_factory: sessionmaker[Session], sid: uuid.UUID, lifetimes: sessions.Lifetimes
) -> Actor | None:
    """The signed-in user behind `sid`, or None when that session is not live."""
    with session_factory() as session, session.begin():
        found = sessions.load_active_session(session, sid, lifetimes)
        if found is None:
            return None
        return Actor(kind="user", name=found[1].email, role=found[1].role)
