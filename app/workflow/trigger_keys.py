"""One deal, one project: runs of the same ramp and trigger key never overlap.

A CRM trigger and a replay (or two replays) of the same ramp and trigger key could otherwise both
pass their checks before either commits, and both create a project. Both paths take a transaction
level advisory lock on (ramp, trigger key) before they decide, and hold it until they commit:

  * the trigger path waits for it (`wait_for_trigger_key`), then looks for a success of the key
    that committed meanwhile (`succeeded_execution`): a CRM re-delivery is answered with that
    execution instead of running again;
  * a replay only tries it (`try_trigger_key`): if a trigger or another replay of the same key is
    running right now, the row is left alone for this pass, exactly like a row locked by someone
    else, and the re-check of a later pass sees how that run ended.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from app.models import Project, RampExecution

# The lock of one (ramp, trigger key), spelled once: the trigger path binds the two values, the
# retry claims put the claimed row's columns in (they take it in their own round trip).
_KEY_SQL = "hashtextextended('trigger:' || {ramp_id} || ':' || {key}, 0)"
TRY_TRIGGER_KEY_SQL = f"pg_try_advisory_xact_lock({_KEY_SQL})"
_BOUND = {"ramp_id": "CAST(:ramp_id AS bigint)", "key": "CAST(:trigger_key AS text)"}
_WAIT = text(f"SELECT pg_advisory_xact_lock({_KEY_SQL.format(**_BOUND)})")
_TRY = text(f"SELECT {TRY_TRIGGER_KEY_SQL.format(**_BOUND)}")
_SUCCEEDED = (
    select(RampExecution.id, RampExecution.uuid, Project.uuid.label("project_uuid"))
    .outerjoin(Project, Project.execution_id == RampExecution.id)
    .where(
        RampExecution.ramp_id == bindparam("ramp_id"),
        RampExecution.trigger_key == bindparam("trigger_key"),
        RampExecution.status_code == "SUCCESS",
    )
    .order_by(RampExecution.created_at)
    .limit(1)
)


def wait_for_trigger_key(session: Session, ramp_id: int, trigger_key: str) -> None:
    """Block until no other transaction runs this ramp and key (bounded by `lock_timeout`)."""
    session.connection().execute(_WAIT, {"ramp_id": ramp_id, "trigger_key": trigger_key})


def try_trigger_key(session: Session, ramp_id: int, trigger_key: str) -> bool:
    """Take the key for this transaction if nobody holds it; False at once otherwise."""
    return bool(session.connection().execute(_TRY, {"ramp_id": ramp_id, "trigger_key": trigger_key}).scalar())


def succeeded_execution(session: Session, ramp_id: int, trigger_key: str) -> Row | None:
    """The first successful execution of this ramp and key (id, uuid, project_uuid), if any.

    Run it after `wait_for_trigger_key`: a new statement sees what committed while waiting."""
    return session.connection().execute(_SUCCEEDED, {"ramp_id": ramp_id, "trigger_key": trigger_key}).first()
