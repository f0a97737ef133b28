"""Plans are kept for 24 hours (SPEC section 6); the worker's periodic task deletes older ones."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from app.retries import plans

log = logging.getLogger(__name__)


def expire_plans(session_factory: sessionmaker[Session]) -> int:
    """Delete expired plans (and their rows) that no retry job runs on; how many went."""
    with session_factory() as session, session.begin():
        deleted = plans.delete_expired(session)
    if deleted:
        log.info("deleted %s expired plan(s)", deleted, extra={"event": "retry_plans.expired", "deleted": deleted})
    return deleted
