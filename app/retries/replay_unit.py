"""One replay of one row, the only one there is: claim, re-check, run, history, outcome, commit,
deliver, report.

The retry-batch call (a window, hand-picked rows, or a plan) and the retry-job worker both call
`replay_next`; they differ only in where the row comes from (a `RowSource`) and in what they do
with the `Replayed` it returns.

Why the claim lives in the replay's own transaction: the row lock (`FOR UPDATE OF e SKIP LOCKED`)
is what keeps concurrent callers, workers and the trigger path off a row, so it must be held by
the very transaction that replays the row and released only by its commit. Under that lock the
replay also takes its (ramp, trigger key) without waiting (app/workflow/trigger_keys.py), re-checks
the row in a fresh statement, and, when the row belongs to a plan, writes the row's outcome before
committing: whether a row was handled is decided by the database, never by a caller's memory.

A database that goes away mid-replay is not a replay failure: nothing of the replay committed, the
row keeps its attempts and last error, and `DatabaseUnavailable` is raised for the caller to stop.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Select, and_, bindparam, insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.errors import DatabaseUnavailable, is_database_unavailable
from app.models import CrmIntegration, Ramp, RampExecution, RampVersion, WorkflowHistory
from app.models.executions import HISTORY_ACTION_REPLAYED
from app.retries import eligibility, plans
from app.retries.filters import ScopedRow
from app.retries.merge_patch import merge_patch
from app.retries.results import ActorLike, ReplayError, actor_label
from app.retries.schemas import RetryRequest
from app.workflow.errors import describe
from app.workflow.log import append_log
from app.workflow.runner import RunResult, run_execution

log = logging.getLogger(__name__)


def _load_for_replay(version_number) -> Select:
    """The row, its ramp, the version to run and the vendor's integration, in one statement."""
    return (
        select(RampExecution, Ramp, RampVersion, CrmIntegration)
        .join(Ramp, Ramp.id == RampExecution.ramp_id)
        .outerjoin(
            RampVersion, and_(RampVersion.ramp_id == RampExecution.ramp_id, RampVersion.version == version_number)
        )
        .outerjoin(CrmIntegration, CrmIntegration.vendor_id == RampExecution.vendor_id)
        .where(RampExecution.id == bindparam("execution_id"))
    )


# Built once per `workflow_version` (statement construction costs more than running it here).
LOAD_FOR_REPLAY = {
    "latest": _load_for_replay(Ramp.current_version),
    "original": _load_for_replay(RampExecution.ramp_version),
}
_INSERT_HISTORY = insert(WorkflowHistory)


@dataclass(frozen=True)
class ReplayContext:
    """What the caller decided: the filters and options of the run, and how to record it."""

    request: RetryRequest  # re-check filters, version to run, suppression
    actor: ActorLike
    batch_id: uuid.UUID  # or_workflow_history.batch_id: the retry-batch call, or the retry job
    config: Config
    job_uuid: uuid.UUID | None = None
    planned_by: str | None = None  # who made the plan being executed, when it is someone's plan
    payload_patches: Mapping[str, dict] | None = None  # execution uuid -> JSON merge patch


class Stopped(Exception):
    """Raised by a row source that must not start another replay (its job was paused, ...)."""


class RowSource(Protocol):
    plan_id: int | None  # rows of a plan get their outcome recorded with the replay

    def claim(self, session: Session, request: RetryRequest, after: tuple[datetime, int] | None) -> ScopedRow | None:
        """Lock and return the next row after `after`, None when there is none (may raise Stopped)."""
        ...


@dataclass(frozen=True)
class ScopeRows:
    """The request's own scope (a window or hand-picked rows): only eligible rows are claimed."""

    plan_id: None = None

    def claim(self, session, request, after):
        return eligibility.claim_next(session, request, after=after)


@dataclass(frozen=True)
class PlanRows:
    """The rows of a plan not handled yet, eligible or not (the re-check records the skips)."""

    plan_id: int

    def claim(self, session, request, after):
        return eligibility.claim_plan_row(session, request, self.plan_id, after=after)


@dataclass
class Replayed:
    row: ScopedRow
    # success | error: replayed; skipped: ineligible under the lock (reason, detail);
    # busy: its trigger key is being run by someone else right now, left alone for this pass.
    outcome: str
    error: ReplayError | None = None
    project_uuid: str | None = None
    reason: str | None = None
    detail: str | None = None
    payload: dict | None = None  # the payload it ran with, when a patch changed it

    @property
    def position(self) -> tuple[datetime, int]:
        return (self.row.created_at, self.row.id)


