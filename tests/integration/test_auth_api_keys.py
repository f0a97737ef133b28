"""Internal API keys: `Authorization: <key>` + `or-internal-api-auth-secret: <secret>`."""

from __future__ import annotations

import hashlib
import logging
import secrets

import pytest
from sqlalchemy import select, update

from app.auth import throttle
from app.auth.api_keys import create_api_key, revoke_api_key, rotate_api_key
from app.auth.users import create_user
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER, ApiKey, AuthThrottle
from tests.integration.auth_support import (
    ADMIN_ACTION,
    VIEWER_PAGE,
    sign_in,
)


def _key(session_factory, name="runbook-bot", role=ROLE_ADMIN, **kwargs):
    with session_factory() as s, s.begin():
        _, key, secret = create_api_key(s, name=name, role=role, **kwargs)
    return key, secret


def _headers(key, secret):
    return {"Authorization": key, "or-internal-api-auth-secret": secret}


def _post(auth_app, key, secret, **kwargs):
    client = auth_app.test_client()
    return client.post(ADMIN_ACTION, json={}, headers=_headers(key, secret), **kwargs)


def test_good_key_is_accepted_and_its_use_recorded(auth_app, session_factory, admin_calls):
    key, secret = _key(session_factory)
    response = _post(auth_app, key, secret)
    assert response.status_code == 200
    assert response.get_json() == {"kind": "api_key", "name": "runbook-bot", "role": ROLE_ADMIN}
    assert [a.name for a in admin_calls] == ["runbook-bot"]
    with session_factory() as s, s.begin():
        row = s.scalar(select(ApiKey))
        assert row.last_used_at is not None
        # Nothing usable at rest.
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert secret not in row.secret_hash and row.secret_hash.startswith("scrypt$")


def test_scenario_style_fixed_key_and_secret(auth_app, session_factory):
    key, secret = _key(session_factory, key="k-1", secret="plain-secret")
    assert (key, secret) == ("k-1", "plain-secret")
    assert _post(auth_app, "k-1", "plain-secret").status_code == 200


def test_bad_credentials_are_401_in_the_one_error_shape(auth_app, session_factory, admin_calls):
    key, secret = _key(session_factory)
    client = auth_app.test_client()
    cases = [
        _headers(key, secret + "x"),
        _headers(key + "x", secret),
        {"Authorization": key},
        {"or-internal-api-auth-secret": secret},
        _headers("", ""),
        {},
    ]
    for headers in cases:
        response = client.post(ADMIN_ACTION, json={}, headers=headers)
        assert response.status_code == 401, headers
        body = response.get_json()
        assert body["error"]["code"] == "unauthorized" and "request_id" in body
    assert admin_calls == []


def test_revoked_key_stops_working_at_once(auth_app, session_factory):
    key, secret = _key(session_factory)
    assert _post(auth_app, key, secret).status_code == 200
    with session_factory() as s, s.begin():
        revoke_api_key(s, "runbook-bot")
    assert _post(auth_app, key, secret).status_code == 401


def test_rotation_replaces_the_secret(auth_app, session_factory):
    key, old_secret = _key(session_factory)
    with session_factory() as s, s.begin():
        _, new_secret = rotate_api_key(s, "runbook-bot")
    assert new_secret != old_secret
    assert _post(auth_app, key, old_secret).status_code == 401
    assert _post(auth_app, key, new_secret).status_code == 200


def test_a_secret_verified_earlier_grants_nothing_after_rotation_or_to_a_wrong_secret(auth_app, session_factory):
    # The per-process cache of verified secrets must not outlive the secret it verified.
    key, old_secret = _key(session_factory)
    assert _post(auth_app, key, old_secret).status_code == 200
    assert _post(auth_app, key, old_secret).status_code == 200
    assert _post(auth_app, key, old_secret + "x").status_code == 401
    with session_factory() as s, s.begin():
        rotate_api_key(s, "runbook-bot")
    assert _post(auth_app, key, old_secret).status_code == 401


def test_non_admin_key_is_403_but_may_view(auth_app, session_factory, admin_calls):
    key, secret = _key(session_factory, name="dashboard", role=ROLE_VIEWER)
    response = _post(auth_app, key, secret)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert admin_calls == []
    viewer = auth_app.test_client().get(VIEWER_PAGE, headers=_headers(key, secret))
    assert viewer.status_code == 200 and viewer.get_json()["name"] == "dashboard"


def test_key_headers_win_over_a_cookie(auth_app, session_factory):
    with session_factory() as s, s.begin():
        create_user(s, email="ops@example.com", role=ROLE_ADMIN)
    client = auth_app.test_client()
    assert sign_in(client, "ops@example.com").status_code == 302
    key, secret = _key(session_factory, name="dashboard", role=ROLE_VIEWER)
    # A signed-in admin's browser sending a viewer key acts as the key, not the admin.
    assert client.post(ADMIN_ACTION, json={}, headers=_headers(key, secret)).status_code == 403
    # A bad key never falls back to the cookie.
    assert client.post(ADMIN_ACTION, json={}, headers=_headers(key, "wrong")).status_code == 401
    assert client.post(ADMIN_ACTION, json={}).status_code == 200


