"""Dismiss without replay (SPEC section 9): failures that must never be replayed (handled by
hand, customer gone) become DISMISSED, which takes them out of every later scope and summary.

Each row is handled in its own transaction, taken with `FOR UPDATE SKIP LOCKED`: a row that a
replay (or anyone) holds right now is reported `locked`, never dismissed under a replay. A dry run
(the default) takes the same locks and changes nothing but the audit record.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.models import RampExecution, WorkflowHistory
from app.models.base import utcnow
from app.models.executions import HISTORY_ACTION_DISMISSED
from app.retries.audit import close_audit, open_audit
from app.retries.results import ActorLike, SkippedEntry
from app.retries.toolbox_schemas import DismissRequest

log = logging.getLogger(__name__)

_FIND = select(RampExecution.id, RampExecution.status_code).where(RampExecution.uuid == bindparam("u"))
_LOCK = (
    select(RampExecution.id, RampExecution.status_code)
    .where(RampExecution.id == bindparam("execution_id"))
    .with_for_update(skip_locked=True)
)
_DISMISS = (
    update(RampExecution)
    .where(RampExecution.id == bindparam("execution_id"))
    .values(status_code="DISMISSED", updated_at=bindparam("now"))
)
_HISTORY = insert(WorkflowHistory)


@dataclass
class DismissSummary:
    matched: int = 0
    dismissed: int = 0
    skipped: int = 0


@dataclass
class DismissResult:
    batch_id: uuid.UUID
    dry_run: bool
    summary: DismissSummary
    dismissed: list[str] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)


def dismiss_batch(session_factory: sessionmaker[Session], request: DismissRequest, actor: ActorLike) -> DismissResult:
    clock = time.monotonic()
    batch_id, audit_id = open_audit(
        session_factory, request=request.normalised(), dry_run=request.dry_run, actor=actor, kind="dismiss"
    )
    result = DismissResult(batch_id, request.dry_run, DismissSummary())
    try:
        for execution_uuid in request.execution_uuids:
            skipped = _dismiss_one(session_factory, request, actor, batch_id, execution_uuid)
            if skipped is None:
                result.dismissed.append(str(execution_uuid))
            else:
                result.skipped.append(skipped)
    except Exception as exc:
        close_audit(
            session_factory, audit_id, {"aborted": type(exc).__name__, "dismissed": len(result.dismissed)}, clock
        )
        raise
    result.summary = DismissSummary(
        matched=len(request.execution_uuids),
        dismissed=len(result.dismissed),
        skipped=len(result.skipped),
    )
    close_audit(session_factory, audit_id, asdict(result.summary), clock)
    log.info(
        "dismiss batch %s: %s dismissed, %s skipped%s",
        batch_id,
        result.summary.dismissed,
        result.summary.skipped,
        " (dry run)" if request.dry_run else "",
        extra={"event": "dismiss_batch.summary", "batch_id": str(batch_id), **asdict(result.summary)},
    )
    return result


def _dismiss_one(
    session_factory, request: DismissRequest, actor: ActorLike, batch_id, execution_uuid
) -> SkippedEntry | None:
    """Dismiss one row in its own transaction; the reason it was skipped, or None."""
    with session_factory() as session, session.begin():
        found = session.execute(_FIND, {"u": execution_uuid}).first()
        if found is None:
            return SkippedEntry(str(execution_uuid), "not_found", "no execution has this uuid")
        locked = session.execute(_LOCK, {"execution_id": found.id}).first()
        if locked is None:
            return SkippedEntry(str(execution_uuid), "locked", "another transaction holds this execution (a replay?)")
        if locked.status_code != "ERROR":
            return SkippedEntry(str(execution_uuid), "status_not_error", f"status is {locked.status_code}")
        if request.dry_run:
            return None
        session.execute(_DISMISS, {"execution_id": found.id, "now": utcnow()})
        session.execute(
            _HISTORY,
            {
                "execution_id": found.id,
                "action": HISTORY_ACTION_DISMISSED,
                "actor": actor.name,
                "batch_id": batch_id,
                "details": {"reason": request.reason, "actor_type": actor.kind, "previous_status": "ERROR"},
            },
        )
    return None
