"""The devtools mocks (devtools/mocks/) behave as their README promises: the rehearsal and the
tests trust them."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
from email.message import EmailMessage

import pytest
import requests

from app.config import REPO_ROOT
from app.signing import sign
from devtools.mocks.crm import MockCrm
from devtools.mocks.smtp import SmtpSink


@pytest.fixture
def crm():
    with MockCrm(secrets=["acme-signing-secret"]) as running:
        yield running


def test_webhooks_are_recorded_with_the_service_signature_checked(crm):
    body = json.dumps({"event": "PROJECT_CREATED", "project": {"uuid": "p-1"}}).encode()
    good = requests.post(
        crm.url + "/webhooks/acme",
        data=body,
        timeout=5,
        headers={"X-Onramp-Signature": sign("acme-signing-secret", body)},
    )
    forged = requests.post(
        crm.url + "/webhooks/acme", data=body, timeout=5, headers={"X-Onramp-Signature": sign("someone-else", body)}
    )
    unsigned = requests.post(crm.url + "/webhooks/acme", data=body, timeout=5)
    assert [r.status_code for r in (good, forged, unsigned)] == [200, 200, 200]
    received = requests.get(crm.url + "/_received", timeout=5).json()
    assert [w["signature_valid"] for w in received["webhooks"]] == [True, False, False]
    assert received["webhooks"][0]["event"] == "PROJECT_CREATED"
    assert received["counts"] == {"webhooks": 3, "webhooks_signature_valid": 1, "fetches": 0}


def test_control_switches_failures_and_objects_are_served(crm):
    assert requests.get(crm.url + "/objects/deal-42", timeout=5).json()["id"] == "deal-42"
    for mode, status in (("503", 503), ("429", 429)):
        assert requests.post(crm.url + "/_control", json={"mode": mode}, timeout=5).json() == {"mode": mode}
        assert requests.get(crm.url + "/objects/deal-42", timeout=5).status_code == status
        assert requests.post(crm.url + "/webhooks", data=b"{}", timeout=5).status_code == status
    requests.post(crm.url + "/_control", json={"mode": "timeout", "delay": 5}, timeout=5)
    with pytest.raises(requests.Timeout):
        requests.get(crm.url + "/objects/deal-42", timeout=0.5)
    assert requests.post(crm.url + "/_control", json={"mode": "nope"}, timeout=5).status_code == 400
    requests.post(crm.url + "/_control", json={"mode": "ok"}, timeout=5)
    assert requests.get(crm.url + "/objects/deal-42", timeout=5).status_code == 200
    assert requests.get(crm.url + "/_received", timeout=5).json()["counts"]["fetches"] == 5
    requests.post(crm.url + "/_reset", timeout=5)
    assert requests.get(crm.url + "/_received", timeout=5).json()["counts"]["fetches"] == 0


def test_smtp_sink_keeps_messages_as_json_files(tmp_path):
    with SmtpSink(directory=tmp_path) as sink:
        message = EmailMessage()
        message["From"] = "onramp@localhost"
        message["To"] = "owner@customer.example"
        message["Subject"] = "Your project was created"
        message.set_content("Hello.\n.\nA line that starts with a dot.")
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.login("user", "password")
            client.send_message(message)
        assert sink.count() == 1
        [mail] = sink.messages
        assert mail.message["Subject"] == "Your project was created"
    (saved,) = tmp_path.glob("*.json")
    stored = json.loads(saved.read_text())
    assert stored["rcpt_to"] == ["owner@customer.example"]
    assert stored["subject"] == "Your project was created"
    assert "\n.\nA line that starts with a dot." in stored["data"].replace("\r\n", "\n")
    assert "password" not in saved.read_text()


def test_failure_mode_wins_over_scripted_answers_and_control_calls_are_not_traffic(crm):
    crm.respond(200, {"id": "scripted"}, path="/objects/deal-1")
    assert requests.get(crm.url + "/objects/deal-1", timeout=5).json() == {"id": "scripted"}
    assert requests.get(crm.url + "/objects/deal-2", timeout=5).json()["id"] == "deal-2"  # the CRM's own
    crm.set_mode("503")
    assert requests.get(crm.url + "/objects/deal-1", timeout=5).status_code == 503
    requests.get(crm.url + "/_received", timeout=5)
    assert [(r.method, r.path) for r in crm.wait_for(3)] == [("GET", f"/objects/deal-{n}") for n in (1, 2, 1)]
    crm.respond(201)  # for every path, forgetting the per-path answer
    crm.set_mode("ok")
    assert requests.get(crm.url + "/objects/deal-1", timeout=5).status_code == 201


@pytest.mark.parametrize("module", ["crm", "smtp", "triggers"])
def test_each_mock_runs_as_a_module_from_the_repo_root(module):
    # The commands devtools/mock-integrations/README.md shows.
    done = subprocess.run(
        [sys.executable, "-m", f"devtools.mocks.{module}", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"python -m devtools.mocks.{module}" in done.stdout
