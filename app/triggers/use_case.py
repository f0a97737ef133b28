"""Use case: a signed CRM webhook starts an execution of the ramp's current version.

The checks run in a fixed order so callers get a stable answer: unknown ramp 404, missing
integration or bad signature 401, non-JSON 415, malformed body 400, ramp not runnable 409. The
execution, its history row, the run and its outbox rows commit together; the outbox is delivered
after that commit (a failed delivery stays pending for `notifications dispatch`).

One deal, one project (app/workflow/trigger_keys.py): the transaction first waits for the (ramp,
trigger key) that replays also take. If that key has already succeeded (a CRM re-delivery, or a
replay that finished while we waited), nothing runs: the answer is 200 with the execution that
succeeded and `"duplicate": true`, recorded as a WORKFLOW_HISTORY_ACTION_TRIGGER_DUPLICATE history
row on it. If a replay of the key is still running after `lock_timeout`, the answer is 503
`trigger_key_busy` with Retry-After, so the CRM delivers again later.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import sentry_sdk
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.errors import Conflict, NotFound, TriggerKeyBusy, Unauthorized, UnsupportedMediaType, ValidationError
from app.json_body import parse_json_body
from app.models import CrmIntegration, Ramp, RampExecution, RampVersion, WorkflowHistory
from app.models.executions import HISTORY_ACTION_TRIGGER_DUPLICATE, HISTORY_ACTION_TRIGGERED
from app.notifications.delivery import DeliveryReport, deliver
from app.signing import SIGNATURE_HEADER, verify
from app.triggers.schemas import TriggerRequestSchema
from app.workflow.errors import RUNTIME
from app.workflow.runner import RunResult, run_execution
from app.workflow.trigger_keys import succeeded_execution, wait_for_trigger_key

log = logging.getLogger(__name__)

# SQLSTATE of a lock wait that hit lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"
_NOT_RUNNABLE = {"deleted": "ramp_deleted", "archived": "ramp_archived", "draft": "workflow_is_draft"}


@dataclass
class TriggerResult:
    execution_uuid: uuid.UUID
    status: str
    project_uuid: uuid.UUID | None
    error: dict | None
    delivery: DeliveryReport
    # True: the key had already succeeded; nothing ran, `execution_uuid` is that execution.
    duplicate: bool = False

    def as_response(self) -> dict:
        return {
            "execution_uuid": self.execution_uuid,
            "status": self.status,
            "project_uuid": self.project_uuid,
            "error": self.error,
            "duplicate": self.duplicate,
        }


def _ramp_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise NotFound("No ramp with this uuid") from None


def _is_json(content_type: str | None) -> bool:
    mimetype = (content_type or "").split(";")[0].strip().lower()
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def _parse_body(raw_body: bytes, content_type: str | None) -> dict:
    if not _is_json(content_type):
        raise UnsupportedMediaType()
    document = parse_json_body(raw_body)
    try:
        return TriggerRequestSchema().load(document)
    except SchemaError as exc:
        raise ValidationError(details=exc.messages) from None


def _runnable_version(session: Session, ramp: Ramp) -> RampVersion:
    reason = _NOT_RUNNABLE.get(ramp.status)
    if reason:
        raise Conflict(f"The ramp is {ramp.status} and cannot be triggered", details={"reason": reason})
    version = session.scalar(
        select(RampVersion).where(RampVersion.ramp_id == ramp.id, RampVersion.version == ramp.current_version)
    )
    if version is None or version.draft:
        raise Conflict(
            f"The ramp's current version {ramp.current_version} is not published",
            details={"reason": "workflow_is_draft"},
        )
    return version


def _error_of(result: RunResult) -> dict | None:
    if result.status != "ERROR":
        return None
    return {"type": result.error_type, "category": result.error_category, "message": result.error_message}


def _report_runtime_error(result: RunResult, execution: RampExecution, ramp: Ramp) -> None:
    # A runtime error is a bug: Sentry should see it (a no-op when Sentry is not configured).
    if result.exception is None or result.error_category != RUNTIME:
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("path", "trigger")
        scope.set_tag("vendor_id", str(execution.vendor_id))
        scope.set_tag("ramp_uuid", str(ramp.uuid))
        scope.set_tag("execution_uuid", str(execution.uuid))
        sentry_sdk.capture_exception(result.exception)


def _wait_for_key(session: Session, ramp_id: int, trigger_key: str) -> None:
    try:
        wait_for_trigger_key(session, ramp_id, trigger_key)
    except OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) != LOCK_NOT_AVAILABLE:
            raise
        # A replay of this deal is still running after lock_timeout: the CRM should re-deliver.
        # Nothing of the delivery can be written (the key is not ours), so the log keeps it.
        log.warning(
            "trigger of ramp %s key %s refused: a run of the same key is still in progress",
            ramp_id,
            trigger_key,
            extra={"event": "trigger.key_busy", "ramp_id": ramp_id, "trigger_key": trigger_key},
        )
        raise TriggerKeyBusy(details={"trigger_key": trigger_key}) from None


def _duplicate(session: Session, succeeded, body: dict, integration: CrmIntegration) -> TriggerResult:
    """A re-delivery of a key that already succeeded: recorded on that execution, not run."""
    session.add(
        WorkflowHistory(
            execution_id=succeeded.id,
            action=HISTORY_ACTION_TRIGGER_DUPLICATE,
            actor=f"crm:{integration.provider}",
            details={"trigger_key": body["trigger_key"], "data": body["data"]},
        )
    )
    log.info(
        "trigger for key %s answered with execution %s, which already succeeded", body["trigger_key"], succeeded.uuid
    )
    return TriggerResult(
        execution_uuid=succeeded.uuid,
        status="SUCCESS",
        project_uuid=succeeded.project_uuid,
        error=None,
        delivery=DeliveryReport(),
        duplicate=True,
    )


def trigger_ramp(
    session_factory: sessionmaker[Session],
    ramp_uuid: str,
    raw_body: bytes,
    signature: str | None,
    *,
    config: Config,
    content_type: str | None = "application/json",
) -> TriggerResult:
    """Verify, record and run one CRM trigger; returns the execution's outcome."""
    wanted = _ramp_uuid(ramp_uuid)
    # The one transaction of a trigger: checks, execution, history row, run and outbox rows.
    with session_factory() as session, session.begin():
        ramp = session.scalar(select(Ramp).where(Ramp.uuid == wanted))
        if ramp is None:
            raise NotFound("No ramp with this uuid")
        integration = session.scalar(select(CrmIntegration).where(CrmIntegration.vendor_id == ramp.vendor_id))
        if integration is None or not verify(integration.signing_secret, raw_body, signature):
            raise Unauthorized(f"Missing or invalid {SIGNATURE_HEADER}")
        body = _parse_body(raw_body, content_type)
        version = _runnable_version(session, ramp)

        # One deal, one project: wait for any replay (or trigger) of this ramp and key to finish,
        # then answer a re-delivery of a key that already succeeded instead of running it again.
        _wait_for_key(session, ramp.id, body["trigger_key"])
        succeeded = succeeded_execution(session, ramp.id, body["trigger_key"])
        if succeeded is not None:
            return _duplicate(session, succeeded, body, integration)

        execution = RampExecution(
            vendor_id=ramp.vendor_id,
            ramp_id=ramp.id,
            ramp_version=version.version,
            status_code="RUNNING",
            trigger_key=body["trigger_key"],
            trigger_payload=body["data"],
        )
        session.add(execution)
        session.flush()
        session.add(
            WorkflowHistory(
                execution_id=execution.id,
                action=HISTORY_ACTION_TRIGGERED,
                actor=f"crm:{integration.provider}",
                details={"trigger_key": execution.trigger_key, "ramp_version": version.version},
            )
        )
        result = run_execution(
            session, execution, version, http_timeout=config.http_timeout_seconds, integration=integration
        )
    log.info(
        "trigger ramp=%s execution=%s status=%s error=%s",
        ramp.uuid,
        execution.uuid,
        result.status,
        result.error_type,
    )
    _report_runtime_error(result, execution, ramp)

    # After the commit, in sessions of its own: a slow receiver holds no transaction open.
    delivery = deliver(session_factory, result.pending_notification_ids, config=config)
    return TriggerResult(
        execution_uuid=execution.uuid,
        status=result.status,
        project_uuid=result.project.uuid if result.project is not None else None,
        error=_error_of(result),
        delivery=delivery,
    )
