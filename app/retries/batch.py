"""The retry-batch use case (SPEC sections 3 and 6): size the scope, and for an executing call
replay up to 25 of its rows, each in its own transaction through the replay unit.

The scope is the request's own (a window or hand-picked rows) or, with `plan_token`, the rows of a
plan that a dry run stored. A dry run without a plan counts and lists the scope and stores its
eligible rows as a new plan, all in one snapshot.

Statement budget per call (independent of how many rows are in scope):
  dry run:  audit insert, SET TRANSACTION, list_rows, the plan header, write_plan (count + plan
            rows in one statement), the plan's total, audit update;
  execute:  per replayed row a claim, the trigger key, a re-check, the row and version load, the
            runner's own statements, one history insert (and for a plan the row's outcome); at
            most MAX_CLAIMS_PER_CALL claims; then in one snapshot list_rows (skipped rows only),
            the replayed rows' reasons and count_by_reason; audit insert and update around it all.

An executing call counts the scope once, after its replays, instead of before and after: the
whole-scope count is the most expensive statement of a call. `remaining` is that count; the other
figures put this call's own replays back (see `_before_own_replays`), so without concurrent
writers they equal what a dry run just before the call would have said.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.errors import AppError, DatabaseUnavailable
from app.models import RampExecution, RetryPlan
from app.retries import eligibility, plans
from app.retries.audit import close_audit, open_audit
from app.retries.filters import ScopedRow
from app.retries.merge_patch import merge_patch
from app.retries.replay_unit import PlanRows, ReplayContext, Replayed, RowSource, ScopeRows, replay_next
from app.retries.results import ActorLike, BatchResult, EligibleEntry, SkippedEntry, Summary, actor_label
from app.retries.schemas import RetryRequest
from app.retries.telemetry import log_batch_summary

# SPEC: each call replays (or, for a dry run, lists) at most this many rows.
MAX_BATCH_SIZE = 25
# skipped[] lists at most this many rows (oldest first); the summary still counts them all.
SKIPPED_LIST_LIMIT = 200
# Claims per call, including rows that lost eligibility between claim and re-check; bounds the
# statements of one call even while other writers keep changing rows under it.
MAX_CLAIMS_PER_CALL = 4 * MAX_BATCH_SIZE


@dataclass(frozen=True)
class _PlanInfo:
    id: int
    token: str
    created_by: str
    expires_at: datetime


def retry_batch(
    session_factory: sessionmaker[Session], request: RetryRequest, actor: ActorLike, *, config: Config
) -> BatchResult:
    """Run one retry-batch call (dry run or execute) and record it in `or_retry_batches`."""
    clock = time.monotonic()
    batch_id, audit_id = open_audit(session_factory, request=request.normalised(), dry_run=request.dry_run, actor=actor)
    progress: list[Replayed] = []
    try:
        plan = None
        if request.plan_token is not None:
            plan, request = _load_plan(session_factory, request)
        result = _run(session_factory, request, actor, batch_id, config, plan, progress)
    except Exception as exc:
        code = exc.code if isinstance(exc, AppError) else type(exc).__name__
        aborted = {"aborted": code}
        if isinstance(exc, DatabaseUnavailable):
            # Rows replayed before the database went away stay replayed: say how many.
            aborted |= _tally(progress)
        close_audit(session_factory, audit_id, aborted, clock)
        raise
    summary = asdict(result.summary)
    duration_ms = close_audit(
        session_factory, audit_id, summary, clock, request=request.normalised() | _planned_by(plan)
    )
    log_batch_summary(
        batch_id=str(batch_id),
        actor=actor_label(actor),
        dry_run=request.dry_run,
        summary=summary,
        duration_ms=duration_ms,
        request=request.normalised(),
    )
    return result


def _planned_by(plan: _PlanInfo | None) -> dict:
    # Both actors are recorded: who made the plan, and (the audit row's actor) who executed it.
    return {"planned_by": plan.created_by} if plan is not None else {}


def _tally(progress: list[Replayed]) -> dict:
    return {
        "success": sum(1 for step in progress if step.outcome == "success"),
        "error": sum(1 for step in progress if step.outcome == "error"),
    }


def _load_plan(session_factory, call: RetryRequest) -> tuple[_PlanInfo, RetryRequest]:
    with session_factory() as session, session.begin():
        plan: RetryPlan = plans.load_plan(session, call.plan_token)
        info = _PlanInfo(plan.id, plan.token, plan.created_by, plan.expires_at)
        return info, plans.plan_request(plan, call)


def _run(
    session_factory: sessionmaker[Session],
    request: RetryRequest,
    actor: ActorLike,
    batch_id: uuid.UUID,
    config: Config,
    plan: _PlanInfo | None,
    progress: list[Replayed],
) -> BatchResult:
    plan_id = plan.id if plan is not None else None
    summary = Summary()
    if request.dry_run:
        with session_factory() as session, session.begin():
            _read_settings(session)
            would_replay, skipped_rows = eligibility.list_rows(
                session, request, eligible_limit=MAX_BATCH_SIZE, skipped_limit=SKIPPED_LIST_LIMIT, plan_id=plan_id
            )
            patched = _patched_payloads(session, request, would_replay)
            if plan is None:
                plan = _new_plan(session, request, actor, batch_id)
                counts = plan.counts
            else:
                counts = eligibility.count_by_reason(session, request, plan_id=plan_id)  # last: planner settings
        entries = [_entry(row, outcome="would_replay", payload=patched.get(row.id)) for row in would_replay]
        remaining = counts.get(None, 0) - len(entries)
    else:
        source: RowSource = PlanRows(plan_id) if plan_id is not None else ScopeRows()
        ctx = ReplayContext(
            request=request,
            actor=actor,
            batch_id=batch_id,
            config=config,
            planned_by=plan.created_by if plan is not None else None,
            payload_patches=request.payload_patches,
        )
        _replay_rows(session_factory, ctx, source, progress)
        entries = [_replayed_entry(step) for step in progress]
        replayed_ids = [step.row.id for step in progress]
        # The scope is counted once, after the replays: `remaining` is then exact, and this call's
        # own rows are put back where they stood before it (eligible) using their reasons now.
        with session_factory() as session, session.begin():
            _read_settings(session)
            _, skipped_rows = eligibility.list_rows(
                session,
                request,
                eligible_limit=0,
                skipped_limit=SKIPPED_LIST_LIMIT,
                exclude_ids=replayed_ids,
                plan_id=plan_id,
            )
            now = eligibility.reasons_of(session, request, replayed_ids, plan_id=plan_id)
            counts = eligibility.count_by_reason(session, request, plan_id=plan_id)  # last: planner settings
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
        plan_token=plan.token if plan is not None else None,
        plan_expires_at=plan.expires_at if plan is not None else None,
    )


@dataclass(frozen=True)
class _NewPlan(_PlanInfo):
    counts: dict


def _new_plan(session: Session, request: RetryRequest, actor: ActorLike, batch_id: uuid.UUID) -> _NewPlan:
    """Store the scope's eligible rows as a plan, in the dry run's snapshot; with the counts."""
    plan = plans.create_plan(session, request, actor, batch_id=batch_id)
    counts = eligibility.write_plan(session, request, plan.id)
    plans.set_total(session, plan, counts.get(None, 0))
    return _NewPlan(plan.id, plan.token, plan.created_by, plan.expires_at, counts)


def _read_settings(session: Session) -> None:
    # One snapshot for the counts, the lists and the plan, so they agree with each other; the
    # planner settings travel in the same round trip.
    session.execute(text(f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; {eligibility.SCOPE_READ_SETTINGS}"))


def _before_own_replays(
    counts: dict[str | None, int], replayed_now: Iterable[tuple[str | None, bool]]
) -> dict[str | None, int]:
    """Counts as they stood before this call's own replays, from the counts taken after them.

    Every row this call replayed was eligible when it claimed it. Now it may be skipped (a success
    reads `status_not_error`, a last failed attempt `retry_limit_reached`, a plan row handled by
    this plan) or out of the scope altogether (a window scope holds ERROR rows only): move it back
    to eligible.
    """
    before = dict(counts)
    for reason, in_scope in replayed_now:
        if in_scope and reason is None:
            continue  # still eligible (a failed attempt with attempts left): already counted
        if in_scope:
            before[reason] -= 1
        before[None] = before.get(None, 0) + 1
    return {reason: n for reason, n in before.items() if n or reason is None}


def _replay_rows(session_factory, ctx: ReplayContext, source: RowSource, progress: list[Replayed]) -> None:
    """Replay up to MAX_BATCH_SIZE rows of `source`; each replayed row is appended to `progress`."""
    after: tuple[datetime, int] | None = None
    for _ in range(MAX_CLAIMS_PER_CALL):
        if len(progress) >= MAX_BATCH_SIZE:
            break
        step = replay_next(session_factory, ctx, source, after=after)
        if step is None:
            break
        # Keyset: this call never walks back over rows it already passed.
        after = step.position
        if step.outcome in ("success", "error"):
            progress.append(step)


def _patched_payloads(session: Session, request: RetryRequest, rows: list[ScopedRow]) -> dict[int, dict]:
    """For the listed rows a payload patch changes: the payload they would run with."""
    patches = request.payload_patches or {}
    ids = [row.id for row in rows if str(row.execution_uuid) in patches]
    if not ids:
        return {}
    stored = session.execute(
        select(RampExecution.id, RampExecution.uuid, RampExecution.trigger_payload).where(RampExecution.id.in_(ids))
    )
    return {row.id: merge_patch(row.trigger_payload, patches[str(row.uuid)]) for row in stored}


def _replayed_entry(step: Replayed) -> EligibleEntry:
    return _entry(
        step.row, outcome=step.outcome, error=step.error, project_uuid=step.project_uuid, payload=step.payload
    )


def _entry(
    row: ScopedRow, *, outcome: str, error=None, project_uuid: str | None = None, payload: dict | None = None
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
        payload=payload,
    )
