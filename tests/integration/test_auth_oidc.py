"""Browser sign-in: the whole authorization-code flow against the mock provider over real HTTP.

Nothing in the token check is patched: the app fetches discovery, exchanges the code and fetches
the JWKS from the provider running on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select, update

from app import create_app
from app.auth import throttle
from app.auth.users import create_user, delete_user, set_user_role
from app.models.base import utcnow
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER, AuthThrottle, UserSession
from tests.integration.auth_support import (
    ADMIN_ACTION,
    CLIENT_ID,
    PUBLIC_BASE_URL,
    VIEWER_PAGE,
    curl_post,
    provider_redirect,
    session_cookie,
    sign_in,
)

ADMIN = "ops@example.com"
VIEWER = "watcher@example.com"


def _add_user(session_factory, email, role):
    with session_factory() as s, s.begin():
        create_user(s, email=email, role=role)


def _session_rows(session_factory):
    with session_factory() as s, s.begin():
        return s.scalar(select(func.count()).select_from(UserSession))


def _signed_in_admin(auth_app, session_factory):
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    client = auth_app.test_client()
    done = sign_in(client, ADMIN)
    assert done.status_code == 302 and done.headers["Location"].endswith("/auth/me")
    return client, session_cookie(client)


def test_admin_signs_in_and_the_cookie_works_from_curl(auth_app, session_factory, admin_calls):
    client, cookie = _signed_in_admin(auth_app, session_factory)
    assert cookie

    response = curl_post(auth_app, ADMIN_ACTION, cookie, json_body={"dry_run": True})

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"kind": "user", "name": ADMIN, "role": ROLE_ADMIN}
    assert [a.name for a in admin_calls] == [ADMIN]


def test_session_cookie_attributes(auth_app, session_factory):
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    client = auth_app.test_client()
    done = sign_in(client, ADMIN)
    set_cookie = [h for h in done.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert len(set_cookie) == 1
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie[0].split(";")}
    assert {"httponly", "secure", "expires", "path"} <= attributes
    assert "SameSite=Lax" in set_cookie[0]


def test_me_shows_who_and_role_as_json_and_html(auth_app, session_factory):
    client, _ = _signed_in_admin(auth_app, session_factory)
    as_json = client.get("/auth/me")
    assert as_json.get_json() == {"kind": "user", "name": ADMIN, "role": ROLE_ADMIN}
    browser_accept = "text/html,application/xhtml+xml,*/*;q=0.8"
    as_html = client.get("/auth/me", headers={"Accept": browser_accept})
    page = as_html.get_data(as_text=True)
    assert as_html.mimetype == "text/html"
    assert ADMIN in page and ROLE_ADMIN in page and "session=$ONRAMP_SESSION" in page
    # HttpOnly means the page must not print the cookie itself.
    assert session_cookie(client) not in page


def test_wrong_state_is_refused(auth_app, session_factory):
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    client = auth_app.test_client()
    callback = provider_redirect(client, ADMIN)
    forged = callback.replace("state=", "state=forged")

    response = client.get(forged)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "sign_in_failed"
    assert _session_rows(session_factory) == 0
    assert client.get("/auth/me").status_code == 401


def test_callback_without_a_login_started_in_this_browser_is_refused(auth_app, session_factory):
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    victim_callback = provider_redirect(auth_app.test_client(), ADMIN)
    other_browser = auth_app.test_client()
    assert other_browser.get(victim_callback).status_code == 401
    assert _session_rows(session_factory) == 0


def test_wrong_nonce_is_refused(auth_app, session_factory, fresh_provider):
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    fresh_provider.claim_overrides = {"nonce": "not-the-nonce-we-sent"}
    client = auth_app.test_client()
    response = sign_in(client, ADMIN)
    assert response.status_code == 401
    assert response.get_json()["error"]["details"]["reason"] == "invalid_claim"
    assert _session_rows(session_factory) == 0


def test_bad_signature_is_refused(auth_app, session_factory, fresh_provider):
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    fresh_provider.sign_with_unknown_key = True
    response = sign_in(auth_app.test_client(), ADMIN)
    assert response.status_code == 401
    assert response.get_json()["error"]["details"]["reason"] == "bad_signature"
    assert _session_rows(session_factory) == 0


def test_wrong_audience_issuer_or_expired_token_is_refused(auth_app, session_factory, fresh_provider):
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    now = int(time.time())
    for overrides in (
        {"aud": "some-other-client"},
        {"aud": ["some-other-client"], "azp": CLIENT_ID},
        {"iss": "http://127.0.0.1:1"},
        {"iat": now - 7200, "exp": now - 3600},
        {"exp": None},
    ):
        fresh_provider.claim_overrides = overrides
        response = sign_in(auth_app.test_client(), ADMIN)
        assert response.status_code == 401, overrides
    assert _session_rows(session_factory) == 0


def test_token_response_without_id_token_is_refused(auth_app, session_factory, fresh_provider):
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    fresh_provider.omit_id_token = True
    response = sign_in(auth_app.test_client(), ADMIN)
    assert response.status_code == 401
    assert _session_rows(session_factory) == 0


def test_foreign_domain_unverified_email_and_foreign_hd_are_refused(auth_app, session_factory):
    # Even a row in the users table does not let another domain in.
    _add_user(session_factory, "ops@evil.test", ROLE_ADMIN)
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    cases = [
        ("ops@evil.test", {}, "domain_not_allowed"),
        ("ops@example.com.evil.test", {}, "domain_not_allowed"),
        (ADMIN, {"email_verified": "false"}, "email_not_verified"),
        (ADMIN, {"hd_claim": "evil.test"}, "hd_not_allowed"),
    ]
    for email, params, reason in cases:
        client = auth_app.test_client()
        response = sign_in(client, email, **params)
        assert response.status_code == 403, (email, params)
        assert response.get_json()["error"]["details"]["reason"] == reason
        assert client.get("/auth/me").status_code == 401
    assert _session_rows(session_factory) == 0


def test_unknown_user_gets_no_session(auth_app, session_factory):
    client = auth_app.test_client()
    response = sign_in(client, "stranger@example.com")
    assert response.status_code == 403
    assert response.get_json()["error"]["details"]["reason"] == "unknown_user"
    assert _session_rows(session_factory) == 0
    assert client.get("/auth/me").status_code == 401
    assert client.post(ADMIN_ACTION, json={}).status_code == 401


def test_viewer_may_look_but_not_act(auth_app, session_factory, admin_calls):
    _add_user(session_factory, VIEWER, ROLE_VIEWER)
    client = auth_app.test_client()
    assert sign_in(client, VIEWER).status_code == 302
    assert client.get(VIEWER_PAGE).get_json()["role"] == ROLE_VIEWER

    response = client.post(ADMIN_ACTION, json={})

    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert admin_calls == []


def test_tampered_cookie_is_401(auth_app, session_factory, admin_calls):
    _, cookie = _signed_in_admin(auth_app, session_factory)
    payload, _, signature = cookie.partition(".")
    tampered = [
        cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB"),
        "x" + cookie,
        f'{{"sid":"{uuid.uuid4()}"}}',
    ]
    for value in tampered:
        response = curl_post(auth_app, ADMIN_ACTION, value, json_body={})
        assert response.status_code == 401, value
        assert set(response.get_json()) == {"error", "request_id"}
    assert admin_calls == []


def test_logout_revokes_the_session_server_side(auth_app, session_factory):
    client, cookie = _signed_in_admin(auth_app, session_factory)

    refused = client.post("/auth/logout", data="x=1", content_type="application/x-www-form-urlencoded")
    assert refused.status_code == 415
    assert curl_post(auth_app, ADMIN_ACTION, cookie, json_body={}).status_code == 200

    out = client.post("/auth/logout", json={})
    assert out.status_code == 200 and out.get_json() == {"signed_out": True}

    # The copied cookie (as a curl user would still hold it) is dead too.
    assert curl_post(auth_app, ADMIN_ACTION, cookie, json_body={}).status_code == 401
    with session_factory() as s, s.begin():
        assert s.scalar(select(UserSession.revoked_at)) is not None


def test_role_removal_and_user_deletion_take_effect_on_the_next_request(auth_app, session_factory):
    _, cookie = _signed_in_admin(auth_app, session_factory)
    assert curl_post(auth_app, ADMIN_ACTION, cookie, json_body={}).status_code == 200

    with session_factory() as s, s.begin():
        set_user_role(s, email=ADMIN, role=ROLE_VIEWER)
    assert curl_post(auth_app, ADMIN_ACTION, cookie, json_body={}).status_code == 403

    with session_factory() as s, s.begin():
        delete_user(s, ADMIN)
    assert curl_post(auth_app, ADMIN_ACTION, cookie, json_body={}).status_code == 401


def test_cookie_post_that_is_not_json_never_acts(auth_app, session_factory, admin_calls):
    _, cookie = _signed_in_admin(auth_app, session_factory)
    for data, content_type in (
        ("dry_run=false", "application/x-www-form-urlencoded"),
        ('{"dry_run": false}', "text/plain"),
        ("--b\r\n\r\n--b--", "multipart/form-data; boundary=b"),
        ("", None),
    ):
        headers = {"Content-Type": content_type} if content_type else {}
        response = curl_post(auth_app, ADMIN_ACTION, cookie, data=data, headers=headers)
        assert response.status_code == 415, content_type
        assert response.get_json()["error"]["code"] == "unsupported_media_type"
    assert admin_calls == []
    ok = curl_post(
        auth_app,
        ADMIN_ACTION,
        cookie,
        data="{}",
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200


def test_idle_and_absolute_lifetimes_end_the_session(auth_app, session_factory):
    _, cookie = _signed_in_admin(auth_app, session_factory)
    config = auth_app.config["ONRAMP"]
    with session_factory() as s, s.begin():
        idle_too_long = utcnow() - timedelta(minutes=config.session_idle_minutes + 1)
        s.execute(update(UserSession).values(last_seen_at=idle_too_long))
    assert curl_post(auth_app, ADMIN_ACTION, cookie, json_body={}).status_code == 401

    _, cookie = _signed_in_admin_again(auth_app)
    assert curl_post(auth_app, ADMIN_ACTION, cookie, json_body={}).status_code == 200
    with session_factory() as s, s.begin():
        # Active all along (last seen just now) but signed in too long ago.
        s.execute(
            update(UserSession)
            .where(UserSession.revoked_at.is_(None))
            .values(created_at=utcnow() - timedelta(hours=config.session_absolute_hours, minutes=1))
        )
    assert curl_post(auth_app, ADMIN_ACTION, cookie, json_body={}).status_code == 401


def _signed_in_admin_again(auth_app):
    client = auth_app.test_client()
    assert sign_in(client, ADMIN).status_code == 302
    return client, session_cookie(client)


def test_repeated_failed_sign_ins_are_throttled_for_one_window(auth_app, session_factory, fresh_provider):
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    client = auth_app.test_client()
    for _ in range(throttle.LIMIT):
        assert sign_in(client, "stranger@example.com").status_code == 403

    blocked = client.get("/auth/login")
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= throttle.WINDOW.total_seconds()
    assert blocked.get_json()["error"]["code"] == "too_many_requests"

    # Not forever: once the window has passed, the real user signs in.
    with session_factory() as s, s.begin():
        s.execute(
            update(AuthThrottle).values(
                window_start=AuthThrottle.window_start - throttle.WINDOW,
                blocked_until=AuthThrottle.blocked_until - throttle.WINDOW,
            )
        )
    assert sign_in(client, ADMIN).status_code == 302
    assert client.get("/auth/me").get_json()["name"] == ADMIN


def test_sign_in_emails_are_matched_case_insensitively(auth_app, session_factory):
    _add_user(session_factory, ADMIN, ROLE_ADMIN)
    client = auth_app.test_client()
    assert sign_in(client, "Ops@Example.COM").status_code == 302
    assert client.get("/auth/me").get_json()["name"] == ADMIN


def test_sign_in_is_refused_when_not_configured(client):
    # The default test app has no OIDC client and no ADMIN_EMAIL_DOMAINS: fail closed.
    response = client.get("/auth/login")
    assert response.status_code == 503
    assert set(response.get_json()["error"]["details"]["missing"]) == {
        "OIDC_CLIENT_ID",
        "OIDC_CLIENT_SECRET",
        "ADMIN_EMAIL_DOMAINS",
        "PUBLIC_BASE_URL",
    }


# --- the Authorization header: only our key shape or our secret header means "API key" -------


def test_a_foreign_authorization_scheme_does_not_break_cookie_auth(auth_app, session_factory, admin_calls):
    client, _ = _signed_in_admin(auth_app, session_factory)
    # e.g. a proxy in front of the service adding its own Basic credentials
    for value in ("Basic dXNlcjpwYXNz", "Bearer eyJhbGciOiJub25lIn0.e30.", "Negotiate  abc"):
        response = client.post(ADMIN_ACTION, json={}, headers={"Authorization": value})
        assert response.status_code == 200, value
        assert response.get_json()["kind"] == "user"
        assert client.get(VIEWER_PAGE, headers={"Authorization": value}).status_code == 200
    assert [a.name for a in admin_calls] == [ADMIN] * 3


def test_a_half_sent_pair_of_our_headers_is_401_even_with_a_cookie(auth_app, session_factory, admin_calls):
    client, _ = _signed_in_admin(auth_app, session_factory)
    for headers in (
        {"Authorization": "ork_some-key-without-a-scheme"},
        {"Authorization": ""},
        {"or-internal-api-auth-secret": "a-secret"},
        # Our secret header makes Authorization the key, whatever it looks like: never a fall-back.
        {"Authorization": "Basic dXNlcjpwYXNz", "or-internal-api-auth-secret": "a-secret"},
    ):
        response = client.post(ADMIN_ACTION, json={}, headers=headers)
        assert response.status_code == 401, headers
        assert response.get_json()["error"]["code"] == "unauthorized"
    assert admin_calls == []


# --- the redirect URI: from PUBLIC_BASE_URL, never from the request's Host header -------------


def _redirect_uri(login_response) -> str:
    assert login_response.status_code == 302, login_response.get_json()
    query = parse_qs(urlsplit(login_response.headers["Location"]).query)
    return query["redirect_uri"][0]


def test_redirect_uri_ignores_the_host_header(auth_app):
    client = auth_app.test_client()
    forged = client.get("/auth/login", headers={"Host": "attacker.test"})
    assert urlsplit(_redirect_uri(forged)).hostname == "localhost"
    assert _redirect_uri(forged) == f"{PUBLIC_BASE_URL}/auth/callback"


@pytest.fixture
def app_with(auth_app):
    """`app_with(**config_changes)`: another app on the same database and provider."""
    made = []

    def build(**changes):
        application = create_app(dataclasses.replace(auth_app.config["ONRAMP"], **changes))
        made.append(application)
        return application

    yield build
    for application in made:
        application.extensions["onramp_db"].dispose()


def test_sign_in_without_public_base_url_fails_closed_outside_development(app_with):
    client = app_with(public_base_url=None).test_client()
    for path in ("/auth/login", "/auth/callback?code=x&state=y"):
        response = client.get(path, headers={"Host": "attacker.test"})
        assert response.status_code == 503, path
        error = response.get_json()["error"]
        assert error["code"] == "sign_in_not_configured"
        assert error["details"]["missing"] == ["PUBLIC_BASE_URL"]
        assert "PUBLIC_BASE_URL" in error["message"]


def test_in_development_the_request_host_may_stand_in(app_with, session_factory):
    application = app_with(public_base_url=None, environment="development")
    client = application.test_client()
    assert _redirect_uri(client.get("/auth/login")) == "http://localhost/auth/callback"
    assert _redirect_uri(client.get("/auth/login", headers={"Host": "127.0.0.1:8000"})) == (
        "http://127.0.0.1:8000/auth/callback"
    )
    # A configured base wins in development too.
    configured = app_with(public_base_url="https://onramp.example.com", environment="development")
    assert _redirect_uri(configured.test_client().get("/auth/login")) == "https://onramp.example.com/auth/callback"
