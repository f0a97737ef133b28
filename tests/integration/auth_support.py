"""Helpers for the auth tests: a test-only blueprint guarded by `require_role` and helpers that walk
the real sign-in flow. The fixtures built on them live in tests/integration/conftest.py."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from flask import Blueprint, jsonify

from app.auth.access import current_actor, require_role
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER

CLIENT_ID = "onramp-test-client"
CLIENT_SECRET = "onramp-test-client-secret"
# The Flask test client's own host, so the provider's redirect comes back to the test app.
PUBLIC_BASE_URL = "http://localhost"
ADMIN_ACTION = "/test-auth/admin-action"
VIEWER_PAGE = "/test-auth/viewer"


def probe_blueprint(calls: list) -> Blueprint:
    bp = Blueprint("auth_probe", __name__)

    @bp.post(ADMIN_ACTION)
    @require_role(ROLE_ADMIN)
    def admin_action():
        actor = current_actor()
        calls.append(actor)
        return jsonify({"kind": actor.kind, "name": actor.name, "role": actor.role})

    @bp.get(VIEWER_PAGE)
    @require_role(ROLE_VIEWER)
    def viewer_page():
        actor = current_actor()
        return jsonify({"kind": actor.kind, "name": actor.name, "role": actor.role})

    return bp


def provider_redirect(client, email: str, **params) -> str:
    """GET /auth/login, let the provider approve `email`; returns the callback path+query."""
    login = client.get("/auth/login")
    assert login.status_code == 302, login.get_data(as_text=True)
    answer = requests.get(
        login.headers["Location"],
        params={"email": email, **params},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert back.path == "/auth/callback"
    return f"{back.path}?{back.query}"


def sign_in(client, email: str, **params):
    """The whole authorization-code flow; returns the callback response."""
    return client.get(provider_redirect(client, email, **params))


def session_cookie(client) -> str | None:
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


def curl_post(app, path: str, cookie: str, *, json_body=None, data=None, headers=None):
    """Like `curl -b "session=..."`: a client with no cookie jar, the cookie sent as a header."""
    bare = app.test_client(use_cookies=False)
    sent = {"Cookie": f"session={cookie}", **(headers or {})}
    if json_body is not None:
        return bare.post(path, json=json_body, headers=sent)
    return bare.post(path, data=data, headers=sent)
