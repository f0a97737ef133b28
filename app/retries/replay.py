"""The retry-batch use case: claim, re-check, run, audit and commit each row in its own
transaction, and size the scope in one snapshot (for an executing call, after its replays).

Why the claim lives in the replay's own transaction: the row lock (`FOR UPDATE OF e SKIP LOCKED`)
is what keeps concurrent callers and the trigger path off a row, so it must be held by the very
transaction that replays the row and released only by its commit. Locking a page of rows in one
transaction and replaying them in later ones leaves a gap in which another caller can claim and
replay the same row again.

Statement budget per call (independent of how many rows are in scope):
  dry run:  audit insert, SET TRANSACTION, list_rows, count_by_reason, audit update;
  execute:  per replayed row a claim, a re-check, the row and version load, the runner's own
            statements and one history insert (at most MAX_CLAIMS_PER_CALL claims); then in one
            snapshot list_rows (skipped rows only), the replayed rows' reasons and
            count_by_reason; audit insert and update around it all.

An executing call counts the scope once, after its replays, instead of before and after: the
whole-scope count is the most expensive statement of a call. `remaining` is that count; the other
figures put this call's own replays back (see `_before_own_replays`), so without concurrent
writers they equal what a dry run just before the call would have said.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import Select, and_, bindparam, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.models import CrmIntegration, Ramp, RampExecution, RampVersion, RetryBatch, WorkflowHistory
from app.models.base import utcnow
from app.models.executions import HISTORY_ACTION_REPLAYED
from app.retries import eligibility
from app.retries.eligibility import ScopedRow
from app.retries.reasons import empty_counts
from app.retries.schemas import RetryRequest
from app.retries.telemetry import log_batch_summary
from app.workflow.errors import describe
from app.workflow.log import append_log
from app.workflow.runner import RunResult, run_execution

log = logging.getLogger(__name__)

# SPEC: each call replays (or, for a dry run, lists) at most this many rows.
MAX_BATCH_SIZE = 25
# skipped[] lists at most this many rows (oldest first); the summary still counts them all.
SKIPPED_LIST_LIMIT = 200
# Claims per call, including rows that lost eligibility between claim and re-check; bounds the
# statements of one call even while other writers keep changing rows under it.
MAX_CLAIMS_PER_CALL = 4 * MAX_BATCH_SIZE


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


class ActorLike(Protocol):
    kind: str  # "user" | "api_key"
    name: str


@dataclass
class ReplayError:
    type: str
    category: str
    message: str


@dataclass
class EligibleEntry:
    execution_uuid: str
    vendor_id: int
    ramp_uuid: str
    created_at: datetime
    error_message: str | None
    workflow_version_drift: bool
    outcome: str  # would_replay | success | error
    error: ReplayError | None = None
    project_uuid: str | None = None


@dataclass
class SkippedEntry:
    execution_uuid: str
    reason: str
    detail: str | None


@dataclass
class Summary:
    matched: int = 0
    eligible: int = 0
    selected: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=empty_counts)
    success: int = 0
    error: int = 0
    remaining: int = 0


@dataclass
class BatchResult:
    batch_id: uuid.UUID
    dry_run: bool
    summary: Summary
    eligible: list[EligibleEntry]
    skipped: list[SkippedEntry]
    skipped_truncated: bool


def retry_batch(
    session_factory: sessionmaker[Session], request: RetryRequest, actor: ActorLike, *, config: Config
) -> BatchResult:
    """Run one retry-batch call (dry run or execute) and record it in `or_retry_batches`."""
    clock = time.monotonic()
    batch_id, audit_id = _open_audit(session_factory, request, actor)
    try:
        result = _run(session_factory, request, actor, batch_id, config)
    except Exception as exc:
        _close_audit(session_factory, audit_id, {"aborted": type(exc).__name__}, clock)
        raise
    summary = asdict(result.summary)
    duration_ms = _close_audit(session_factory, audit_id, summary, clock)
    log_batch_summary(
        batch_id=str(batch_id),
        actor=actor_label(actor),
        dry_run=request.dry_run,
        summary=summary,
        duration_ms=duration_ms,
        request=request.normalised(),
    )
    return result


def actor_label(actor: ActorLike) -> str:
    """How logs and Sentry name the caller: the user's email, or `api_key:<name>`."""
    return actor.name if actor.kind == "user" else f"{actor.kind}:{actor.name}"


