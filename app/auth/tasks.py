"""The job engine's tasks of sign-in (app/job_engine.py): its periodic upkeep. Thin: each calls a
use case."""

from __future__ import annotations

import logging

from procrastinate import JobContext

from app import job_engine
from app.auth.manage import purge_dead_sessions
from app.auth.sessions import Lifetimes

log = logging.getLogger(__name__)


@job_engine.periodic_task(name="auth.delete_dead_sessions", cron="41 * * * *")
def delete_dead_sessions(context: JobContext, timestamp: int) -> int:
    """Browser sessions revoked or expired over 30 days ago go, so or_user_sessions stays small."""
    services = job_engine.services(context)
    deleted = purge_dead_sessions(services.session_factory, Lifetimes.from_config(services.config))
    if deleted:
        log.info("deleted %s dead session(s)", deleted, extra={"event": "auth.sessions_deleted", "deleted": deleted})
    return deleted