def test_repeated_bad_secrets_are_throttled_for_one_window(auth_app, session_factory):
    key, secret = _key(session_factory)
    other_key, other_secret = _key(session_factory, name="other-bot")
    for _ in range(throttle.LIMIT):
        assert _post(auth_app, key, "guess").status_code == 401

    blocked = _post(auth_app, key, secret)  # even the right secret waits out the window
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= throttle.WINDOW.total_seconds()
    details = blocked.get_json()["error"]["details"]
    assert details["retry_after_seconds"] == int(blocked.headers["Retry-After"])
    assert _post(auth_app, other_key, other_secret).status_code == 200  # per key, not global

    with session_factory() as s, s.begin():
        stored = s.scalars(select(AuthThrottle.subject)).all()
        assert key not in " ".join(stored)  # the throttle table holds digests, not keys
        s.execute(
            update(AuthThrottle).values(
                window_start=AuthThrottle.window_start - throttle.WINDOW,
                blocked_until=AuthThrottle.blocked_until - throttle.WINDOW,
            )
        )
    assert _post(auth_app, key, secret).status_code == 200


def test_keys_and_secrets_never_reach_the_log(auth_app, session_factory, caplog):
    key, secret = _key(session_factory)
    with caplog.at_level(logging.DEBUG):
        _post(auth_app, key, secret)
        _post(auth_app, key, secret + "-wrong")
        _post(auth_app, key + "-wrong", secret)
    assert key not in caplog.text and secret not in caplog.text


# --- unauthenticated cost: unknown keys are cheap and counted per client address -------------

ADDRESS = "198.51.100.7"  # a documentation address: only a WSGI environ value, never contacted
OTHER_ADDRESS = "203.0.113.9"


def _from(auth_app, address, key, secret):
    client = auth_app.test_client()
    return client.post(ADMIN_ACTION, json={}, headers=_headers(key, secret), environ_base={"REMOTE_ADDR": address})


@pytest.fixture
def scrypt_calls(monkeypatch):
    """Counts every scrypt computation (the expensive part of a secret check)."""
    calls = []
    real = hashlib.scrypt

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


def _throttle_rows(session_factory) -> dict[str, int]:
    with session_factory() as s, s.begin():
        return dict(s.execute(select(AuthThrottle.subject, AuthThrottle.failures)).all())


def test_an_unknown_key_costs_no_scrypt(auth_app, session_factory, scrypt_calls):
    key, secret = _key(session_factory)
    scrypt_calls.clear()

    assert _post(auth_app, "ork_" + secrets.token_urlsafe(24), secret).status_code == 401
    assert scrypt_calls == []

    # The counter works: a known key with a wrong secret pays one scrypt check.
    assert _post(auth_app, key, secret + "x").status_code == 401
    assert len(scrypt_calls) == 1


def test_random_keys_from_one_address_are_throttled_without_a_row_per_key(auth_app, session_factory, scrypt_calls):
    for _ in range(throttle.LIMIT):
        response = _from(auth_app, ADDRESS, "ork_" + secrets.token_urlsafe(24), "guess")
        assert response.status_code == 401
    for _ in range(5):
        blocked = _from(auth_app, ADDRESS, "ork_" + secrets.token_urlsafe(24), "guess")
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["Retry-After"]) <= throttle.WINDOW.total_seconds()
        assert blocked.get_json()["error"]["code"] == "too_many_requests"
    assert scrypt_calls == []

    # One row for the address (not one per key), and no further writes while it is blocked.
    rows = _throttle_rows(session_factory)
    assert len(rows) == 1 and list(rows.values()) == [throttle.LIMIT]
    assert ADDRESS in next(iter(rows))

    # Another address is not affected.
    assert _from(auth_app, OTHER_ADDRESS, "ork_" + secrets.token_urlsafe(24), "guess").status_code == 401


def test_a_correct_key_still_works_from_a_throttled_address(auth_app, session_factory, scrypt_calls):
    key, secret = _key(session_factory)
    for _ in range(throttle.LIMIT):
        _from(auth_app, ADDRESS, "ork_" + secrets.token_urlsafe(24), "guess")
    assert _from(auth_app, ADDRESS, "ork_" + secrets.token_urlsafe(24), "guess").status_code == 429

    # An address is a weak identity (NAT, proxies): a correct key and secret are not locked out.
    assert _from(auth_app, ADDRESS, key, secret).status_code == 200

    # A wrong secret for a known key still pays scrypt and counts against that key.
    scrypt_calls.clear()
    assert _from(auth_app, ADDRESS, key, "wrong").status_code == 401
    assert len(scrypt_calls) == 1
    assert _throttle_rows(session_factory)[throttle.api_key_subject(key)] == 1


def test_bad_secrets_also_count_against_the_address(auth_app, session_factory):
    key, _ = _key(session_factory)
    for _ in range(throttle.LIMIT):
        assert _from(auth_app, ADDRESS, key, "guess").status_code == 401
    assert _from(auth_app, ADDRESS, "ork_" + secrets.token_urlsafe(24), "guess").status_code == 429
    assert _from(auth_app, OTHER_ADDRESS, "ork_" + secrets.token_urlsafe(24), "guess").status_code == 401
