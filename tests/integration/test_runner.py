"""The workflow runner against real rows: steps, error classification, savepoint rollback."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update

from app.models import (
    Account,
    CrmIntegration,
    ExecutionLog,
    Notification,
    ObjectEntityId,
    Project,
    RampExecution,
    RampVersion,
)
from app.models.base import utcnow
from app.workflow import steps as workflow_steps
from app.workflow.runner import run_execution
from tests.support import scenarios as sc

FETCH_STEPS = ["fetch_crm_record", "find_or_create_account", "create_project", "notify"]


def _run(session_factory, execution_uuid, *, http_timeout: float = 2.0):
    """Run the execution's version in one transaction, as a use case would; returns the result.

    Like the trigger and replay use cases, the caller loads the vendor's integration (or None).
    """
    with session_factory() as s, s.begin():
        execution = s.scalar(select(RampExecution).where(RampExecution.uuid == uuid.UUID(str(execution_uuid))))
        version = s.scalar(
            select(RampVersion).where(
                RampVersion.ramp_id == execution.ramp_id, RampVersion.version == execution.ramp_version
            )
        )
        integration = s.scalar(select(CrmIntegration).where(CrmIntegration.vendor_id == execution.vendor_id))
        return run_execution(s, execution, version, http_timeout=http_timeout, integration=integration)


def _count(session_factory, model) -> int:
    with session_factory() as s, s.begin():
        return s.scalar(select(func.count()).select_from(model))


def _load_one(load, base_url="http://127.0.0.1:9", *, steps=None, payload=None, **integration):
    data = sc.scenario(base_url, ramp_steps=steps, executions=1)
    data["vendors"][0]["integration"].update(integration)
    if payload is not None:
        data["executions"][0]["payload"] = payload
    load(data)
    return data["executions"][0]


def test_success_creates_account_project_logs_and_outbox_rows(load, session_factory):
    item = _load_one(load, "http://127.0.0.1:9300")
    result = _run(session_factory, item["uuid"])

    assert result.status == "SUCCESS" and result.error_type is None
    with session_factory() as s, s.begin():
        execution = s.scalar(select(RampExecution))
        assert execution.status_code == "SUCCESS" and execution.finished_at is not None
        project = s.scalar(select(Project))
        assert project.execution_id == execution.id and project.name == "Globex"
        assert project.uuid == result.project.uuid
        link = s.scalar(select(ObjectEntityId))
        assert (link.external_id, link.account_id) == ("c-1", project.account_id)
        logs = list(s.scalars(select(ExecutionLog).where(ExecutionLog.level == "INFO").order_by(ExecutionLog.id)))
        assert [entry.step for entry in logs] == [None, "find_or_create_account", "create_project", "notify"]
        outbox = {n.channel: n for n in s.scalars(select(Notification))}
        assert outbox["webhook"].target == "http://127.0.0.1:9300/webhooks"
        assert outbox["email"].target == "owner@example.com"
        assert {n.status for n in outbox.values()} == {"pending"}
        assert outbox["webhook"].payload["project"]["uuid"] == str(project.uuid)
    assert sorted(result.pending_notification_ids) == sorted(n.id for n in outbox.values())


def test_account_step_reuses_the_live_link(load, session_factory):
    data = sc.scenario(executions=2)
    data["executions"][0]["has_project"] = True  # made the account for c-1 earlier
    load(data)
    with session_factory() as s, s.begin():
        existing = s.scalar(select(Account.id))

    result = _run(session_factory, data["executions"][1]["uuid"])

    assert result.status == "SUCCESS"
    assert result.project.account_id == existing
    assert _count(session_factory, Account) == 1


def test_account_step_ignores_archived_links(load, session_factory):
    data = sc.scenario(executions=2)
    data["executions"][0]["has_project"] = True
    load(data)
    with session_factory() as s, s.begin():
        archived_account = s.scalar(select(Account.id))
        s.execute(update(ObjectEntityId).values(archived_at=utcnow()))

    result = _run(session_factory, data["executions"][1]["uuid"])

    assert result.status == "SUCCESS"
    assert result.project.account_id != archived_account
    with session_factory() as s, s.begin():
        live = list(s.scalars(select(ObjectEntityId).where(ObjectEntityId.archived_at.is_(None))))
        assert [link.account_id for link in live] == [result.project.account_id]


def test_missing_company_id_is_a_config_error(load, session_factory):
    item = _load_one(load, payload={"company": {"name": "Globex"}})
    result = _run(session_factory, item["uuid"])

    assert (result.status, result.error_type, result.error_category) == ("ERROR", "MissingTriggerField", "config")
    assert "company.id" in result.error_message
    with session_factory() as s, s.begin():
        execution = s.scalar(select(RampExecution))
        assert (execution.status_code, execution.last_error_category) == ("ERROR", "config")
        last = s.scalar(select(ExecutionLog).order_by(ExecutionLog.id.desc()).limit(1))
        assert (last.level, last.step, last.error_type) == ("ERROR", "find_or_create_account", "MissingTriggerField")
    assert _count(session_factory, Project) == _count(session_factory, Account) == 0


def test_fetch_crm_record_ok(load, session_factory, webhook_receiver):
    item = _load_one(load, webhook_receiver.url, steps=FETCH_STEPS)
    webhook_receiver.respond(200, {"id": "deal", "stage": "closedwon"}, path=f"/objects/{item['trigger_key']}")

    result = _run(session_factory, item["uuid"])

    assert result.status == "SUCCESS", result.error_message
    assert [(r.method, r.path) for r in webhook_receiver.requests] == [("GET", f"/objects/{item['trigger_key']}")]


def test_the_runner_uses_the_integration_its_caller_loaded(load, session_factory, webhook_receiver):
    # The vendor has a working integration, but the caller says "none": the runner does not look
    # it up behind the caller's back, and it cannot be called without saying.
    _load_one(load, webhook_receiver.url, steps=FETCH_STEPS)
    with session_factory() as s, s.begin():
        execution = s.scalar(select(RampExecution))
        version = s.scalar(select(RampVersion).where(RampVersion.ramp_id == execution.ramp_id))
        with pytest.raises(TypeError):
            run_execution(s, execution, version)
        result = run_execution(s, execution, version, integration=None)
    assert (result.status, result.error_type) == ("ERROR", "InvalidConfigurationError")
    assert webhook_receiver.requests == []


@pytest.mark.parametrize(
    "status, error_type",
    [(503, "IntegrationConnectionError"), (429, "RateLimitError"), (401, "InvalidAccessTokenError")],
)
def test_fetch_crm_record_classifies_http_failures(load, session_factory, webhook_receiver, status, error_type):
    item = _load_one(load, webhook_receiver.url, steps=FETCH_STEPS)
    webhook_receiver.respond(status)

    result = _run(session_factory, item["uuid"])

    assert (result.status, result.error_type, result.error_category) == ("ERROR", error_type, "integration")
    assert _count(session_factory, Project) == 0


def test_fetch_crm_record_unreachable_is_a_connection_error(load, session_factory, webhook_receiver):
    url = webhook_receiver.url
    webhook_receiver.stop()  # nothing listens on that port any more
    item = _load_one(load, url, steps=FETCH_STEPS)

    result = _run(session_factory, item["uuid"])

    assert (result.error_type, result.error_category) == ("IntegrationConnectionError", "integration")


def test_fetch_crm_record_timeout(load, session_factory, webhook_receiver):
    item = _load_one(load, webhook_receiver.url, steps=FETCH_STEPS)
    webhook_receiver.respond(200, delay=3)

    result = _run(session_factory, item["uuid"], http_timeout=0.3)

    assert (result.error_type, result.error_category) == ("ModuleTimeoutError", "integration")


def test_fetch_crm_record_with_revoked_token_does_not_call_the_crm(load, session_factory, webhook_receiver):
    item = _load_one(load, webhook_receiver.url, steps=FETCH_STEPS, token_revoked=True)

    result = _run(session_factory, item["uuid"])

    assert (result.error_type, result.error_category) == ("InvalidAccessTokenError", "integration")
    assert webhook_receiver.requests == []


def test_unexpected_exception_is_runtime_and_leaves_nothing_behind(load, session_factory, monkeypatch):
    item = _load_one(load)

    def regression(ctx):
        raise UnboundLocalError("cannot access local variable 'new_task' where it is not associated with a value")

    monkeypatch.setitem(workflow_steps.STEP_HANDLERS, "create_project", regression)

    result = _run(session_factory, item["uuid"])

    assert (result.status, result.error_type, result.error_category) == ("ERROR", "UnboundLocalError", "runtime")
    # The account made by the step before it was rolled back with the savepoint.
    for model in (Account, ObjectEntityId, Project, Notification):
        assert _count(session_factory, model) == 0, model.__tablename__
    with session_factory() as s, s.begin():
        execution = s.scalar(select(RampExecution))
        assert (execution.status_code, execution.last_error_type) == ("ERROR", "UnboundLocalError")
        assert "new_task" in execution.last_error_message
