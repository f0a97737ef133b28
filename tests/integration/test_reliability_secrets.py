"""Secrets never leak: API secrets, the signing secret, the app's SECRET_KEY and signatures stay out
of logs (records and the process's stdout/stderr) and out of error responses."""
from __future__ import annotations

import json
import logging

import pytest

from app.signing import sign
from tests.support.retry_scenarios import SIGNING_SECRET, api_key_headers, backlog, post, window


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
    webhook_receiver.fail_with(500)
    load(backlog(2, base_url=webhook_receiver.url, steps=["fetch_crm_record", "find_or_create_account",
                                                         "create_project", "notify"]))
    admin = api_key_headers(session_factory)
    response = post(client, admin, window(dry_run=False))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["summary"]["error"] == 2  # the replays really failed
    body = response.get_data(as_text=True)
    logs = captured()
    assert "retry batch" in logs and "IntegrationConnectionError" in body + logs
    _assert_absent([admin["or-internal-api-auth-secret"], SIGNING_SECRET, config.secret_key], body, logs)
