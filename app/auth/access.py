"""Who is calling, and may they? The `require_role` view decorator.

Two credential kinds:
  * internal API key: `Authorization: <key>` and `or-internal-api-auth-secret: <secret>`;
  * browser session: the signed `session` cookie from OIDC sign-in (curl: `-b "session=..."`).
API-key auth is attempted when our secret header is present, or when `Authorization` holds a
bare value with no auth scheme (our keys contain no whitespace); a half-sent pair is 401, never a
fall-back to the cookie. `Authorization: <scheme> <credentials>` without our secret header (a
proxy's Basic credentials, say) is not ours: it is ignored and the cookie decides. Roles and
revocation come from the database on every request, so revoking a key, a session or a role takes
effect on the very next call. The checks themselves are use cases in app/auth/credentials.py.

CSRF: a cookie travels with requests other sites make, so a cookie-authenticated request that
changes state must be `Content-Type: application/json` (which a cross-site form cannot send without
a CORS preflight we never grant); anything else is 415 before the view runs.
"""

from __future__ import annotations

import functools

from flask import current_app, g, request
from flask import session as cookie_session

from app.auth import sessions
from app.auth.actor import Actor
from app.auth.credentials import authenticate_api_key_request, authenticate_session
from app.db import get_database
from app.errors import Forbidden, Unauthorized, UnsupportedMediaType
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER

__all__ = ["Actor", "authorize", "current_actor", "has_role", "require_role", "resolve_actor"]

API_KEY_HEADER = "Authorization"
API_SECRET_HEADER = "or-internal-api-auth-secret"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Higher rank includes the lower ones: an admin may do whatever a viewer may.
ROLE_RANK = {ROLE_VIEWER: 1, ROLE_ADMIN: 2}


def has_role(actual: str, required: str) -> bool:
    return ROLE_RANK.get(actual, 0) >= ROLE_RANK.get(required, 10**6)


def current_actor() -> Actor:
    """The caller resolved by `require_role` for this request."""
    actor = g.get("actor")
    if actor is None:
        raise Unauthorized()
    return actor


def has_auth_scheme(value: str) -> bool:
    """True for `<scheme> <credentials>` (someone else's Authorization), False for a bare key."""
    return len(value.split(None, 1)) == 2


def wants_api_key_auth(key: str | None, secret: str | None) -> bool:
    return secret is not None or (key is not None and not has_auth_scheme(key))


def _cookie_actor() -> Actor:
    sid = sessions.parse_sid(cookie_session.get("sid"))
    if sid is None:
        raise Unauthorized("Sign in at /auth/login (session cookie) or send API-key headers")
    lifetimes = sessions.Lifetimes.from_config(current_app.config["ONRAMP"])
    actor = authenticate_session(get_database().session_factory, sid, lifetimes)
    if actor is None:
        # Drop the dead sid so the browser stops sending it.
        cookie_session.pop("sid", None)
        raise Unauthorized("Your session has ended; sign in again at /auth/login")
    return actor


def resolve_actor() -> Actor:
    """Authenticate the request (401/429) without any role or CSRF check."""
    key = request.headers.get(API_KEY_HEADER)
    secret = request.headers.get(API_SECRET_HEADER)
    if not wants_api_key_auth(key, secret):
        return _cookie_actor()
    key, secret = (key or "").strip(), (secret or "").strip()
    if not key or not secret:
        raise Unauthorized(f"Send both {API_KEY_HEADER} and {API_SECRET_HEADER}")
    return authenticate_api_key_request(get_database().session_factory, key, secret, remote_addr=request.remote_addr)


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
