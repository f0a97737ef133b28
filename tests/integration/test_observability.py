"""Sentry reporting (through an in-memory transport), scrubbing, and JSON logs with request ids."""

from __future__ import annotations

import json
import logging

import sentry_sdk

from app import create_app, observability
from app.retries import telemetry
from tests.support.sentry import CollectingTransport

SECRET_VALUES = ("k-live-123", "plain-secret-xyz", "sha256=deadbeef", "cookie-value-777")


def _json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


# --------------------------------------------------------------------------- Sentry on/off


def test_without_dsn_nothing_is_sent_and_nothing_breaks(config, reset_sentry):
    sentry_sdk.init()
    application = create_app(config)  # no SENTRY_DSN
    try:
        assert sentry_sdk.get_client().dsn is None
        assert sentry_sdk.get_client().transport is None  # nowhere to send anything
        # The retry engine calls this on every failed replay: it must be a silent no-op.
        telemetry.capture_replay_failure(RuntimeError("boom"), tags={"batch_id": "b"}, actor="ops@example.com")
        assert application.test_client().get("/healthz").status_code == 200
    finally:
        application.extensions["onramp_db"].dispose()


def test_dsn_turns_on_flask_and_sqlalchemy_with_release_and_environment(sentry_config, reset_sentry):
    application = create_app(sentry_config)
    try:
        client = sentry_sdk.get_client()
        assert client.is_active()
        assert client.options["release"] == "onramp@1.2.3"
        assert client.options["environment"] == "staging"
        assert client.options["send_default_pii"] is False
        assert {"flask", "sqlalchemy"} <= set(client.integrations)
    finally:
        application.extensions["onramp_db"].dispose()


# --------------------------------------------------------------------------- replay failures


def test_failed_replay_is_captured_with_tags_and_actor(sentry_events):
    try:
        raise UnboundLocalError("cannot access local variable 'new_task'")
    except UnboundLocalError as exc:
        telemetry.capture_replay_failure(
            exc,
            tags={
                "batch_id": "6f1c0000-0000-4000-8000-000000000001",
                "execution_uuid": "6f1c0000-0000-4000-8000-000000000002",
                "vendor_id": 7,
                "ramp_uuid": "6f1c0000-0000-4000-8000-000000000003",
                "error_category": "runtime",
            },
            actor="ops@example.com",
        )
    sentry_sdk.flush()
    (event,) = sentry_events.events
    assert event["tags"]["batch_id"] == "6f1c0000-0000-4000-8000-000000000001"
    assert event["tags"]["execution_uuid"] == "6f1c0000-0000-4000-8000-000000000002"
    assert event["tags"]["vendor_id"] == "7"
    assert event["tags"]["ramp_uuid"] == "6f1c0000-0000-4000-8000-000000000003"
    assert event["tags"]["error_category"] == "runtime"
    assert event["user"]["username"] == "ops@example.com"
    assert event["release"] == "onramp@1.2.3"
    assert event["environment"] == "staging"
    (exc_value,) = event["exception"]["values"]
    assert exc_value["type"] == "UnboundLocalError"
    assert "new_task" in exc_value["value"]


def test_tags_of_one_replay_do_not_leak_into_the_next_event(sentry_events):
    telemetry.capture_replay_failure(RuntimeError("first"), tags={"batch_id": "b-1"}, actor="a@example.com")
    sentry_sdk.capture_message("unrelated")
    sentry_sdk.flush()
    first, second = sentry_events.events
    assert first["tags"]["batch_id"] == "b-1"
    assert "batch_id" not in second.get("tags", {})
    assert "user" not in second or not second["user"].get("username")


