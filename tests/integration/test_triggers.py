"""`POST /api/ramps/<ramp_uuid>/trigger`: the signed CRM webhook that starts an execution."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from app.models import Notification, Project, RampExecution, WorkflowHistory
from app.models.executions import HISTORY_ACTION_TRIGGERED
from app.signing import sign, verify
from tests.support import scenarios as sc

BODY = {"trigger_key": "deal-42", "data": sc.payload("c-1", "Globex", "owner@example.com")}


def _post(
    client,
    ramp_uuid,
    body=BODY,
    *,
    secret=sc.SIGNING_SECRET,
    content_type="application/json",
    signature: str | None = "auto",
):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {}
    if signature == "auto":
        headers["X-Onramp-Signature"] = sign(secret, raw)
    elif signature is not None:
        headers["X-Onramp-Signature"] = signature
    return client.post(f"/api/ramps/{ramp_uuid}/trigger", data=raw, content_type=content_type, headers=headers)


def _executions(session_factory) -> int:
    with session_factory() as s, s.begin():
        return s.scalar(select(func.count()).select_from(RampExecution))


@pytest.fixture
def ramp_uuid(load, webhook_receiver):
    data = sc.scenario(webhook_receiver.url)
    load(data)
    return data["ramps"][0]["uuid"]


def test_signed_trigger_runs_the_ramp_and_sends_a_signed_webhook(client, ramp_uuid, session_factory, webhook_receiver):
    response = _post(client, ramp_uuid)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"execution_uuid", "status", "project_uuid", "error", "duplicate"}
    assert body["duplicate"] is False
    assert body["status"] == "SUCCESS" and body["error"] is None

    with session_factory() as s, s.begin():
        execution = s.scalar(select(RampExecution))
        assert str(execution.uuid) == body["execution_uuid"]
        assert (execution.status_code, execution.ramp_version, execution.trigger_key) == ("SUCCESS", 1, "deal-42")
        assert execution.trigger_payload == BODY["data"]
        project = s.scalar(select(Project))
        assert str(project.uuid) == body["project_uuid"] and project.execution_id == execution.id
        history = s.scalar(select(WorkflowHistory))
        assert (history.action, history.actor) == (HISTORY_ACTION_TRIGGERED, "crm:hubspot")
        statuses = {n.channel: n.status for n in s.scalars(select(Notification))}
        assert statuses == {"webhook": "delivered", "email": "delivered"}

    [delivery] = webhook_receiver.requests_to("/webhooks")
    assert delivery.header("X-Onramp-Event") == "PROJECT_CREATED"
    assert verify(sc.SIGNING_SECRET, delivery.body, delivery.header("X-Onramp-Signature"))
    assert delivery.json()["project"]["uuid"] == body["project_uuid"]
    assert delivery.json()["execution_uuid"] == body["execution_uuid"]


def test_runs_the_current_version(client, load, session_factory, webhook_receiver):
    data = sc.scenario(webhook_receiver.url)
    ramp = data["ramps"][0]
    ramp["versions"].append(
        {
            "version": 2,
            "steps": [{"type": t} for t in ("fetch_crm_record", "find_or_create_account", "create_project", "notify")],
        }
    )
    ramp["current_version"] = 2
    load(data)

    response = _post(client, ramp["uuid"])

    assert response.status_code == 201 and response.get_json()["status"] == "SUCCESS"
    assert [r.path for r in webhook_receiver.requests] == ["/objects/deal-42", "/webhooks"]
    with session_factory() as s, s.begin():
        assert s.scalar(select(RampExecution.ramp_version)) == 2


@pytest.mark.parametrize(
    "kwargs",
    [{"secret": "not-the-secret"}, {"signature": None}, {"signature": "sha256=deadbeef"}, {"signature": "garbage"}],
    ids=["wrong-secret", "missing", "wrong-digest", "malformed"],
)
def test_bad_or_missing_signature_is_401(client, ramp_uuid, session_factory, kwargs):
    response = _post(client, ramp_uuid, **kwargs)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert _executions(session_factory) == 0


def test_signature_covers_the_exact_bytes(client, ramp_uuid):
    raw = json.dumps(BODY).encode()
    signature = sign(sc.SIGNING_SECRET, raw)
    tampered = raw.replace(b"Globex", b"Evilco")
    response = client.post(
        f"/api/ramps/{ramp_uuid}/trigger",
        data=tampered,
        content_type="application/json",
        headers={"X-Onramp-Signature": signature},
    )
    assert response.status_code == 401


def test_vendor_without_integration_is_401(client, load):
    data = sc.scenario()
    data["vendors"][0]["integration"] = None
    load(data)
    assert _post(client, data["ramps"][0]["uuid"]).status_code == 401


@pytest.mark.parametrize("ramp", [str(uuid.uuid4()), "not-a-uuid"], ids=["unknown", "malformed"])
def test_unknown_ramp_is_404_even_unsigned(client, ramp_uuid, ramp):
    response = _post(client, ramp, signature=None)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "status, reason", [("archived", "ramp_archived"), ("deleted", "ramp_deleted"), ("draft", "workflow_is_draft")]
)
def test_ramp_that_cannot_run_is_409(client, load, session_factory, status, reason):
    data = sc.scenario(status=status)
    load(data)
    response = _post(client, data["ramps"][0]["uuid"])
    assert response.status_code == 409
    assert response.get_json()["error"]["details"] == {"reason": reason}
    assert _executions(session_factory) == 0


def test_draft_current_version_is_409(client, load, session_factory):
    data = sc.scenario()
    data["ramps"][0]["versions"].append({"version": 2, "draft": True})
    data["ramps"][0]["current_version"] = 2
    load(data)
    response = _post(client, data["ramps"][0]["uuid"])
    assert response.status_code == 409
    assert response.get_json()["error"]["details"] == {"reason": "workflow_is_draft"}
    assert _executions(session_factory) == 0


@pytest.mark.parametrize(
    "body, field",
    [
        ({"data": {}}, "trigger_key"),
        ({"trigger_key": "deal-1"}, "data"),
        ({"trigger_key": "deal-1", "data": [1, 2]}, "data"),
        ({"trigger_key": "", "data": {}}, "trigger_key"),
        ({"trigger_key": "deal-1", "data": {}, "extra": True}, "extra"),
    ],
)
def test_malformed_body_is_400(client, ramp_uuid, session_factory, body, field):
    response = _post(client, ramp_uuid, body)
    assert response.status_code == 400
    assert field in response.get_json()["error"]["details"]
    assert _executions(session_factory) == 0


def test_invalid_json_is_400(client, ramp_uuid):
    assert _post(client, ramp_uuid, b'{"trigger_key": ').status_code == 400


def test_non_json_is_415(client, ramp_uuid, session_factory):
    response = _post(client, ramp_uuid, b"trigger_key=deal-1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert _executions(session_factory) == 0


def test_checks_run_in_the_documented_order(client, load):
    data = sc.scenario(status="archived")
    load(data)
    archived = data["ramps"][0]["uuid"]
    # Bad signature beats non-JSON; non-JSON beats a malformed body; a malformed body beats 409.
    assert _post(client, archived, b"x", content_type="text/plain", secret="wrong").status_code == 401
    assert _post(client, archived, b"x", content_type="text/plain").status_code == 415
    assert _post(client, archived, {"trigger_key": "k"}).status_code == 400
    assert _post(client, archived).status_code == 409


def test_missing_company_id_is_accepted_with_a_config_error(client, ramp_uuid, session_factory, webhook_receiver):
    body = {"trigger_key": "deal-7", "data": {"company": {"name": "Globex"}}}

    response = _post(client, ramp_uuid, body)

    assert response.status_code == 201
    result = response.get_json()
    assert result["status"] == "ERROR" and result["project_uuid"] is None
    assert result["error"]["type"] == "MissingTriggerField"
    assert result["error"]["category"] == "config"
    assert "company.id" in result["error"]["message"]
    with session_factory() as s, s.begin():
        execution = s.scalar(select(RampExecution))
        assert (execution.status_code, execution.last_error_category) == ("ERROR", "config")
        assert s.scalar(select(func.count()).select_from(Notification)) == 0
    assert webhook_receiver.requests == []


def test_webhook_receiver_down_still_accepts_and_keeps_the_notification_pending(
    client, ramp_uuid, session_factory, webhook_receiver
):
    webhook_receiver.respond(503)

    response = _post(client, ramp_uuid)

    assert response.status_code == 201 and response.get_json()["status"] == "SUCCESS"
    with session_factory() as s, s.begin():
        webhook = s.scalar(select(Notification).where(Notification.channel == "webhook"))
        assert (webhook.status, webhook.attempts) == ("pending", 1)
        assert "503" in webhook.last_error
