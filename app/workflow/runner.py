"""Runs a ramp version's steps against an execution, inside the caller's transaction.

The runner knows nothing about batches or HTTP requests: the caller (the trigger use case, the
retry use case) owns the transaction, passes the flags it needs, and delivers the outbox after it
commits. The steps run inside a SAVEPOINT, so a failing step undoes only the work of this run
(account, project, outbox rows) while the execution's status and log entries are still written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from app.errors import is_database_unavailable
from app.models import CrmIntegration, Ramp, RampExecution, RampVersion
from app.models.base import utcnow
from app.notifications.outbox import Queued
from app.workflow.errors import InvalidConfigurationError, describe
from app.workflow.log import append_logs
from app.workflow.steps import STEP_HANDLERS, StepContext

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    status: str
    error_type: str | None = None
    error_category: str | None = None
    error_message: str | None = None
    project: Row | None = None  # id, uuid, name, account_id of the project made
    notifications: list[Queued] = field(default_factory=list)
    exception: BaseException | None = None

    @property
    def pending_notification_ids(self) -> list[int]:
        return [n.id for n in self.notifications if n.status == "pending"]


def run_execution(
    session: Session,
    execution: RampExecution,
    version: RampVersion,
    *,
    integration: CrmIntegration | None,
    suppress_notifications: bool = False,
    http_timeout: float = 5.0,
    count_attempt: bool = False,
) -> RunResult:
    """Run `version` for `execution`; the caller must hold an open transaction (and the row lock).

    `integration`: the vendor's integration, or None when it has none. Every caller has loaded it
    already in this transaction (the trigger to verify the signature, the replay with its row).
    `count_attempt`: this run is a replay and counts as one more `replay_attempts`, whether it
    succeeds or fails.

    The execution's own columns change only after the steps, so the row is written by a single
    UPDATE when the caller commits (no status is visible between statements of one transaction).
    """
    if not session.in_transaction():
        raise RuntimeError("run_execution needs the caller's open transaction")
    ramp = session.get(Ramp, execution.ramp_id)  # usually from the identity map: no SQL
    now = utcnow()
    attempt = execution.replay_attempts + (1 if count_attempt else 0)
    pending_logs: list[dict] = [
        dict(level="INFO", message=f"run started: version {version.version}, attempt {attempt}")
    ]
    ctx = StepContext(
        session=session,
        execution=execution,
        ramp=ramp,
        integration=integration,
        payload=execution.trigger_payload or {},
        now=now,
        suppress_notifications=suppress_notifications,
        http_timeout=http_timeout,
    )
    result = RunResult(status="SUCCESS")
    current_step = None
    savepoint = session.begin_nested()
    try:
        steps = version.steps
        if not steps:
            raise InvalidConfigurationError(f"ramp version {version.version} has no steps")
        for step in steps:
            current_step = step.get("type")
            handler = STEP_HANDLERS.get(current_step)
            if handler is None:
                raise InvalidConfigurationError(f"unknown step type '{current_step}'")
            message = handler(ctx)
            pending_logs.append(dict(level="INFO", step=current_step, message=message))
        savepoint.commit()
    except Exception as exc:  # any step failure is recorded, classified, and ends the run
        if is_database_unavailable(exc):
            # Not the step's failure: the database went away. Nothing can be recorded on this
            # connection; the caller rolls back and leaves the row as it was.
            raise
        savepoint.rollback()
        error_type, category, message = describe(exc)
        result = RunResult(
            status="ERROR", error_type=error_type, error_category=category, error_message=message, exception=exc
        )
        pending_logs.append(
            dict(level="ERROR", step=current_step, message=message, error_type=error_type, error_category=category)
        )
        log.info("execution %s failed at %s: %s (%s)", execution.uuid, current_step, error_type, category)
    else:
        result.project = ctx.state.get("project")
        result.notifications = list(ctx.notifications)

    execution.replay_attempts = attempt
    append_logs(session, execution, [dict(entry, attempt=attempt) for entry in pending_logs])
    execution.status_code = result.status
    execution.finished_at = utcnow()
    return result
