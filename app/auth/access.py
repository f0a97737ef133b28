"""Who is calling, and may they? The `require_role` view decorator.

Two credential kinds:
  * internal API key: `Authorization: <key>` and `or-internal-api-auth-secret: <secret>`;
  * browser session: the signed `session` cookie from OIDC sign-in (curl: `-b "session=..."`).
API-key headers win when either is present (a half-sent pair is 401, never a fall-back to the
cookie). Roles and revocation come from the database on every request, so revoking a key, a
session or a role takes effect on the very next call.

CSRF: a cookie travels with requests other sites make, so a cookie-authenticated request that
changes state must be `Content-Type: application/json` (which a cross-site form cannot send without
a CORS preflight we never grant); anything else is 415 before the view runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import current_app, g, request
from flask import session as cookie_session

from app.auth import sessions, throttle
from app.auth.api_keys import authenticate_api_key
from app.db import get_session
from app.errors import Forbidden, TooManyRequests, Unauthorized, UnsupportedMediaType
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER

API_KEY_HEADER = "Authorization"
API_SECRET_HEADER = "or-internal-api-auth-secret"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Higher rank includes the lower ones: an admin may do whatever a viewer may.
ROLE_RANK = {ROLE_VIEWER: 1, ROLE_ADMIN: 2}
# Longest credential value we bother to check; anything longer is simply wrong.
_MAX_CREDENTIAL_LENGTH = 512


@dataclass(frozen=True)
class Actor:
    kind: str  # "user" | "api_key"
    name: str  # user email or API key name
    role: str


def has_role(actual: str, required: str) -> bool:
    return ROLE_RANK.get(actual, 0) >= ROLE_RANK.get(required, 10**6)


def current_actor() -> Actor:
    """The caller resolved by `require_role` for this request."""
    actor = g.get("actor")
    if actor is None:
        raise Unauthorized()
    return actor


def _too_many(seconds: int) -> TooManyRequests:
    return TooManyRequests(
        "Too many failed attempts; try again later",
        details={"retry_after_seconds": seconds},
        headers={"Retry-After": str(seconds)},
    )


def _api_key_actor(key: str, secret: str) -> Actor:
    if len(key) > _MAX_CREDENTIAL_LENGTH or len(secret) > _MAX_CREDENTIAL_LENGTH:
        raise Unauthorized("Invalid API key or secret")
    subject = throttle.api_key_subject(key)
    session = get_session()
    blocked_for = None
    actor = None
    with session.begin():
        blocked_for = throttle.retry_after(session, subject)
        if blocked_for is None:
            api_key = authenticate_api_key(session, key, secret)
            if api_key is None:
                # Committed with the transaction even though the request fails.
                throttle.record_failure(session, subject)
            else:
                actor = Actor(kind="api_key", name=api_key.name, role=api_key.role)
    if blocked_for is not None:
        raise _too_many(blocked_for)
    if actor is None:
        raise Unauthorized("Invalid API key or secret")
    return actor


def _cookie_actor() -> Actor:
    sid = sessions.parse_sid(cookie_session.get("sid"))
    if sid is None:
        raise Unauthorized("Sign in at /auth/login (session cookie) or send API-key headers")
    lifetimes = sessions.Lifetimes.from_config(current_app.config["ONRAMP"])
    session = get_session()
    with session.begin():
        found = sessions.load_active_session(session, sid, lifetimes)
        actor = None
        if found is not None:
            actor = Actor(kind="user", name=found[1].email, role=found[1].role)
    if actor is None:
        # Drop the dead sid so the browser stops sending it.
        cookie_session.pop("sid", None)
        raise Unauthorized("Your session has ended; sign in again at /auth/login")
    return actor


def resolve_actor() -> Actor:
    """Authenticate the request (401/429) without any role or CSRF check."""
    key = request.headers.get(API_KEY_HEADER)
    secret = request.headers.get(API_SECRET_HEADER)
    if key is not None or secret is not None:
        if not key or not secret:
            raise Unauthorized(f"Send both {API_KEY_HEADER} and {API_SECRET_HEADER}")
        return _api_key_actor(key.strip(), secret.strip())
    return _cookie_actor()


def enforce_json_for_cookie(actor: Actor) -> None:
    if actor.kind == "user" and request.method in UNSAFE_METHODS and request.mimetype != "application/json":
        raise UnsupportedMediaType(
            "Cookie-authenticated requests that change state must send Content-Type: application/json"
        )


def authorize(role: str) -> Actor:
    actor = resolve_actor()
    enforce_json_for_cookie(actor)
    if not has_role(actor.role, role):
        raise Forbidden(f"This action requires the {role} role", details={"role": actor.role})
    g.actor = actor
    return actor


def require_role(role: str):
    """View decorator: 401 no/bad credentials, 429 throttled, 415 cookie + non-JSON write,
    403 role too low. Sets `g.actor` (see `current_actor`)."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            authorize(role)
            return view(*args, **kwargs)

        return wrapper

    return decorator
