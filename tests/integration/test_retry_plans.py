"""Plans (SPEC section 6): a dry run stores its whole eligible set; a call on the plan's token
works on exactly those rows, re-checked under the row lock with the plan's own request."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from app.models import RampExecution, RetryBatch, RetryJob, RetryPlan, RetryPlanRow, WorkflowHistory
from app.models.base import utcnow
from app.retries import eligibility
from app.retries.batch import retry_batch
from app.retries.filters import bind_params
from app.retries.plan_expiry import expire_plans
from app.retries.schemas import RetryBatchRequestSchema
from tests.support.retry_scenarios import (
    ADMIN_ACTOR,
    add_failures_like,
    api_key_headers,
    backlog,
    post,
    window,
)


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="plan-author")


@pytest.fixture
def other_admin(session_factory):
    return api_key_headers(session_factory, name="plan-executor")


def ok(response) -> dict:
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def preview(client, admin, **fields) -> dict:
    return ok(post(client, admin, window(**fields)))


def on_plan(client, headers, token: str, **fields):
    return post(client, headers, {"plan_token": token, **fields})


def statuses(session_factory) -> dict[str, tuple[str, int]]:
    with session_factory() as session, session.begin():
        rows = session.execute(select(RampExecution.uuid, RampExecution.status_code, RampExecution.replay_attempts))
        return {str(u): (s, a) for u, s, a in rows}


def test_a_dry_run_stores_every_eligible_row_not_only_the_25_listed(client, admin, load, session_factory):
    data = backlog(40)
    load(data)
    body = preview(client, admin)
    assert body["summary"]["eligible"] == 40 and len(body["eligible"]) == 25
    assert body["plan_token"] and body["plan_expires_at"]
    with session_factory() as session, session.begin():
        plan = session.scalar(select(RetryPlan).where(RetryPlan.token == body["plan_token"]))
        assert plan.total == 40
        assert plan.created_by == "plan-author"
        assert str(plan.batch_id) == body["batch_id"]
        assert plan.expires_at - plan.created_at == timedelta(hours=24)
        planned = session.scalars(
            select(RampExecution.uuid)
            .join(RetryPlanRow, RetryPlanRow.execution_id == RampExecution.id)
            .where(RetryPlanRow.plan_id == plan.id)
        ).all()
    assert sorted(str(u) for u in planned) == sorted(e["uuid"] for e in data["executions"])


def test_only_plan_rows_are_replayed_when_new_failures_arrive(client, admin, load, session_factory):
    data = backlog(30)
    load(data)
    token = preview(client, admin)["plan_token"]
    # New failures in the same window after the preview: not part of the plan.
    late = [str(uuid.uuid4()) for _ in range(5)]
    add_failures_like(session_factory, data["executions"][0]["uuid"], late)

    first = ok(on_plan(client, admin, token, dry_run=False, suppress_notifications=True))
    second = ok(on_plan(client, admin, token, dry_run=False, suppress_notifications=True))
    third = ok(on_plan(client, admin, token, dry_run=False, suppress_notifications=True))
    replayed = [e["execution_uuid"] for body in (first, second, third) for e in body["eligible"]]
    assert replayed == [e["uuid"] for e in data["executions"]]  # the plan's rows, oldest first, once each
    assert (first["summary"]["selected"], second["summary"]["selected"], third["summary"]["selected"]) == (25, 5, 0)
    assert first["summary"]["matched"] == 30 and first["summary"]["remaining"] == 5
    assert third["summary"]["remaining"] == 0
    now = statuses(session_factory)
    assert all(now[u] == ("ERROR", 0) for u in late)
    # A fresh dry run of the window does find them.
    assert preview(client, admin)["summary"]["eligible"] == 5


def test_scope_fields_beside_a_token_are_refused(client, admin, load):
    load(backlog(2))
    token = preview(client, admin)["plan_token"]
    for field, value in (
        ("since", "2026-05-11T00:00:00Z"),
        ("vendor_ids", [1]),
        ("error_pattern", "x"),
        ("force_retry", True),
        ("max_attempts", 2),
        ("workflow_version", "latest"),
        ("execution_uuids", ["00000000-0000-0000-0000-000000000001"]),
    ):
        response = on_plan(client, admin, token, **{field: value})
        assert response.status_code == 400, (field, response.get_json())
        assert field in response.get_json()["error"]["details"], field


def test_unknown_token_is_404_and_expired_is_410(client, admin, load, session_factory):
    load(backlog(2))
    response = on_plan(client, admin, "plan_nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "plan_not_found"
    token = preview(client, admin)["plan_token"]
    with session_factory() as session, session.begin():
        session.execute(update(RetryPlan).where(RetryPlan.token == token).values(expires_at=utcnow()))
    response = on_plan(client, admin, token, dry_run=False)
    assert response.status_code == 410
    assert response.get_json()["error"]["code"] == "plan_expired"
    assert statuses(session_factory) and all(s == ("ERROR", 0) for s in statuses(session_factory).values())
    # Both refusals were audited, as every call is.
    with session_factory() as session, session.begin():
        aborted = session.scalars(select(RetryBatch.summary).where(RetryBatch.summary["aborted"].isnot(None))).all()
    assert sorted(s["aborted"] for s in aborted) == ["plan_expired", "plan_not_found"]


def test_a_plan_row_that_became_ineligible_is_skipped_with_its_reason(client, admin, load, session_factory):
    data = backlog(3)
    load(data)
    token = preview(client, admin)["plan_token"]
    gone = data["executions"][1]["uuid"]
    with session_factory() as session, session.begin():
        session.execute(update(RampExecution).where(RampExecution.uuid == gone).values(status_code="SUCCESS"))
    body = ok(on_plan(client, admin, token, dry_run=False, suppress_notifications=True))
    assert [e["execution_uuid"] for e in body["eligible"]] == [
        data["executions"][0]["uuid"],
        data["executions"][2]["uuid"],
    ]
    assert {s["execution_uuid"]: s["reason"] for s in body["skipped"]} == {gone: "status_not_error"}
    assert statuses(session_factory)[gone] == ("SUCCESS", 0)  # never replayed
    with session_factory() as session, session.begin():
        outcome = session.execute(
            select(RetryPlanRow.outcome, RetryPlanRow.reason)
            .join(RampExecution, RampExecution.id == RetryPlanRow.execution_id)
            .where(RampExecution.uuid == gone)
        ).one()
    assert tuple(outcome) == ("skipped", "status_not_error")


def test_a_dry_run_on_a_token_previews_what_is_left_of_the_plan(client, admin, load):
    load(backlog(30))
    first = preview(client, admin)
    ok(on_plan(client, admin, first["plan_token"], dry_run=False, suppress_notifications=True))
    left = ok(on_plan(client, admin, first["plan_token"]))
    assert left["plan_token"] == first["plan_token"]
    assert left["dry_run"] is True
    assert left["summary"]["matched"] == 30
    assert left["summary"]["eligible"] == 5 and len(left["eligible"]) == 5
    assert left["summary"]["skipped_by_reason"]["status_not_error"] == 25


def test_the_plan_request_applies_and_both_actors_are_recorded(client, admin, other_admin, load, session_factory):
    data = backlog(2)
    load(data)
    token = preview(client, admin, suppress_notifications=True)["plan_token"]
    body = ok(on_plan(client, other_admin, token, dry_run=False))  # suppression not sent: the plan's
    assert body["summary"]["success"] == 2
    with session_factory() as session, session.begin():
        history = session.scalars(select(WorkflowHistory).where(WorkflowHistory.batch_id == body["batch_id"])).all()
        audit = session.scalar(select(RetryBatch).where(RetryBatch.uuid == body["batch_id"]))
    assert len(history) == 2
    assert {h.actor for h in history} == {"plan-executor"}
    assert {h.details["planned_by"] for h in history} == {"plan-author"}
    assert all(h.details["suppress_notifications"] for h in history)
    assert audit.actor == "plan-executor"
    assert audit.request["planned_by"] == "plan-author" and audit.request["plan_token"] == token


def test_two_callers_executing_one_plan_replay_each_row_once(load, session_factory, make_engine_for, config):
    data = backlog(60)
    load(data)
    dry = retry_batch(session_factory, RetryBatchRequestSchema().load(window()), ADMIN_ACTOR, config=config)
    request = RetryBatchRequestSchema().load(
        {"plan_token": dry.plan_token, "dry_run": False, "suppress_notifications": True}
    )
    results: list = []
    errors: list = []

    def caller():
        _, factory = make_engine_for(pool_size=2, max_overflow=2)
        try:
            while True:
                result = retry_batch(factory, request, ADMIN_ACTOR, config=config)
                results.append(result)
                if result.summary.selected == 0:
                    return
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    replayed = [e.execution_uuid for r in results for e in r.eligible]
    assert sorted(replayed) == sorted(e["uuid"] for e in data["executions"])
    with session_factory() as session, session.begin():
        per_row = session.execute(
            select(WorkflowHistory.execution_id, func.count()).group_by(WorkflowHistory.execution_id)
        ).all()
    assert len(per_row) == 60 and {n for _, n in per_row} == {1}
    assert set(statuses(session_factory).values()) == {("SUCCESS", 1)}


def test_a_plan_row_handled_after_a_claims_snapshot_is_not_claimed_again(
    load, session_factory, make_engine_for, config
):
    """A lane's claim reads the plan in its statement's snapshot and locks as it walks: a row
    another lane replayed and committed in between must not be handed out a second time.

    A cursor makes that gap wide and deterministic: its snapshot is taken at DECLARE, its row
    locks at FETCH, exactly as inside one claim statement that reaches a row after the row's
    replay committed.
    """
    load(backlog(2))
    dry = retry_batch(session_factory, RetryBatchRequestSchema().load(window()), ADMIN_ACTOR, config=config)
    with session_factory() as session, session.begin():
        plan_id = session.scalar(select(RetryPlan.id).where(RetryPlan.token == dry.plan_token))
    late_engine, _ = make_engine_for(pool_size=1, max_overflow=0)
    with late_engine.connect() as late:
        late.execute(text("BEGIN"))
        params = bind_params(RetryBatchRequestSchema().load(window()), plan_id)
        late.execute(text(f"DECLARE late_claim CURSOR FOR {eligibility.claim_plan_row_sql(after=False)}"), params)
        # Meanwhile another caller executes the whole plan and commits.
        request = RetryBatchRequestSchema().load(
            {"plan_token": dry.plan_token, "dry_run": False, "suppress_notifications": True}
        )
        assert retry_batch(session_factory, request, ADMIN_ACTOR, config=config).summary.success == 2
        claimed = late.execute(text("FETCH 1 FROM late_claim")).mappings().first()
        late.execute(text("ROLLBACK"))
    assert claimed is None, f"claimed {claimed['execution_uuid']} again after its replay committed"


def test_expired_plans_and_their_rows_are_deleted_but_not_a_running_jobs_plan(client, admin, load, session_factory):
    load(backlog(6))
    kept = preview(client, admin)["plan_token"]
    expired = preview(client, admin)["plan_token"]
    response = client.post("/api/ramps/executions/retry-jobs", json=window(suppress_notifications=True), headers=admin)
    assert response.status_code == 202, response.get_json()
    with session_factory() as session, session.begin():
        job_plan = session.scalar(
            select(RetryJob.plan_id).where(RetryJob.uuid == uuid.UUID(response.get_json()["job_id"]))
        )
        ids = dict(session.execute(select(RetryPlan.token, RetryPlan.id)).all())
        # The periodic task's clock is the database's; age two plans past their 24 hours.
        session.execute(
            update(RetryPlan)
            .where(RetryPlan.id.in_([ids[expired], job_plan]))
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )

    assert expire_plans(session_factory) == 1

    with session_factory() as session, session.begin():
        plans_left = set(session.scalars(select(RetryPlan.id)))
        rows_left = dict(
            session.execute(select(RetryPlanRow.plan_id, func.count()).group_by(RetryPlanRow.plan_id)).all()
        )
    assert ids[expired] not in plans_left and ids[expired] not in rows_left
    assert {ids[kept], job_plan} <= plans_left
    assert rows_left[ids[kept]] == 6 and rows_left[job_plan] == 6
    # The token of the deleted plan now reads as unknown, not as a plan with no rows.
    assert on_plan(client, admin, expired).status_code == 404