def test_payloads_and_secrets_in_extra_and_breadcrumbs_are_scrubbed(sentry_events):
    payload = {"company": {"id": "c-1", "name": "Globex Payload Corp"}, "owner": {"email": "owner@globex.test"}}
    with sentry_sdk.new_scope() as scope:
        scope.set_extra("trigger_payload", payload)
        scope.set_extra("data", payload)
        scope.set_extra("signing_secret", "plain-secret-xyz")
        scope.set_extra("execution", {"uuid": "e-1", "payload": payload, "api_secret": "plain-secret-xyz"})
        sentry_sdk.add_breadcrumb(
            category="replay",
            message="replaying e-1",
            data={"trigger_payload": payload, "secret": "plain-secret-xyz", "step": "create_project"},
        )
        telemetry.capture_replay_failure(RuntimeError("boom"), tags={"batch_id": "b-2"}, actor=None)
    sentry_sdk.flush()
    (event,) = sentry_events.events
    raw = sentry_events.raw()
    assert "Globex Payload Corp" not in raw
    assert "owner@globex.test" not in raw
    assert "plain-secret-xyz" not in raw
    assert event["extra"]["trigger_payload"] == "[Filtered]"
    assert event["extra"]["execution"]["uuid"] == "e-1"  # harmless fields survive
    crumb = next(c for c in event["breadcrumbs"]["values"] if c.get("category") == "replay")
    assert crumb["message"] == "replaying e-1"
    assert crumb["data"]["step"] == "create_project"
    assert crumb["data"]["trigger_payload"] == "[Filtered]"


def test_request_headers_cookies_and_body_are_scrubbed_from_flask_errors(sentry_config, reset_sentry):
    application = create_app(sentry_config)

    @application.post("/_test/boom")
    def _boom():
        raise RuntimeError("kaboom in a view")

    collector = CollectingTransport()
    observability.init_sentry(sentry_config, transport=collector)
    try:
        response = application.test_client().post(
            "/_test/boom",
            json={"trigger_key": "deal-9", "data": {"company": {"name": "Globex Payload Corp"}}},
            headers={
                "Authorization": "k-live-123",
                "or-internal-api-auth-secret": "plain-secret-xyz",
                "X-Onramp-Signature": "sha256=deadbeef",
                "Cookie": "session=cookie-value-777",
                "X-Request-ID": "req-scrub-1",
            },
        )
        assert response.status_code == 500
        assert response.headers["X-Request-ID"] == "req-scrub-1"
        sentry_sdk.flush()
    finally:
        application.extensions["onramp_db"].dispose()

    assert collector.events, "an unhandled view error must reach Sentry"
    raw = collector.raw()
    for secret in SECRET_VALUES:
        assert secret not in raw
    assert "Globex Payload Corp" not in raw
    event = collector.events[0]
    assert event["tags"]["request_id"] == "req-scrub-1"
    req = event["request"]
    assert req.get("data") in (None, "[Filtered]")
    assert req.get("cookies") in (None, "[Filtered]")
    headers = {k.lower(): v for k, v in req.get("headers", {}).items()}
    for name in ("authorization", "or-internal-api-auth-secret", "x-onramp-signature", "cookie"):
        assert headers.get(name) in (None, "[Filtered]")
    assert req["url"].endswith("/_test/boom")  # the request is still identifiable


# --------------------------------------------------------------------------- JSON logs