def _run(
    session_factory: sessionmaker[Session],
    request: RetryRequest,
    actor: ActorLike,
    batch_id: uuid.UUID,
    config: Config,
) -> BatchResult:
    summary = Summary()
    if request.dry_run:
        with session_factory() as session, session.begin():
            _read_settings(session)
            would_replay, skipped_rows = eligibility.list_rows(
                session, request, eligible_limit=MAX_BATCH_SIZE, skipped_limit=SKIPPED_LIST_LIMIT
            )
            counts = eligibility.count_by_reason(session, request)  # last: it changes planner settings
        entries = [_entry(row, outcome="would_replay") for row in would_replay]
        remaining = counts.get(None, 0) - len(entries)
    else:
        entries, replayed_ids = _replay_rows(session_factory, request, actor, batch_id, config)
        # The scope is counted once, after the replays: `remaining` is then exact, and this call's
        # own rows are put back where they stood before it (eligible) using their reasons now.
        with session_factory() as session, session.begin():
            _read_settings(session)
            _, skipped_rows = eligibility.list_rows(
                session, request, eligible_limit=0, skipped_limit=SKIPPED_LIST_LIMIT, exclude_ids=replayed_ids
            )
            now = eligibility.reasons_of(session, request, replayed_ids)
            counts = eligibility.count_by_reason(session, request)  # last: it changes planner settings
        remaining = counts.get(None, 0)
        counts = _before_own_replays(counts, now.values())
        summary.success = sum(1 for e in entries if e.outcome == "success")
        summary.error = sum(1 for e in entries if e.outcome == "error")

    for reason, n in counts.items():
        if reason is not None:
            summary.skipped_by_reason[reason] = n
    summary.eligible = counts.get(None, 0)
    summary.skipped = sum(summary.skipped_by_reason.values())
    summary.matched = summary.eligible + summary.skipped
    summary.selected = len(entries)
    summary.remaining = remaining

    skipped = [SkippedEntry(str(r.execution_uuid), r.reason, r.detail) for r in skipped_rows]
    return BatchResult(
        batch_id=batch_id,
        dry_run=request.dry_run,
        summary=summary,
        eligible=entries,
        skipped=skipped,
        skipped_truncated=summary.skipped > len(skipped),
    )


