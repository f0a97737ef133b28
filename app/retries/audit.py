"""The audit record of every retry-batch and dismiss-batch call (`or_retry_batches`), dry runs
included.

The row is written before any work starts and closed at the end, each in its own short
transaction. Closing must survive a lost connection (a backend terminated, a failover): it is
retried on a fresh connection a few times. A call whose process died never closes its row; the
periodic clean-up closes such rows as interrupted once no live call can still own them.
"""

from __future__ import annotations

import logging
import time
import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.models import RetryBatch
from app.models.base import utcnow
from app.retries.results import ActorLike

log = logging.getLogger(__name__)

# Pauses between attempts to close the record: a terminated backend is replaced at once, a
# restarting server takes a few seconds.
CLOSE_RETRY_DELAYS = (0.2, 1.0, 3.0)


def open_audit(
    session_factory: sessionmaker[Session], *, request: dict, dry_run: bool, actor: ActorLike, kind: str = "retry"
) -> tuple[uuid.UUID, int]:
    """Insert the call's audit row in its own transaction; (batch uuid, row id)."""
    batch = RetryBatch(
        uuid=uuid.uuid4(),
        kind=kind,
        actor=actor.name,
        actor_type=actor.kind,
        dry_run=dry_run,
        request=request,
        started_at=utcnow(),
    )
    with session_factory() as session, session.begin():
        session.add(batch)
    return batch.uuid, batch.id


def close_audit(
    session_factory: sessionmaker[Session],
    audit_id: int,
    summary: dict,
    clock: float,
    *,
    request: dict | None = None,
) -> int:
    """Record the call's summary (and, for a plan call, the request it ran with); its duration in ms.

    Never raises: the call's own answer matters more than its audit row, which the periodic
    clean-up closes later if every attempt here failed.
    """
    duration_ms = int((time.monotonic() - clock) * 1000)
    values = {"summary": summary, "finished_at": utcnow(), "duration_ms": duration_ms}
    if request is not None:
        values["request"] = request
    for attempt, delay in enumerate((0.0, *CLOSE_RETRY_DELAYS)):
        if delay:
            time.sleep(delay)
        try:
            with session_factory() as session, session.begin():
                session.execute(update(RetryBatch).where(RetryBatch.id == audit_id).values(**values))
            return duration_ms
        except Exception:
            log.warning("could not close audit record %s (attempt %s)", audit_id, attempt + 1, exc_info=True)
    log.error("gave up closing audit record %s; the periodic clean-up will close it", audit_id)
    return duration_ms
