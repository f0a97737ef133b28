"""Appending to an execution's ordered log.

An ERROR entry also updates the execution's `last_error_*` copy in the same transaction, which is
what the retry eligibility query reads (`config_error`, `error_pattern_mismatch`).

Two ways in: `append_log` adds one ORM entry (for callers that build the execution in the same
flush, like the scenario loader), `append_logs` writes a run's entries in one INSERT (the runner,
where the execution row already exists and the ORM's unit of work would only add overhead).
"""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.models import ExecutionLog, RampExecution

_INSERT = insert(ExecutionLog)  # built once: it runs on every workflow run


def _values(
    execution: RampExecution,
    *,
    level: str,
    message: str,
    step: str | None = None,
    attempt: int | None = None,
    error_type: str | None = None,
    error_category: str | None = None,
) -> dict:
    values = dict(
        execution_id=execution.id,
        attempt=execution.replay_attempts if attempt is None else attempt,
        step=step,
        level=level,
        message=message,
        error_type=error_type,
        error_category=error_category,
    )
    if level == "ERROR":
        execution.last_error_type = error_type
        execution.last_error_category = error_category
        execution.last_error_message = message
    return values


def append_log(session: Session, execution: RampExecution, **entry) -> ExecutionLog:
    log_entry = ExecutionLog(**_values(execution, **entry))
    session.add(log_entry)
    return log_entry


def append_logs(session: Session, execution: RampExecution, entries: list[dict]) -> None:
    """Write `entries` (keyword sets of `append_log`) in order, in one statement."""
    if entries:
        rows = [_values(execution, **entry) for entry in entries]
        session.connection().execute(_INSERT, rows)
