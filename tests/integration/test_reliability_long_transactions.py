"""Long transactions: the service's sessions carry server-side timeouts, and a row held by someone
else is skipped (SKIP LOCKED) instead of waited on, then picked up once it is released."""

from __future__ import annotations

import time

from sqlalchemy import select, text

from app.models import RampExecution
from tests.support.retry_scenarios import api_key_headers, backlog, post, window


def _setting_ms(conn, name: str) -> int:
    # pg_settings reports these three in milliseconds whatever unit they were set in.
    value, unit = conn.execute(text("SELECT setting, unit FROM pg_settings WHERE name = :n"), {"n": name}).one()
    assert unit == "ms", (name, unit)
    return int(value)


def test_app_sessions_have_lock_statement_and_idle_timeouts(app, session_factory, config):
    expected = {
        "lock_timeout": config.lock_timeout_ms,
        "statement_timeout": config.statement_timeout_ms,
        "idle_in_transaction_session_timeout": config.idle_in_transaction_timeout_ms,
    }
    with session_factory() as session, session.begin():
        conn = session.connection()
        got = {name: _setting_ms(conn, name) for name in expected}
        shown = {name: conn.execute(text(f"SHOW {name}")).scalar_one() for name in expected}
    assert got == expected
    # 0 would mean "wait forever": every one of them must be a real bound.
    assert all(v > 0 for v in got.values())
    assert all(s not in ("0", "0ms") for s in shown.values()), shown


def _status(session_factory, uuids) -> dict[str, tuple[str, int]]:
    with session_factory() as s, s.begin():
        rows = s.execute(
            select(RampExecution.uuid, RampExecution.status_code, RampExecution.replay_attempts).where(
                RampExecution.uuid.in_(uuids)
            )
        ).all()
    return {str(u): (status, attempts) for u, status, attempts in rows}


def test_retry_batch_skips_rows_locked_elsewhere_without_waiting(
    client, load, session_factory, make_engine_for, config
):
    data = backlog(3)
    load(data)
    uuids = [e["uuid"] for e in data["executions"]]
    locked, free = uuids[:2], uuids[2]
    admin = api_key_headers(session_factory)
    other_engine, _ = make_engine_for(pool_size=1, max_overflow=0)

    holder = other_engine.connect()
    try:
        tx = holder.begin()
        held = holder.execute(
            text("SELECT uuid FROM or_ramp_executions WHERE uuid = ANY(CAST(:u AS uuid[])) FOR UPDATE"),
            {"u": locked},
        ).all()
        assert len(held) == 2

        started = time.monotonic()
        response = post(client, admin, window(dry_run=False, suppress_notifications=True))
        elapsed = time.monotonic() - started

        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        # Waiting on the lock would have run into lock_timeout (a 500) instead of this answer.
        assert elapsed < config.lock_timeout_ms / 1000, elapsed
        assert [e["execution_uuid"] for e in body["eligible"]] == [free]
        assert body["summary"]["selected"] == 1 and body["summary"]["success"] == 1
        after = _status(session_factory, uuids)
        assert after[locked[0]] == after[locked[1]] == ("ERROR", 0)  # untouched
        assert after[free] == ("SUCCESS", 1)
        tx.rollback()
    finally:
        holder.close()

    response = post(client, admin, window(dry_run=False, suppress_notifications=True))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert sorted(e["execution_uuid"] for e in body["eligible"]) == sorted(locked)
    assert body["summary"]["success"] == 2 and body["summary"]["remaining"] == 0
    assert set(_status(session_factory, uuids).values()) == {("SUCCESS", 1)}