def _read_settings(session: Session) -> None:
    # One snapshot for the counts and the lists, so they agree with each other; the planner
    # settings travel in the same round trip.
    session.execute(
        text(f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; {eligibility.SCOPE_READ_SETTINGS}")
    )


def _before_own_replays(
    counts: dict[str | None, int], replayed_now: Iterable[tuple[str | None, bool]]
) -> dict[str | None, int]:
    """Counts as they stood before this call's own replays, from the counts taken after them.

    Every row this call replayed was eligible when it claimed it. Now it may be skipped (a success
    reads `status_not_error`, a last failed attempt `retry_limit_reached`) or out of the scope
    altogether (a window scope holds ERROR rows only): move it back to eligible.
    """
    before = dict(counts)
    for reason, in_scope in replayed_now:
        if in_scope and reason is None:
            continue  # still eligible (a failed attempt with attempts left): already counted
        if in_scope:
            before[reason] -= 1
        before[None] = before.get(None, 0) + 1
    return {reason: n for reason, n in before.items() if n or reason is None}


# ---- execute ----------------------------------------------------------------------------------


@dataclass
class _Step:
    position: tuple[datetime, int]
    entry: EligibleEntry | None  # None: the row lost eligibility before it could run


def _replay_rows(session_factory, request, actor, batch_id, config) -> tuple[list[EligibleEntry], list[int]]:
    """(what happened to each replayed row, their execution ids)."""
    entries: list[EligibleEntry] = []
    replayed_ids: list[int] = []
    after: tuple[datetime, int] | None = None
    for _ in range(MAX_CLAIMS_PER_CALL):
        if len(entries) >= MAX_BATCH_SIZE:
            break
        step = _replay_next(session_factory, request, actor, batch_id, config, after)
        if step is None:
            break
        # Keyset: this call never walks back over rows it already passed.
        after = step.position
        if step.entry is not None:
            entries.append(step.entry)
            replayed_ids.append(step.position[1])
    return entries, replayed_ids


def _replay_next(session_factory, request, actor, batch_id, config, after) -> _Step | None:
    """Claim the next eligible row and replay it, all in one transaction; None when none is left."""
    row: ScopedRow | None = None
    with session_factory() as session:
        try:
            with session.begin():
                row = eligibility.claim_next(session, request, after=after)
                if row is None:
                    return None
                reason, detail = eligibility.recheck(session, request, row.id)
                if reason is not None:
                    log.info("batch %s: %s became %s before replay (%s)", batch_id, row.execution_uuid, reason, detail)
                    return _Step((row.created_at, row.id), None)
                result, project_uuid = _replay_locked(session, request, actor, batch_id, config, row)
        except Exception as exc:
            if row is None:
                raise  # the claim itself failed: not a row failure, nothing to record
            log.exception("batch %s: replay of %s failed outside the runner", batch_id, row.execution_uuid)
            error = _record_failure(session_factory, request, actor, batch_id, row, exc)
            _report(exc, batch_id, row, error.category, actor)
            return _Step((row.created_at, row.id), _entry(row, outcome="error", error=error))

    # Committed: now the outside world may hear about it.
    _deliver(session_factory, result.pending_notification_ids, config)
    if result.status == "SUCCESS":
        return _Step((row.created_at, row.id), _entry(row, outcome="success", project_uuid=project_uuid))
    error = ReplayError(result.error_type, result.error_category, result.error_message)
    _report(result.exception, batch_id, row, error.category, actor)
    return _Step((row.created_at, row.id), _entry(row, outcome="error", error=error))


def _replay_locked(
    session: Session, request: RetryRequest, actor: ActorLike, batch_id: uuid.UUID, config: Config, row: ScopedRow
) -> tuple[RunResult, str | None]:
    # One statement for the row, its ramp, the version to run and the vendor's integration, read
    # under the lock (the claim's view of the ramp may predate a republish). The runner takes the
    # ramp from the identity map and the integration as an argument.
    execution, ramp, version, integration = session.execute(
        LOAD_FOR_REPLAY[request.workflow_version], {"execution_id": row.id}
    ).one()
    if version is None:  # the re-check saw it a moment ago; treat a vanished version as a failure
        raise LookupError(f"ramp version of execution {execution.uuid} disappeared")
    # count_attempt: a failed replay counts too, so repeated calls drain the backlog instead of
    # spinning on it.
    result = run_execution(
        session,
        execution,
        version,
        suppress_notifications=request.suppress_notifications,
        http_timeout=config.http_timeout_seconds,
        integration=integration,
        count_attempt=True,
    )
    project_uuid = str(result.project.uuid) if result.project is not None else None
    error = (
        ReplayError(result.error_type, result.error_category, result.error_message)
        if result.status != "SUCCESS"
        else None
    )
    _write_history(
        session,
        request,
        actor,
        batch_id,
        execution,
        outcome="success" if error is None else "error",
        error=error,
        version_run=version.version,
        drift=execution.ramp_version != ramp.current_version,
        project_uuid=project_uuid,
    )
    return result, project_uuid


def _record_failure(session_factory, request, actor, batch_id, row: ScopedRow, exc: BaseException) -> ReplayError:
    """After a rolled-back replay: record its attempt, an ERROR log entry and the history row."""
    error_type, category, message = describe(exc)
    error = ReplayError(error_type, category, f"replay failed: {message}"[:2000])
    try:
        with session_factory() as session, session.begin():
            status = eligibility.lock_for_failure_record(session, row.id)
            if status is None:
                # Someone else holds the row (and will record their own attempt): write nothing.
                log.warning(
                    "batch %s: %s is locked elsewhere; failure not recorded on it", batch_id, row.execution_uuid
                )
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
            _write_history(
                session,
                request,
                actor,
                batch_id,
                execution,
                outcome="error",
                error=error,
                version_run=None,
                drift=row.workflow_version_drift,
                project_uuid=None,
            )
    except Exception:
        log.exception("batch %s: could not record the failed replay of %s", batch_id, row.execution_uuid)
    return error


def _write_history(
    session: Session,
    request: RetryRequest,
    actor: ActorLike,
    batch_id: uuid.UUID,
    execution: RampExecution,
    *,
    outcome: str,
    error: ReplayError | None,
    version_run: int | None,
    drift: bool,
    project_uuid: str | None,
) -> None:
    """The REPLAYED history row: one plain INSERT in the replay's transaction."""
    values = dict(
        execution_id=execution.id,
        action=HISTORY_ACTION_REPLAYED,
        actor=actor.name,
        batch_id=batch_id,
        details={
            "outcome": outcome,
            "error_type": error.type if error else None,
            "error_category": error.category if error else None,
            "error_message": error.message if error else None,
            "suppress_notifications": request.suppress_notifications,
            "force_retry": request.force_retry,
            "workflow_version": request.workflow_version,
            "version_run": version_run,
            "original_version": execution.ramp_version,
            "workflow_version_drift": drift,
            "attempt": execution.replay_attempts,
            "project_uuid": project_uuid,
            "actor_type": actor.kind,
        },
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


def _report(exc: BaseException | None, batch_id, row: ScopedRow, category: str | None, actor: ActorLike) -> None:
    if exc is None:
        return
    from app.retries.telemetry import capture_replay_failure

    try:
        capture_replay_failure(
            exc,
            tags={
                "batch_id": str(batch_id),
                "execution_uuid": str(row.execution_uuid),
                "vendor_id": str(row.vendor_id),
                "ramp_uuid": str(row.ramp_uuid),
                "error_category": category or "runtime",
            },
            actor=actor_label(actor),
        )
    except Exception:
        log.exception("could not report the failed replay of %s", row.execution_uuid)


def _entry(
    row: ScopedRow, *, outcome: str, error: ReplayError | None = None, project_uuid: str | None = None
) -> EligibleEntry:
    return EligibleEntry(
        execution_uuid=str(row.execution_uuid),
        vendor_id=row.vendor_id,
        ramp_uuid=str(row.ramp_uuid),
        created_at=row.created_at,
        error_message=row.error_message,
        workflow_version_drift=bool(row.workflow_version_drift),
        outcome=outcome,
        error=error,
        project_uuid=project_uuid,
    )


# ---- audit ------------------------------------------------------------------------------------


def _open_audit(session_factory, request: RetryRequest, actor: ActorLike) -> tuple[uuid.UUID, int]:
    """Insert the batch's audit row in its own transaction, before any work starts."""
    batch = RetryBatch(
        uuid=uuid.uuid4(),
        actor=actor.name,
        actor_type=actor.kind,
        dry_run=request.dry_run,
        request=request.normalised(),
        started_at=utcnow(),
    )
    with session_factory() as session, session.begin():
        session.add(batch)
    return batch.uuid, batch.id


def _close_audit(session_factory, audit_id: int, summary: dict, clock: float) -> int:
    duration_ms = int((time.monotonic() - clock) * 1000)
    try:
        with session_factory() as session, session.begin():
            session.execute(
                update(RetryBatch)
                .where(RetryBatch.id == audit_id)
                .values(summary=summary, finished_at=utcnow(), duration_ms=duration_ms)
            )
    except Exception:
        log.exception("could not close audit record %s", audit_id)
    return duration_ms
