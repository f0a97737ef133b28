"""Executing retry batches: draining, failure isolation, suppression, audit, dry runs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from app.models import ExecutionLog, Notification, Project, RampExecution, RetryBatch, WorkflowHistory
from app.models.executions import HISTORY_ACTION_REPLAYED
from app.notifications.delivery import dispatch_pending
from app.retries.reasons import REASON_CODES
from app.signing import SIGNATURE_HEADER, verify
from tests.support.retry_scenarios import (
    SIGNING_SECRET,
    api_key_headers,
    backlog,
    execution,
    post,
    ramp,
    vendor,
    window,
    world,
)


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="ops-bot")


def call(client, admin, **fields):
    response = post(client, admin, window(**fields))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def execute(client, admin, **fields):
    return call(client, admin, dry_run=False, **fields)


def rows_by_uuid(session_factory) -> dict[str, RampExecution]:
    with session_factory() as session, session.begin():
        return {str(e.uuid): e for e in session.scalars(select(RampExecution))}


def scalar(session_factory, statement):
    with session_factory() as session, session.begin():
        return session.scalar(statement)


def test_sixty_rows_drain_in_three_calls_oldest_first(client, admin, load, session_factory):
    data = backlog(60)
    load(data)
    expected_order = [e["uuid"] for e in data["executions"]]  # created 0.01 min apart, oldest first

    seen: list[str] = []
    for selected, remaining in ((25, 35), (25, 10), (10, 0)):
        body = execute(client, admin, suppress_notifications=True)
        assert body["summary"]["selected"] == selected
        assert body["summary"]["success"] == selected
        assert body["summary"]["error"] == 0
        assert body["summary"]["eligible"] == selected + remaining
        assert body["summary"]["remaining"] == remaining
        assert all(e["outcome"] == "success" and e["project_uuid"] for e in body["eligible"])
        seen += [e["execution_uuid"] for e in body["eligible"]]
    assert seen == expected_order

    last = execute(client, admin, suppress_notifications=True)
    assert last["summary"]["selected"] == 0
    assert last["summary"]["matched"] == 0
    assert last["eligible"] == []

    rows = rows_by_uuid(session_factory)
    assert {e.status_code for e in rows.values()} == {"SUCCESS"}
    assert {e.replay_attempts for e in rows.values()} == {1}
    assert scalar(session_factory, select(func.count()).select_from(Project)) == 60
    assert scalar(session_factory, select(func.count()).select_from(WorkflowHistory)) == 60


def test_one_batch_with_failures_and_successes(client, admin, load, session_factory, webhook_receiver, monkeypatch):
    reports = []
    monkeypatch.setattr(
        "app.retries.telemetry.capture_replay_failure",
        lambda exc, *, tags, actor: reports.append((type(exc).__name__, tags, actor)),
    )
    webhook_receiver.respond(503)  # the CRM API is down for every record ...
    r = ramp(steps=["fetch_crm_record", "find_or_create_account", "create_project", "notify"])
    ok1 = execution(r, minutes=1)
    crm_down = execution(r, minutes=2)
    no_company = execution(r, minutes=3, payload={"company": {"name": "Nameless"}})
    ok2 = execution(r, minutes=4)
    for ok in (ok1, ok2, no_company):  # ... except these records
        webhook_receiver.respond(200, {"id": ok["trigger_key"]}, path=f"/objects/{ok['trigger_key']}")
    load(world([vendor(base_url=webhook_receiver.url)], [r], [ok1, crm_down, no_company, ok2]))

    body = execute(client, admin, suppress_notifications=True)
    assert body["summary"]["selected"] == 4
    assert body["summary"]["success"] == 2
    assert body["summary"]["error"] == 2
    outcomes = {e["execution_uuid"]: e for e in body["eligible"]}
    assert [e["execution_uuid"] for e in body["eligible"]] == [
        ok1["uuid"],
        crm_down["uuid"],
        no_company["uuid"],
        ok2["uuid"],
    ]
    assert outcomes[crm_down["uuid"]]["error"] == {
        "type": "IntegrationConnectionError",
        "category": "integration",
        "message": "CRM answered 503",
    }
    assert outcomes[no_company["uuid"]]["error"]["type"] == "MissingTriggerField"
    assert outcomes[no_company["uuid"]]["error"]["category"] == "config"
    assert outcomes[ok1["uuid"]]["error"] is None and outcomes[ok1["uuid"]]["project_uuid"]

    rows = rows_by_uuid(session_factory)
    with session_factory() as session, session.begin():
        for failed in (crm_down, no_company):
            row = rows[failed["uuid"]]
            assert row.status_code == "ERROR"
            assert row.replay_attempts == 1
            assert session.scalar(select(Project).where(Project.execution_id == row.id)) is None
            last_log = session.scalars(
                select(ExecutionLog).where(ExecutionLog.execution_id == row.id).order_by(ExecutionLog.id.desc())
            ).first()
            assert (last_log.level, last_log.attempt) == ("ERROR", 1)
            assert last_log.error_type == outcomes[failed["uuid"]]["error"]["type"]
            (history,) = session.scalars(select(WorkflowHistory).where(WorkflowHistory.execution_id == row.id)).all()
            assert history.action == HISTORY_ACTION_REPLAYED
            assert history.actor == "ops-bot"
            assert str(history.batch_id) == body["batch_id"]
            assert history.details["outcome"] == "error"
            assert history.details["error_type"] == last_log.error_type
            assert history.details["attempt"] == 1
        for ok in (ok1, ok2):
            row = rows[ok["uuid"]]
            assert row.status_code == "SUCCESS"
            (history,) = session.scalars(select(WorkflowHistory).where(WorkflowHistory.execution_id == row.id)).all()
            assert history.details["outcome"] == "success"
            assert history.details["project_uuid"] == outcomes[ok["uuid"]]["project_uuid"]
            assert history.details["suppress_notifications"] is True
            assert history.details["version_run"] == 1

    assert sorted(tags["execution_uuid"] for _, tags, _ in reports) == sorted([crm_down["uuid"], no_company["uuid"]])
    assert all(tags["batch_id"] == body["batch_id"] and actor == "api_key:ops-bot" for _, tags, actor in reports)
    assert {tags["error_category"] for _, tags, _ in reports} == {"integration", "config"}

    # A failed replay counted as an attempt: the next identical call has nothing to do ...
    again = execute(client, admin, suppress_notifications=True)
    assert again["summary"]["selected"] == 0
    assert again["summary"]["skipped_by_reason"]["retry_limit_reached"] == 1
    assert again["summary"]["skipped_by_reason"]["config_error"] == 1  # the replay's own new error
    # ... unless max_attempts allows another one.
    webhook_receiver.respond(200, {"id": crm_down["trigger_key"]}, path=f"/objects/{crm_down['trigger_key']}")
    third = execute(client, admin, suppress_notifications=True, max_attempts=2)
    assert [(e["execution_uuid"], e["outcome"]) for e in third["eligible"]] == [(crm_down["uuid"], "success")]
    assert rows_by_uuid(session_factory)[crm_down["uuid"]].replay_attempts == 2


def test_a_failure_outside_the_runner_rolls_back_and_is_recorded(client, admin, load, session_factory, monkeypatch):
    """A database error after the runner (outside its savepoint) undoes the whole replay."""
    import app.retries.replay_unit as replay

    data = backlog(3)
    load(data)
    doomed = data["executions"][1]["uuid"]
    real_run = replay.run_execution

    def run_then_fail_for_one(session, execution, version, **kwargs):
        result = real_run(session, execution, version, **kwargs)
        if str(execution.uuid) == doomed:
            session.execute(text("SELECT 1 / 0"))  # a real DB error in the replay's transaction
        return result

    monkeypatch.setattr(replay, "run_execution", run_then_fail_for_one)
    body = execute(client, admin, suppress_notifications=True)
    assert [e["outcome"] for e in body["eligible"]] == ["success", "error", "success"]
    assert body["eligible"][1]["error"]["type"] == "DataError"
    assert (body["summary"]["success"], body["summary"]["error"], body["summary"]["remaining"]) == (2, 1, 0)

    with session_factory() as session, session.begin():
        row = session.scalar(select(RampExecution).where(RampExecution.uuid == doomed))
        assert row.status_code == "ERROR"
        assert row.replay_attempts == 1
        assert row.last_error_type == "DataError"
        assert session.scalar(select(func.count()).select_from(Project).where(Project.execution_id == row.id)) == 0
        # The runner's own log entries were rolled back with it; only the failure record remains.
        levels = session.scalars(
            select(ExecutionLog.level).where(ExecutionLog.execution_id == row.id, ExecutionLog.attempt == 1)
        ).all()
        assert levels == ["ERROR"]
        (history,) = session.scalars(select(WorkflowHistory).where(WorkflowHistory.execution_id == row.id)).all()
        assert history.details["outcome"] == "error"
        assert history.details["error_type"] == "DataError"


def test_suppressed_replays_notify_nobody(client, admin, load, session_factory, config, webhook_receiver):
    data = backlog(3, base_url=webhook_receiver.url)
    load(data)
    body = execute(client, admin, suppress_notifications=True)
    assert body["summary"]["success"] == 3
    with session_factory() as session, session.begin():
        statuses = session.scalars(select(Notification.status)).all()
    assert statuses == ["suppressed"] * 3
    # Delivery after commit runs inside the call, and the receiver records a request before it
    # answers: whatever the call sent has arrived by now. A dispatch run (which has returned too)
    # finds nothing to send either.
    assert dispatch_pending(session_factory, config=config).attempted == 0
    assert webhook_receiver.requests == []


def test_unsuppressed_replays_send_one_signed_webhook_each(client, admin, load, session_factory, webhook_receiver):
    data = backlog(3, base_url=webhook_receiver.url)
    load(data)
    body = execute(client, admin)
    assert body["summary"]["success"] == 3
    webhook_receiver.wait_for(3)
    hooks = webhook_receiver.requests_to("/webhooks")
    assert len(hooks) == 3
    for hook in hooks:
        assert verify(SIGNING_SECRET, hook.body, hook.header(SIGNATURE_HEADER))
        assert hook.json()["event"] == "PROJECT_CREATED"
    assert sorted(h.json()["execution_uuid"] for h in hooks) == sorted(e["uuid"] for e in data["executions"])
    with session_factory() as session, session.begin():
        assert session.scalars(select(Notification.status)).all() == ["delivered"] * 3


def test_latest_version_runs_the_current_definition(client, admin, load, session_factory):
    # v1 (what the row ran) notifies; v2 (current) does not.
    r = ramp(
        versions=[
            {"version": 1},
            {"version": 2, "steps": [{"type": "find_or_create_account"}, {"type": "create_project"}]},
        ],
        current_version=2,
    )
    row = execution(r, version=1, email="owner@example.com")
    load(world([vendor()], [r], [row]))
    body = execute(client, admin, workflow_version="latest")
    assert body["eligible"][0]["outcome"] == "success"
    assert body["eligible"][0]["workflow_version_drift"] is True
    with session_factory() as session, session.begin():
        history = session.scalar(select(WorkflowHistory))
        assert (history.details["workflow_version"], history.details["version_run"]) == ("latest", 2)
        assert history.details["workflow_version_drift"] is True
        assert session.scalar(select(func.count()).select_from(Notification)) == 0


def test_hand_picked_execute_replays_only_those_rows(client, admin, load, session_factory):
    data = backlog(3)
    load(data)
    picked = data["executions"][2]["uuid"]
    response = post(client, admin, {"execution_uuids": [picked], "dry_run": False, "suppress_notifications": True})
    body = response.get_json()
    assert [e["execution_uuid"] for e in body["eligible"]] == [picked]
    statuses = {u: e.status_code for u, e in rows_by_uuid(session_factory).items()}
    assert statuses[picked] == "SUCCESS"
    assert sorted(statuses.values()) == ["ERROR", "ERROR", "SUCCESS"]


def _snapshot(engine) -> dict:
    tables = [
        "or_ramp_executions",
        "or_execution_logs",
        "or_workflow_history",
        "or_projects",
        "or_accounts",
        "or_object_entity_ids",
        "or_notification_outbox",
    ]
    with engine.connect() as conn:
        return {
            t: conn.execute(
                text(f"SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x")
            ).scalar()
            for t in tables
        }


def test_dry_run_changes_nothing_but_its_audit_row(client, admin, load, engine, session_factory, caplog):
    data = backlog(5)
    data["executions"][0]["has_project"] = True
    load(data)
    before = _snapshot(engine)
    with caplog.at_level("INFO"):
        body = call(client, admin, error_pattern="new_task", vendor_ids=[1])
    assert body["summary"]["eligible"] == 4
    assert _snapshot(engine) == before
    (line,) = [r for r in caplog.records if getattr(r, "event", None) == "retry_batch.summary"]
    assert (line.batch_id, line.actor, line.dry_run, line.eligible) == (body["batch_id"], "api_key:ops-bot", True, 4)

    with session_factory() as session, session.begin():
        (audit,) = session.scalars(select(RetryBatch)).all()
    assert str(audit.uuid) == body["batch_id"]
    assert (audit.actor, audit.actor_type, audit.dry_run) == ("ops-bot", "api_key", True)
    assert audit.request == {
        "since": "2026-05-11T12:30:00+00:00",
        "until": "2026-05-12T12:30:00+00:00",
        "vendor_ids": [1],
        "ramp_uuids": None,
        "execution_uuids": None,
        "error_pattern": "new_task",
        "suppress_notifications": False,
        "force_retry": False,
        "max_attempts": 1,
        "workflow_version": "original",
        "dry_run": True,
    }
    assert audit.summary == body["summary"]
    assert audit.finished_at >= audit.started_at
    assert audit.duration_ms >= 0


def test_executing_call_is_audited_with_its_summary(client, admin, load, session_factory):
    load(backlog(2))
    body = execute(client, admin, suppress_notifications=True)
    with session_factory() as session, session.begin():
        (audit,) = session.scalars(select(RetryBatch)).all()
        histories = session.scalars(select(WorkflowHistory)).all()
    assert audit.dry_run is False
    assert audit.summary["success"] == 2
    assert audit.summary["skipped_by_reason"] == dict.fromkeys(REASON_CODES, 0)
    assert {h.batch_id for h in histories} == {audit.uuid}
    assert str(audit.uuid) == body["batch_id"]


def test_default_until_is_now(client, admin, load, session_factory):
    from app.models.base import utcnow
    from tests.support.retry_scenarios import URL

    load(backlog(1))
    response = client.post(URL, json={"since": "2026-05-11T12:30:00Z"}, headers=admin)
    assert response.get_json()["summary"]["eligible"] == 1
    with session_factory() as session, session.begin():
        audit = session.scalar(select(RetryBatch))
    assert abs((utcnow() - audit.started_at).total_seconds()) < 60
    assert audit.request["until"] is not None


def test_executing_summary_agrees_with_the_dry_run_just_before_it(client, admin, load):
    # The executing call counts the scope after its replays and puts its own rows back; with no
    # other writer its figures must be the dry run's, and `remaining` what is really left.
    plain = ramp(steps=["find_or_create_account", "create_project"])
    crm = ramp(steps=["fetch_crm_record", "find_or_create_account", "create_project"])  # DEAD_URL: fails
    rows = [execution(crm, minutes=0.5)]  # fails with an integration error: still eligible after
    no_company = execution(plain, minutes=0.7, payload={"company": {"name": "Nameless"}})  # fails: config
    rows.append(no_company)
    rows += [execution(plain, minutes=1 + i) for i in range(26)]
    rows += [execution(plain, minutes=40 + i, has_project=True) for i in range(2)]
    rows.append(execution(plain, minutes=50, error_type="MissingTriggerField"))
    load(world([vendor()], [plain, crm], rows))

    dry = call(client, admin, max_attempts=2)["summary"]
    assert (dry["matched"], dry["eligible"]) == (31, 28)
    body = execute(client, admin, max_attempts=2, suppress_notifications=True)
    summary = body["summary"]

    for key in ("matched", "eligible", "skipped", "skipped_by_reason"):
        assert summary[key] == dry[key], key
    assert (summary["selected"], summary["success"], summary["error"]) == (25, 23, 2)
    # 28 eligible, 23 now SUCCESS, the config failure is now skipped, the integration failure
    # has an attempt left.
    assert summary["remaining"] == 28 - 24
    assert call(client, admin, max_attempts=2)["summary"]["eligible"] == summary["remaining"]
    # The rows it replayed are reported in eligible[], not again in skipped[].
    assert no_company["uuid"] not in {s["execution_uuid"] for s in body["skipped"]}
    assert len(body["skipped"]) == 3
