"""The superseded marker (migrations 0007_superseded_marker, 0008_superseded_by_any_success) says
exactly what its definition says: an execution is marked iff another execution of the same ramp
and trigger key succeeded, naming the first such success (by created_at, then id). A seeded random walk of the changes the product and its
operators make (rows added, successes written and undone, keys, ramps and times changed, rows
deleted) checks the table against that definition after every committed change."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import text

from app.models.base import utcnow
from tests.support.retry_scenarios import backlog

# The definition, read straight from the executions (what filters.py asked per row before).
EXPECTED = text("""
SELECT e.id, success.uuid
FROM or_ramp_executions e
CROSS JOIN LATERAL (
    SELECT s.uuid FROM or_ramp_executions s
    WHERE s.ramp_id = e.ramp_id AND s.trigger_key = e.trigger_key
      AND s.status_code = 'SUCCESS' AND s.id <> e.id
    ORDER BY s.created_at, s.id LIMIT 1
) success
WHERE e.trigger_key IS NOT NULL
""")
MARKED = text("SELECT execution_id, superseded_by_uuid FROM or_superseded_executions")
STATUSES = ("ERROR", "SUCCESS", "PENDING", "DISMISSED")


def test_the_marker_matches_its_definition_after_every_change(load, session_factory):
    load(backlog(2))
    with session_factory() as session, session.begin():
        ramps = [r for (r,) in session.execute(text("SELECT id FROM or_ramps ORDER BY id LIMIT 2"))]
        vendor = session.execute(text("SELECT vendor_id FROM or_ramps WHERE id = :r"), {"r": ramps[0]}).scalar()
    base = utcnow() - timedelta(days=1)
    rng = random.Random(20261203)
    ids: list[int] = []

    def minute() -> object:
        return base + timedelta(minutes=rng.randrange(8))

    for step in range(250):
        op = rng.choice(["insert", "insert", "status", "status", "status", "key", "ramp", "time", "delete"])
        with session_factory() as session, session.begin():
            if op == "insert" or not ids:
                new_id = session.execute(
                    text(
                        "INSERT INTO or_ramp_executions (uuid, vendor_id, ramp_id, ramp_version, status_code,"
                        " trigger_key, trigger_payload, replay_attempts, created_at, updated_at)"
                        " VALUES (gen_random_uuid(), :v, :r, 1, :s, :k, '{}', 0, :t, now()) RETURNING id"
                    ),
                    {
                        "v": vendor,
                        "r": rng.choice(ramps),
                        "s": rng.choice(STATUSES),
                        "k": rng.choice(["deal-1", "deal-2", None]),
                        "t": minute(),
                    },
                ).scalar()
                ids.append(new_id)
            else:
                target = rng.choice(ids)
                statement, value = {
                    "status": ("status_code = :x", rng.choice(STATUSES)),
                    "key": ("trigger_key = :x", rng.choice(["deal-1", "deal-2", None])),
                    "ramp": ("ramp_id = :x", rng.choice(ramps)),
                    "time": ("created_at = :x", minute()),
                    "delete": (None, None),
                }[op]
                if statement is None:
                    session.execute(text("DELETE FROM or_ramp_executions WHERE id = :id"), {"id": target})
                    ids.remove(target)
                else:
                    session.execute(
                        text(f"UPDATE or_ramp_executions SET {statement} WHERE id = :id"), {"id": target, "x": value}
                    )
        with session_factory() as session, session.begin():
            expected = dict(session.execute(EXPECTED).all())
            marked = dict(session.execute(MARKED).all())
        assert marked == expected, f"step {step} ({op}): marker and definition differ"


def test_a_rebuild_makes_the_markers_the_triggers_keep(load, session_factory):
    """The bench generator loads with the insert trigger off and rebuilds: same result."""
    data = backlog(3)
    load(data)
    with session_factory() as session, session.begin():
        session.execute(
            text(
                "INSERT INTO or_ramp_executions (uuid, vendor_id, ramp_id, ramp_version, status_code, trigger_key,"
                " trigger_payload, replay_attempts, created_at, updated_at)"
                " SELECT gen_random_uuid(), vendor_id, ramp_id, ramp_version, 'SUCCESS', trigger_key, '{}', 0,"
                " created_at + interval '1 minute', now() FROM or_ramp_executions WHERE trigger_key IS NOT NULL"
            )
        )
        kept = dict(session.execute(MARKED).all())
        assert len(kept) == 3
        assert session.execute(text("SELECT or_rebuild_superseded()")).scalar() == 3
        assert dict(session.execute(MARKED).all()) == kept