def replay_next(
    session_factory: sessionmaker[Session],
    ctx: ReplayContext,
    source: RowSource,
    *,
    after: tuple[datetime, int] | None,
) -> Replayed | None:
    """Claim the next row of `source` after `after` and replay it, all in one transaction.

    None when the source has no free row left. Raises `DatabaseUnavailable` when the database went
    away (nothing of this replay is kept) and `Stopped` when the source refuses to go on.
    """
    row: ScopedRow | None = None
    try:
        with session_factory() as session:
            try:
                with session.begin():
                    row = source.claim(session, ctx.request, after)
                    if row is None:
                        return None
                    done = _replay_claimed(session, ctx, source, row)
            except Stopped:
                raise
            except Exception as exc:
                if row is None or is_database_unavailable(exc):
                    raise  # the claim itself failed, or the database is gone: not a row failure
                log.exception("batch %s: replay of %s failed outside the runner", ctx.batch_id, row.execution_uuid)
                error = _record_failure(session_factory, ctx, source, row, exc)
                _report(exc, ctx, row, error.category)
                return Replayed(row, "error", error=error)
    except Exception as exc:
        if not isinstance(exc, Stopped) and is_database_unavailable(exc):
            where = {"execution_uuid": str(row.execution_uuid)} if row is not None else None
            raise DatabaseUnavailable(details=where) from exc
        raise

    if done.outcome in ("skipped", "busy"):
        return Replayed(row, done.outcome, reason=done.reason, detail=done.detail)
    # Committed: now the outside world may hear about it.
    _deliver(session_factory, done.result.pending_notification_ids, ctx.config)
    if done.outcome == "error":
        _report(done.result.exception, ctx, row, done.error.category)
    return Replayed(row, done.outcome, error=done.error, project_uuid=done.project_uuid, payload=done.payload)


@dataclass
class _Done:
    outcome: str
    reason: str | None = None
    detail: str | None = None
    result: RunResult | None = None
    error: ReplayError | None = None
    project_uuid: str | None = None
    payload: dict | None = None


def _replay_claimed(session: Session, ctx: ReplayContext, source: RowSource, row: ScopedRow) -> _Done:
    """Under the row lock: the trigger key, the re-check, the run, the history and the outcome."""
    if row.trigger_key is not None and not row.key_taken:
        log.info("batch %s: %s left alone, its trigger key is running elsewhere", ctx.batch_id, row.execution_uuid)
        return _Done("busy")
    reason, detail = eligibility.recheck(session, ctx.request, row.id)
    if reason is not None:
        log.info("batch %s: %s became %s before replay (%s)", ctx.batch_id, row.execution_uuid, reason, detail)
        if source.plan_id is not None:
            plans.record_outcome(session, source.plan_id, row, "skipped", reason=reason, detail=detail)
        return _Done("skipped", reason=reason, detail=detail)
    done = _run_locked(session, ctx, row)
    if source.plan_id is not None:
        plans.record_outcome(session, source.plan_id, row, done.outcome)
    return done


def _run_locked(session: Session, ctx: ReplayContext, row: ScopedRow) -> _Done:
    request = ctx.request
    # One statement for the row, its ramp, the version to run and the vendor's integration, read
    # under the lock (the claim's view of the ramp may predate a republish). The runner takes the
    # ramp from the identity map and the integration as an argument.
    execution, ramp, version, integration = session.execute(
        LOAD_FOR_REPLAY[request.workflow_version], {"execution_id": row.id}
    ).one()
    if version is None:  # the re-check saw it a moment ago; treat a vanished version as a failure
        raise LookupError(f"ramp version of execution {execution.uuid} disappeared")
    patch = (ctx.payload_patches or {}).get(str(execution.uuid))
    payload_before = None
    if patch is not None:
        payload_before = execution.trigger_payload
        execution.trigger_payload = merge_patch(payload_before, patch)
    # count_attempt: a failed replay counts too, so repeated calls drain the backlog instead of
    # spinning on it.
    result = run_execution(
        session,
        execution,
        version,
        suppress_notifications=bool(request.suppress_notifications),
        http_timeout=ctx.config.http_timeout_seconds,
        integration=integration,
        count_attempt=True,
    )
    project_uuid = str(result.project.uuid) if result.project is not None else None
    error = (
        ReplayError(result.error_type, result.error_category, result.error_message)
        if result.status != "SUCCESS"
        else None
    )
    details = _history_details(ctx, execution, error=error, version_run=version.version, project_uuid=project_uuid)
    details["workflow_version_drift"] = execution.ramp_version != ramp.current_version
    if patch is not None:
        details["payload_patch"] = patch
        details["payload_before"] = payload_before
    _write_history(session, ctx, execution, details)
    return _Done(
        "success" if error is None else "error",
        result=result,
        error=error,
        project_uuid=project_uuid,
        payload=execution.trigger_payload if patch is not None else None,
    )


