"""The retry endpoint with an ONRAMP_ADMIN browser session (as in the runbook's curl -b examples)."""

from __future__ import annotations

from sqlalchemy import select

from app.auth.users import create_user
from app.models import RetryBatch
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER
from tests.integration.auth_support import (
    curl_post,
    session_cookie,
    sign_in,
)
from tests.support.retry_scenarios import URL, backlog, window


def _cookie_for(auth_app, session_factory, email: str, role: str) -> str:
    with session_factory() as s, s.begin():
        create_user(s, email=email, role=role)
    client = auth_app.test_client()
    assert sign_in(client, email).status_code == 302
    return session_cookie(client)


def test_admin_cookie_runs_a_dry_run_audited_as_the_user(auth_app, session_factory, load):
    load(backlog(2))
    cookie = _cookie_for(auth_app, session_factory, "ops@example.com", ROLE_ADMIN)
    response = curl_post(auth_app, URL, cookie, json_body=window())
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["summary"]["eligible"] == 2
    with session_factory() as s, s.begin():
        audit = s.scalar(select(RetryBatch))
    assert (audit.actor, audit.actor_type) == ("ops@example.com", "user")


def test_cookie_with_a_form_body_is_415(auth_app, session_factory):
    cookie = _cookie_for(auth_app, session_factory, "ops@example.com", ROLE_ADMIN)
    response = curl_post(
        auth_app,
        URL,
        cookie,
        data="since=2026-05-11T12:30:00Z",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415


def test_viewer_cookie_is_403(auth_app, session_factory):
    cookie = _cookie_for(auth_app, session_factory, "watcher@example.com", ROLE_VIEWER)
    assert curl_post(auth_app, URL, cookie, json_body=window()).status_code == 403
