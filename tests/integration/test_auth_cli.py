"""`flask users ...` and `flask api-keys ...` as an operator runs them."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.models.identity import ROLE_ADMIN, ApiKey, User
from tests.integration.auth_support import (
    ADMIN_ACTION,
)

CREATE_BOT = ("api-keys", "create", "--name", "runbook-bot", "--role", "ONRAMP_ADMIN")


def _run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def _headers(key, secret):
    return {"Authorization": key, "or-internal-api-auth-secret": secret}


def test_api_keys_lifecycle(auth_app, session_factory):
    created = _run(auth_app, *CREATE_BOT)
    assert created.exit_code == 0, created.output
    key = re.search(r"^key:\s+(\S+)$", created.output, re.M).group(1)
    secret = re.search(r"^secret:\s+(\S+)$", created.output, re.M).group(1)
    client = auth_app.test_client()
    assert client.post(ADMIN_ACTION, json={}, headers=_headers(key, secret)).status_code == 200

    listed = _run(auth_app, "api-keys", "list")
    assert listed.exit_code == 0
    assert "runbook-bot" in listed.output and "active" in listed.output
    assert key not in listed.output and secret not in listed.output

    duplicate = _run(auth_app, *CREATE_BOT)
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output

    rotated = _run(auth_app, "api-keys", "rotate", "--name", "runbook-bot")
    assert rotated.exit_code == 0, rotated.output
    new_secret = re.search(r"^secret:\s+(\S+)$", rotated.output, re.M).group(1)
    assert key not in rotated.output
    assert client.post(ADMIN_ACTION, json={}, headers=_headers(key, secret)).status_code == 401
    assert client.post(ADMIN_ACTION, json={}, headers=_headers(key, new_secret)).status_code == 200

    revoked = _run(auth_app, "api-keys", "revoke", "--name", "runbook-bot")
    assert revoked.exit_code == 0
    assert client.post(ADMIN_ACTION, json={}, headers=_headers(key, new_secret)).status_code == 401
    assert "revoked" in _run(auth_app, "api-keys", "list").output

    missing = _run(auth_app, "api-keys", "revoke", "--name", "nope")
    assert missing.exit_code != 0 and "no API key named" in missing.output
    bad_role = _run(auth_app, "api-keys", "create", "--name", "x", "--role", "ROOT")
    assert bad_role.exit_code != 0
    with session_factory() as s, s.begin():
        assert s.scalar(select(ApiKey.name).where(ApiKey.name == "x")) is None


def test_users_lifecycle(auth_app, session_factory):
    created = _run(auth_app, "users", "create", "--email", "Ops@Example.com", "--role", "ONRAMP_ADMIN")
    assert created.exit_code == 0, created.output
    with session_factory() as s, s.begin():
        assert s.scalar(select(User.role).where(User.email == "ops@example.com")) == ROLE_ADMIN
    assert "ops@example.com" in _run(auth_app, "users", "list").output

    changed = _run(auth_app, "users", "set-role", "--email", "ops@example.com", "--role", "ONRAMP_VIEWER")
    assert changed.exit_code == 0
    assert "ONRAMP_VIEWER" in _run(auth_app, "users", "list").output

    assert _run(auth_app, "users", "delete", "--email", "ops@example.com").exit_code == 0
    assert "ops@example.com" not in _run(auth_app, "users", "list").output
    assert _run(auth_app, "users", "delete", "--email", "ops@example.com").exit_code != 0
    bad = _run(auth_app, "users", "create", "--email", "not-an-email", "--role", "ONRAMP_ADMIN")
    assert bad.exit_code != 0
