"""Appending to an execution's ordered log.

An ERROR entry also updates the execution's `last_error_*` copy in the same transaction, which is
what the retry eligibility query reads (`config_error`, `error_pattern_mismatch`).
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import ExecutionLog, RampExecution


def append_log(
    session: Session,
    execution: RampExecution,
    *,
    level: str,
    message: str,
    step: str | None = None,
    attempt: int | None = None,
    error_type: str | None = None,
    error_category: str | None = None,
) -> ExecutionLog:
    entry = ExecutionLog(
        execution_id=execution.id,
        attempt=execution.replay_attempts if attempt is None else attempt,
        step=step,
        level=level,
        message=message,
        error_type=error_type,
        error_category=error_category,
    )
    session.add(entry)
    if level == "ERROR":
        execution.last_error_type = error_type
        execution.last_error_category = error_category
        execution.last_error_message = message
    return entry