def test_every_log_line_of_a_request_is_json_with_its_request_id(client, capsys):
    capsys.readouterr()
    response = client.get("/no-such-page", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "abc-123"
    lines = _json_lines(capsys.readouterr().err)
    request_lines = [line for line in lines if line["logger"] == "app.request"]
    assert request_lines, "each request writes one access line"
    assert all(line["request_id"] == "abc-123" for line in lines)
    access = request_lines[-1]
    assert access["status"] == 404 and access["path"] == "/no-such-page" and access["method"] == "GET"
    assert {"ts", "level", "message"} <= set(access)


def test_request_id_is_generated_when_missing_or_unsafe(client):
    generated = client.get("/healthz")
    rid = generated.headers["X-Request-ID"]
    assert len(rid) == 32 and rid != client.get("/healthz").headers["X-Request-ID"]
    unsafe = client.get("/healthz", headers={"X-Request-ID": 'evil"}; {"x":1'})
    assert unsafe.headers["X-Request-ID"] != 'evil"}; {"x":1'
    error = client.get("/no-such-page", headers={"X-Request-ID": "trace-77"})
    assert error.get_json()["request_id"] == "trace-77"


def test_batch_summary_is_one_structured_line(capsys):
    observability.configure_logging()
    capsys.readouterr()
    with observability.request_id_context("req-batch-1"):
        telemetry.log_batch_summary(
            batch_id="b-42",
            actor="api_key:runbook-bot",
            dry_run=False,
            summary={
                "matched": 310,
                "eligible": 300,
                "selected": 25,
                "skipped": 10,
                "skipped_by_reason": {"config_error": 4, "ramp_archived": 6},
                "success": 24,
                "error": 1,
                "remaining": 275,
            },
            duration_ms=812,
            request={
                "since": "2026-05-11T12:30:00+00:00",
                "error_pattern": "new_task",
                "suppress_notifications": True,
                "payload": {"never": "logged"},
            },
        )
    (line,) = [entry for entry in _json_lines(capsys.readouterr().err) if entry.get("event") == "retry_batch.summary"]
    assert line["request_id"] == "req-batch-1"
    assert line["batch_id"] == "b-42" and line["actor"] == "api_key:runbook-bot"
    assert (line["matched"], line["selected"], line["success"], line["error"], line["remaining"]) == (
        310,
        25,
        24,
        1,
        275,
    )
    assert line["skipped_by_reason"] == {"config_error": 4, "ramp_archived": 6}
    assert line["error_pattern"] == "new_task" and line["suppress_notifications"] is True
    assert "payload" not in line and "never" not in json.dumps(line)
    assert line["level"] == "INFO"


def test_lines_outside_a_request_still_carry_the_key(capsys):
    observability.configure_logging()
    capsys.readouterr()
    logging.getLogger("app.cli").warning("outside any request")
    (line,) = [e for e in _json_lines(capsys.readouterr().err) if e["message"] == "outside any request"]
    assert "request_id" in line and line["request_id"] is None


# --------------------------------------------------------------------------- end to end


def test_a_failing_replay_through_the_endpoint_reaches_sentry_scrubbed(
    app, sentry_events, load, webhook_receiver, engine
):
    from sqlalchemy import text

    from tests.support.scenarios import execution, payload, scenario

    webhook_receiver.respond(503)  # the CRM is still down: fetch_crm_record fails again
    data = scenario(
        webhook_receiver.url, ramp_steps=["fetch_crm_record", "find_or_create_account", "create_project", "notify"]
    )
    ramp_uuid = data["ramps"][0]["uuid"]
    row = execution(
        ramp_uuid,
        payload=payload(name="Globex Payload Corp", email="owner@globex.test"),
        error_type="IntegrationConnectionError",
        error_message="CRM answered 503",
    )
    data["executions"] = [row]
    data["api_keys"] = [
        {"name": "runbook-bot", "key": "k-live-123", "secret": "plain-secret-xyz", "role": "ONRAMP_ADMIN"}
    ]
    load(data)

    response = app.test_client().post(
        "/api/ramps/executions/retry-batch",
        json={"since": "2026-05-11T12:30:00Z", "dry_run": False, "suppress_notifications": True},
        headers={
            "Authorization": "k-live-123",
            "or-internal-api-auth-secret": "plain-secret-xyz",
            "X-Request-ID": "req-e2e-1",
        },
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["summary"]["error"] == 1
    sentry_sdk.flush()

    replay_events = [e for e in sentry_events.events if e.get("tags", {}).get("batch_id") == body["batch_id"]]
    assert len(replay_events) == 1
    event = replay_events[0]
    assert event["tags"]["execution_uuid"] == row["uuid"]
    assert event["tags"]["vendor_id"] == "1"
    assert event["tags"]["ramp_uuid"] == ramp_uuid
    assert event["tags"]["error_category"] == "integration"
    assert event["exception"]["values"][-1]["type"] == "IntegrationConnectionError"
    with engine.connect() as conn:
        actor = conn.execute(
            text("SELECT actor FROM or_retry_batches WHERE uuid = :u"), {"u": body["batch_id"]}
        ).scalar()
    # The operator who ran the batch (as recorded in its audit row) is the Sentry user.
    assert actor and actor in event["user"]["username"]
    raw = sentry_events.raw()
    for secret in ("k-live-123", "plain-secret-xyz", "Globex Payload Corp", "owner@globex.test", "s3cr3t"):
        assert secret not in raw
