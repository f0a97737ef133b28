"""Secrets never leak: API secrets, the signing secret, the app's SECRET_KEY, signatures and the
sign-in session cookie stay out of logs (records and the process's stdout/stderr), out of Sentry
events and out of error responses."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import sentry_sdk
from sqlalchemy import update

from app.auth.users import create_user
from app.models.base import utcnow
from app.models.identity import ROLE_ADMIN, UserSession
from app.signing import sign
from tests.integration.auth_support import (
    curl_post,
    session_cookie,
    sign_in,
)
from tests.support.retry_scenarios import (
    SIGNING_SECRET,
    URL,
    api_key_headers,
    backlog,
    post,
    window,
)


@pytest.fixture
def captured(caplog, capfd):
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        out, err = capfd.readouterr()
        records = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
        return "\n".join([out, err, records, caplog.text])

    return text


def _assert_absent(secrets: list[str], *haystacks: str) -> None:
    for secret in secrets:
        assert len(secret) >= 6  # a meaningful needle
        for haystack in haystacks:
            assert secret not in haystack, f"secret leaked: {secret[:3]}..."


def test_failed_api_key_auth_leaks_no_secret(client, session_factory, config, captured):
    good = api_key_headers(session_factory)
    wrong = "wrong-secret-0d6f2b9e"
    response = post(client, {**good, "or-internal-api-auth-secret": wrong}, window())
    assert response.status_code == 401
    body = response.get_data(as_text=True)
    logs = captured()
    assert "retry-batch 401" in logs  # the capture really sees the request log
    _assert_absent([wrong, good["or-internal-api-auth-secret"], config.secret_key], body, logs)


def test_trigger_with_bad_signature_leaks_no_secret(client, load, config, captured):
    data = backlog(0)
    load(data)
    raw = json.dumps({"trigger_key": "deal-1", "data": {}}).encode()
    good_signature = sign(SIGNING_SECRET, raw)
    bad_signature = sign("attacker-guess-secret", raw)
    response = client.post(
        f"/api/ramps/{data['ramps'][0]['uuid']}/trigger",
        data=raw,
        content_type="application/json",
        headers={"X-Onramp-Signature": bad_signature},
    )
    assert response.status_code == 401
    body = response.get_data(as_text=True)
    secrets = [SIGNING_SECRET, good_signature.split("=", 1)[1], bad_signature.split("=", 1)[1], config.secret_key]
    _assert_absent(secrets, body, captured())


def test_failing_replay_leaks_no_secret(client, load, session_factory, config, webhook_receiver, captured):
    webhook_receiver.respond(500)
    load(
        backlog(
            2,
            base_url=webhook_receiver.url,
            steps=["fetch_crm_record", "find_or_create_account", "create_project", "notify"],
        )
    )
    admin = api_key_headers(session_factory)
    response = post(client, admin, window(dry_run=False))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["summary"]["error"] == 2  # the replays really failed
    body = response.get_data(as_text=True)
    logs = captured()
    assert "retry batch" in logs and "IntegrationConnectionError" in body + logs
    _assert_absent([admin["or-internal-api-auth-secret"], SIGNING_SECRET, config.secret_key], body, logs)


# --------------------------------------------------------------------------- session cookie
# People sign in with Google (OIDC); the `session` cookie then works like a password (curl -b),
# so it must stay out of logs, stdout/stderr, Sentry events and error responses.

COOKIE_ADMIN = "oncall@example.com"
REPLAY_STEPS = ["fetch_crm_record", "find_or_create_account", "create_project", "notify"]


def _signed_in_cookie(auth_app, session_factory) -> str:
    """The real sign-in flow against the mock provider; returns the `session` cookie value."""
    with session_factory() as s, s.begin():
        create_user(s, email=COOKIE_ADMIN, role=ROLE_ADMIN)
    browser = auth_app.test_client()
    assert sign_in(browser, COOKIE_ADMIN).status_code == 302
    cookie = session_cookie(browser)
    assert cookie and len(cookie) > 40
    return cookie


def _cookie_needles(auth_app, cookie: str) -> list[str]:
    """The cookie, its signature part, and the server-side sid it carries."""
    sid = auth_app.session_interface.get_signing_serializer(auth_app).loads(cookie)["sid"]
    return [cookie, cookie.rsplit(".", 1)[1], sid]


def _response_text(response) -> str:
    # A Set-Cookie back to the caller is not a leak; every other header and the body are.
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "set-cookie")
    return headers + "\n" + response.get_data(as_text=True)


def _assert_event_has_no_cookie(event: dict) -> None:
    request = event.get("request") or {}
    cookies = request.get("cookies")
    if isinstance(cookies, dict):  # kept by name but with every value filtered is fine too
        cookies = set(cookies.values()) - {"[Filtered]", ""} or None
    assert cookies in (None, "", "[Filtered]"), request.get("cookies")
    headers = {k.lower(): v for k, v in (request.get("headers") or {}).items()}
    assert headers.get("cookie") in (None, "", "[Filtered]"), headers.get("cookie")


def test_session_cookie_stays_out_of_logs_on_a_good_call(auth_app, session_factory, load, captured, sentry_events):
    load(backlog(2))
    cookie = _signed_in_cookie(auth_app, session_factory)
    response = curl_post(auth_app, URL, cookie, json_body=window())
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["summary"]["eligible"] == 2  # the cookie really authenticated
    sentry_sdk.flush()
    logs = captured()
    assert "retry-batch 200" in logs and "signed in" in logs  # the capture sees both requests
    needles = _cookie_needles(auth_app, cookie)
    _assert_absent(needles, _response_text(response), logs, sentry_events.raw())


def test_tampered_or_expired_cookie_is_401_without_echoing_it(auth_app, session_factory, load, captured, sentry_events):
    load(backlog(1))
    cookie = _signed_in_cookie(auth_app, session_factory)
    payload, signature = cookie.rsplit(".", 1)
    tampered = f"{payload}.{signature[::-1]}"
    assert tampered != cookie
    refused = curl_post(auth_app, URL, tampered, json_body=window())

    config = auth_app.config["ONRAMP"]
    with session_factory() as s, s.begin():
        s.execute(
            update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=config.session_idle_minutes + 1))
        )
    expired = curl_post(auth_app, URL, cookie, json_body=window())

    for response in (refused, expired):
        assert response.status_code == 401
        body = response.get_json()
        assert set(body) == {"error", "request_id"} and body["error"]["code"] == "unauthorized"
    # The expired sid is dropped: whatever cookie the 401 sets no longer carries it.
    assert cookie not in expired.headers.get("Set-Cookie", "")
    sentry_sdk.flush()
    logs = captured()
    assert "retry-batch 401" in logs
    needles = _cookie_needles(auth_app, cookie) + [tampered, tampered.rsplit(".", 1)[1]]
    responses = _response_text(refused) + _response_text(expired)
    _assert_absent(needles, responses, logs, sentry_events.raw())


def test_session_cookie_stays_out_of_failing_replays_and_their_sentry_events(
    auth_app, session_factory, load, webhook_receiver, captured, sentry_events
):
    webhook_receiver.respond(500)
    load(backlog(2, base_url=webhook_receiver.url, steps=REPLAY_STEPS))
    cookie = _signed_in_cookie(auth_app, session_factory)
    response = curl_post(auth_app, URL, cookie, json_body=window(dry_run=False))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["summary"]["error"] == 2  # the replays really failed
    sentry_sdk.flush()

    replay_events = [e for e in sentry_events.events if e.get("tags", {}).get("replay") == "failed"]
    assert len(replay_events) == 2
    for event in replay_events:
        assert event["user"]["username"] == COOKIE_ADMIN  # reported with who ran it
        assert event.get("request"), "the event carries the request it happened in"
        _assert_event_has_no_cookie(event)
    logs = captured()
    assert "IntegrationConnectionError" in logs + response.get_data(as_text=True)
    needles = _cookie_needles(auth_app, cookie)
    _assert_absent(needles, _response_text(response), logs, sentry_events.raw())
