"""Close the audit rows of retry-batch calls whose process died mid-call.

A call writes its `or_retry_batches` row before any work and closes it at the end
(app/retries/audit.py). A SIGKILL or a machine loss in between leaves `finished_at` NULL for
ever. Once a row is older than any live call can run, its call is certainly gone: the row gets
`finished_at` and `summary = {"aborted": "interrupted"}`. What the call did replay is in the
history rows, one transaction per replay, so nothing else needs repairing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.models import RetryBatch
from app.retries.batch import MAX_CLAIMS_PER_CALL

log = logging.getLogger(__name__)

INTERRUPTED_SUMMARY = {"aborted": "interrupted"}


def longest_live_call(config: Config) -> timedelta:
    """An upper bound on how long one retry-batch call can run.

    Per claim: the CRM fetch and the deliveries after commit, each bounded by the HTTP timeout
    (connect and read counted apart, generously), plus a lock wait; every claim of the cap is
    counted as a full replay. On top, the scope counts, bounded by the statement timeout.
    """
    per_claim = 6 * config.http_timeout_seconds + config.lock_timeout_ms / 1000
    counts = 4 * config.statement_timeout_ms / 1000
    return timedelta(seconds=MAX_CLAIMS_PER_CALL * per_claim + counts)


def close_interrupted_batches(
    session_factory: sessionmaker[Session], config: Config, *, older_than: timedelta | None = None
) -> int:
    """Close the open audit rows started more than `older_than` ago (default: `longest_live_call`).

    Returns how many were closed; running it again closes nothing more. Ages are measured on the
    database's clock, the one `started_at` was written with.
    """
    age = older_than if older_than is not None else longest_live_call(config)
    with session_factory() as session, session.begin():
        closed = (
            session.execute(
                update(RetryBatch)
                .where(
                    RetryBatch.finished_at.is_(None),
                    RetryBatch.started_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, age.total_seconds()),
                )
                .values(finished_at=func.now(), summary=INTERRUPTED_SUMMARY)
                .returning(RetryBatch.uuid)
            )
            .scalars()
            .all()
        )
    if closed:
        log.warning(
            "closed %d retry-batch audit rows of interrupted calls",
            len(closed),
            extra={"event": "retry_batch.interrupted", "batch_ids": [str(u) for u in closed]},
        )
    return len(closed)