def _record_failure(session_factory, ctx: ReplayContext, source: RowSource, row: ScopedRow, exc) -> ReplayError:
    """After a rolled-back replay: record its attempt, an ERROR log entry, the history row and (for
    a plan row) its outcome, in a new transaction."""
    error_type, category, message = describe(exc)
    error = ReplayError(error_type, category, f"replay failed: {message}"[:2000])
    try:
        with session_factory() as session, session.begin():
            status = eligibility.lock_for_failure_record(session, row.id)
            if status is None:
                # Someone else holds the row (and will record their own attempt): write nothing.
                log.warning("batch %s: %s is locked elsewhere; failure not recorded", ctx.batch_id, row.execution_uuid)
                return error
            execution = session.get(RampExecution, row.id)
            if status == "ERROR":
                execution.replay_attempts += 1
            append_log(
                session,
                execution,
                level="ERROR",
                message=error.message,
                error_type=error.type,
                error_category=error.category,
            )
            details = _history_details(ctx, execution, error=error, version_run=None, project_uuid=None)
            details["workflow_version_drift"] = row.workflow_version_drift
            _write_history(session, ctx, execution, details)
            if source.plan_id is not None:
                plans.record_outcome(session, source.plan_id, row, "error")
    except Exception:
        log.exception("batch %s: could not record the failed replay of %s", ctx.batch_id, row.execution_uuid)
    return error


def _history_details(
    ctx: ReplayContext,
    execution: RampExecution,
    *,
    error: ReplayError | None,
    version_run: int | None,
    project_uuid: str | None,
) -> dict:
    request = ctx.request
    details = {
        "outcome": "success" if error is None else "error",
        "error_type": error.type if error else None,
        "error_category": error.category if error else None,
        "error_message": error.message if error else None,
        "suppress_notifications": bool(request.suppress_notifications),
        "force_retry": request.force_retry,
        "workflow_version": request.workflow_version,
        "version_run": version_run,
        "original_version": execution.ramp_version,
        "attempt": execution.replay_attempts,
        "project_uuid": project_uuid,
        "actor_type": ctx.actor.kind,
    }
    if ctx.job_uuid is not None:
        details["job_id"] = str(ctx.job_uuid)
    if request.plan_token is not None:
        details["plan_token"] = request.plan_token
        details["planned_by"] = ctx.planned_by
    return details


def _write_history(session: Session, ctx: ReplayContext, execution: RampExecution, details: dict) -> None:
    """The REPLAYED history row: one plain INSERT in the replay's transaction."""
    values = dict(
        execution_id=execution.id,
        action=HISTORY_ACTION_REPLAYED,
        actor=ctx.actor.name,
        batch_id=ctx.batch_id,
        details=details,
    )
    session.connection().execute(_INSERT_HISTORY, values)


def _deliver(session_factory, notification_ids: list[int], config: Config) -> None:
    if not notification_ids:
        return
    try:
        from app.notifications.delivery import deliver

        deliver(session_factory, notification_ids, config=config)
    except Exception:
        # Undelivered rows stay pending with their error; `notifications dispatch` retries them.
        log.exception("delivery after replay failed for notifications %s", notification_ids)


def _report(exc: BaseException | None, ctx: ReplayContext, row: ScopedRow, category: str | None) -> None:
    if exc is None:
        return
    from app.retries.telemetry import capture_replay_failure

    tags = {
        "batch_id": str(ctx.batch_id),
        "execution_uuid": str(row.execution_uuid),
        "vendor_id": str(row.vendor_id),
        "ramp_uuid": str(row.ramp_uuid),
        "error_category": category or "runtime",
    }
    if ctx.job_uuid is not None:
        tags["job_id"] = str(ctx.job_uuid)
    try:
        capture_replay_failure(exc, tags=tags, actor=actor_label(ctx.actor))
    except Exception:
        log.exception("could not report the failed replay of %s", row.execution_uuid)
