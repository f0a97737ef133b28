"""The raw-SQL ceiling: how many replay transactions per second the database itself sustains.

    .venv/bin/python devtools/bench/ceiling.py [--database-url URL] [--clients 1,2,4,8] [--repeat 3]

Each client is a separate process with its own psycopg2 connection, looping over transactions that
issue the same statements as one replay of the retry endpoint, with no ORM and no HTTP:

  1. claim the next eligible row of the incident window (FOR UPDATE OF e SKIP LOCKED, taking its
     trigger key in the same statement), re-check
     it and load it with its ramp, version and integration; with `--claim endpoint` (default)
     these are the endpoint's own statements (taken from app.retries, prepared per connection
     as the endpoint does) inside a SAVEPOINT around the steps; with `--claim simple`, a bare
     `status = 'ERROR'` claim of the oldest row and no re-check, load or savepoint (the ceiling
     reported before 2026-11-23);
  2. pg_advisory_xact_lock on the CRM object, find the account through its live entity link, or
     insert account + link (one statement);
  3. insert the project; 4. insert the two outbox rows (webhook + email, suppressed);
  5. insert three log rows; 6. insert one WORKFLOW_HISTORY_ACTION_REPLAYED row;
  7. update the execution (SUCCESS, replay_attempts + 1); commit.

Clients drain the incident window until no row is left to claim. The database is reset to its
generated state before every level (common.reset), exactly as before each endpoint measure, so the
ceiling and the endpoint work on the same rows. Needs a database made by generate.py.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import psycopg2
from psycopg2.extras import Json

from devtools.dbtools import libpq_url, redacted

# Config-category rows are skipped by the endpoint and rows with a linked project would violate
# the one-project-per-execution index, so the raw claim leaves both out too.
CLAIM_SQL = """
SELECT e.id, e.uuid, e.vendor_id, e.ramp_id, e.trigger_key, e.trigger_payload, e.replay_attempts
FROM or_ramp_executions e
WHERE e.status_code = 'ERROR' AND e.created_at >= %(since)s AND e.created_at < %(until)s
  AND e.last_error_category IS DISTINCT FROM 'config'
  AND NOT EXISTS (SELECT 1 FROM or_projects p WHERE p.execution_id = e.id)
ORDER BY e.created_at, e.id
LIMIT 1
FOR UPDATE OF e SKIP LOCKED
"""
LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
FIND_ACCOUNT_SQL = """
SELECT a.id, a.uuid, a.name FROM or_accounts a
JOIN or_object_entity_ids o ON o.account_id = a.id
WHERE o.vendor_id = %s AND o.object_type = 'company' AND o.external_id = %s AND o.archived_at IS NULL
"""
# Account and link in one statement, as app/workflow/steps.py sends them.
INSERT_ACCOUNT_AND_LINK_SQL = """
WITH new_account AS (
    INSERT INTO or_accounts (uuid, vendor_id, name, created_at) VALUES (%(uuid)s, %(vendor_id)s, %(name)s, now())
    RETURNING id
), new_link AS (
    INSERT INTO or_object_entity_ids (vendor_id, account_id, object_type, external_id, created_at)
    SELECT %(vendor_id)s, new_account.id, 'company', %(external_id)s, now() FROM new_account
)
SELECT id FROM new_account
"""
INSERT_PROJECT_SQL = """
INSERT INTO or_projects (uuid, vendor_id, account_id, execution_id, name, created_at)
VALUES (%s, %s, %s, %s, %s, now()) RETURNING id
"""
INSERT_OUTBOX_SQL = """
INSERT INTO or_notification_outbox (uuid, vendor_id, execution_id, channel, event, target, payload,
                                    status, attempts, created_at)
VALUES (%s, %s, %s, 'webhook', 'PROJECT_CREATED', %s, %s, 'suppressed', 0, now()),
       (%s, %s, %s, 'email', 'PROJECT_CREATED', %s, %s, 'suppressed', 0, now())
"""
INSERT_LOGS_SQL = """
INSERT INTO or_execution_logs (execution_id, attempt, step, level, message, created_at)
VALUES (%s, %s, NULL, 'INFO', %s, now()),
       (%s, %s, 'create_project', 'INFO', %s, now()),
       (%s, %s, 'notify', 'INFO', 'PROJECT_CREATED suppressed: webhook, email', now())
"""
INSERT_HISTORY_SQL = """
INSERT INTO or_workflow_history (execution_id, action, actor, batch_id, details, created_at)
VALUES (%s, 'WORKFLOW_HISTORY_ACTION_REPLAYED', 'bench-ceiling', %s, %s, now())
"""
UPDATE_EXECUTION_SQL = """
UPDATE or_ramp_executions
SET status_code = 'SUCCESS', replay_attempts = replay_attempts + 1, updated_at = now(), finished_at = now()
WHERE id = %s
"""


class EndpointClaim:
    """The endpoint's claim, re-check and load statements, prepared on one connection."""

    def __init__(self, cur, window: dict) -> None:
        from sqlalchemy.dialects import postgresql

        from app.prepared import prepare
        from app.retries import eligibility
        from app.retries.replay_unit import LOAD_FOR_REPLAY
        from app.retries.schemas import RetryBatchRequestSchema

        request = RetryBatchRequestSchema().load(
            {"since": window["since"], "until": window["until"], "dry_run": False, "suppress_notifications": True}
        )
        self.params = eligibility.bind_params(request)
        self.after: tuple | None = None
        # The same statements as eligibility.claim_next / recheck send (the claim with a generic
        # plan, as there), prepared once on this connection.
        self.statements = {
            "claim_first": prepare(
                "retry_claim", eligibility.claim_next_sql(request, after=False), eligibility.PARAM_TYPES
            ),
            "claim_after": prepare(
                "retry_claim", eligibility.claim_next_sql(request, after=True), eligibility.PARAM_TYPES
            ),
            "recheck": prepare("retry_recheck", eligibility.recheck_sql(), eligibility.PARAM_TYPES),
        }
        for statement in self.statements.values():
            cur.execute(statement.prepare)
        self.load_sql = str(LOAD_FOR_REPLAY[request.workflow_version].compile(dialect=postgresql.psycopg2.dialect()))

    def _execute(self, cur, name: str, params: dict) -> None:
        statement = self.statements[name]
        cur.execute(statement.execute("%({})s", generic_plan=name.startswith("claim")), params)

    def claim(self, cur):
        """(id, uuid, vendor_id, ramp_id, trigger_key, payload, attempts) of the claimed row, or None."""
        if self.after is None:
            self._execute(cur, "claim_first", self.params)
        else:
            self._execute(
                cur, "claim_after", self.params | {"after_created_at": self.after[0], "after_id": self.after[1]}
            )
        claimed = cur.fetchone()
        if claimed is None:
            return None
        columns = [d.name for d in cur.description]
        claimed = dict(zip(columns, claimed, strict=True))
        self.after = (claimed["created_at"], claimed["id"])
        self._execute(cur, "recheck", self.params | {"execution_id": claimed["id"]})
        cur.fetchone()
        cur.execute(self.load_sql, {"execution_id": claimed["id"]})
        loaded: dict = {}
        for column, value in zip([d.name for d in cur.description], cur.fetchone(), strict=True):
            loaded.setdefault(column, value)  # the execution's columns come first; later ones repeat names
        return (
            loaded["id"],
            loaded["uuid"],
            loaded["vendor_id"],
            loaded["ramp_id"],
            loaded["trigger_key"],
            loaded["trigger_payload"],
            loaded["replay_attempts"],
        )


def replay_one(cur, window: dict, batch_id: str, endpoint: EndpointClaim | None = None) -> bool:
    """One replay transaction's statements (the caller commits); False when nothing is left."""
    if endpoint is not None:
        row = endpoint.claim(cur)
    else:
        cur.execute(CLAIM_SQL, window)
        row = cur.fetchone()
    if row is None:
        return False
    execution_id, execution_uuid, vendor_id, _ramp_id, trigger_key, payload, attempts = row
    if endpoint is not None:
        cur.execute("SAVEPOINT steps")
    company = payload.get("company") or {}
    external_id, name = str(company.get("id")), str(company.get("name"))
    cur.execute(LOCK_SQL, (f"account:{vendor_id}:{external_id}",))
    cur.execute(FIND_ACCOUNT_SQL, (vendor_id, external_id))
    account = cur.fetchone()
    if account is None:
        account_uuid = str(uuid.uuid4())
        cur.execute(
            INSERT_ACCOUNT_AND_LINK_SQL,
            {"uuid": account_uuid, "vendor_id": vendor_id, "name": name, "external_id": external_id},
        )
        account_id = cur.fetchone()[0]
    else:
        account_id, account_uuid, _ = account
    project_uuid = str(uuid.uuid4())
    cur.execute(INSERT_PROJECT_SQL, (project_uuid, vendor_id, account_id, execution_id, name))
    notification = Json(
        {
            "event": "PROJECT_CREATED",
            "vendor_id": vendor_id,
            "execution_uuid": str(execution_uuid),
            "trigger_key": trigger_key,
            "project": {"uuid": project_uuid, "name": name},
            "account": {"uuid": str(account_uuid), "name": name},
        }
    )
    email = (payload.get("owner") or {}).get("email") or "nobody@example.com"
    cur.execute(
        INSERT_OUTBOX_SQL,
        (
            str(uuid.uuid4()),
            vendor_id,
            execution_id,
            f"http://127.0.0.1:9/webhooks/{vendor_id}",
            notification,
            str(uuid.uuid4()),
            vendor_id,
            execution_id,
            email,
            notification,
        ),
    )
    if endpoint is not None:
        cur.execute("RELEASE SAVEPOINT steps")
    attempt = attempts + 1
    cur.execute(
        INSERT_LOGS_SQL,
        (
            execution_id,
            attempt,
            f"run started: version 2, attempt {attempt}",
            execution_id,
            attempt,
            f"created project {project_uuid}",
            execution_id,
            attempt,
        ),
    )
    cur.execute(
        INSERT_HISTORY_SQL,
        (
            execution_id,
            batch_id,
            Json(
                {
                    "outcome": "success",
                    "suppress_notifications": True,
                    "attempt": attempt,
                }
            ),
        ),
    )
    cur.execute(UPDATE_EXECUTION_SQL, (execution_id,))
    return True


def _client(dsn: str, window: dict, start, out, deadline_s: float, claim_mode: str) -> None:
    conn = psycopg2.connect(dsn, application_name="onramp-bench-ceiling", options="-c timezone=UTC")
    cur = conn.cursor()
    endpoint = EndpointClaim(cur, window) if claim_mode == "endpoint" else None
    conn.commit()
    batch_id = str(uuid.uuid4())
    latencies: list[float] = []
    errors = 0
    start.wait()
    t_start = time.monotonic()
    deadline = t_start + deadline_s
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            claimed = replay_one(cur, window, batch_id, endpoint)
            conn.commit()
        except psycopg2.Error:
            conn.rollback()
            errors += 1
            continue
        if not claimed:
            break
        latencies.append((time.perf_counter() - t0) * 1000)
    t_end = time.monotonic()
    conn.close()
    out.put({"latencies_ms": latencies, "errors": errors, "t_start": t_start, "t_end": t_end})


def run_level(url: str, window: dict, clients: int, *, deadline_s: float = 120.0, claim_mode: str = "endpoint") -> dict:
    """Drain the window with `clients` processes; the caller resets the data before."""
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    dsn = libpq_url(url)
    procs = [
        ctx.Process(target=_client, args=(dsn, window, start, out, deadline_s, claim_mode)) for _ in range(clients)
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)  # let every client connect before the clock starts
    start.set()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    latencies = [ms for r in results for ms in r["latencies_ms"]]
    wall = max(r["t_end"] for r in results) - min(r["t_start"] for r in results)
    return {
        "clients": clients,
        "transactions": len(latencies),
        "errors": sum(r["errors"] for r in results),
        "wall_s": round(wall, 3),
        "tps": round(len(latencies) / wall, 1) if wall > 0 else None,
        "latency_ms": common.rounded(common.summarize(latencies)),
    }


def measure(
    url: str,
    meta: dict,
    clients_levels: list[int],
    repeat: int = 1,
    window_name: str = "incident",
    reset=common.reset,
    claim_mode: str = "endpoint",
) -> list[dict]:
    """Ceiling at each concurrency level: median of `repeat` drains, each after a reset."""
    window = meta["windows"][window_name]
    levels = []
    for clients in clients_levels:
        runs = []
        for _ in range(repeat):
            reset(url, meta)
            runs.append(run_level(url, window, clients, claim_mode=claim_mode))
        tps = [r["tps"] for r in runs if r["tps"]]
        summary = common.summarize(tps)
        levels.append(
            {
                "clients": clients,
                "tps_median": summary["median"],
                "tps_p95": summary["p95"],
                "runs": runs,
            }
        )
        last = runs[-1]
        print(
            f"  ceiling clients={clients}: {summary['median']:.0f} tx/s median over {len(runs)} run(s) "
            f"({last['transactions']} tx in {last['wall_s']}s, latency p50 "
            f"{last['latency_ms']['median']} ms, p95 {last['latency_ms']['p95']} ms, "
            f"errors {last['errors']})",
            flush=True,
        )
    reset(url, meta)
    return levels


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Raw-SQL replay ceiling at several concurrency levels.")
    p.add_argument("--database-url")
    p.add_argument("--clients", default="1,2,4,8", help="comma-separated concurrency levels")
    p.add_argument("--repeat", type=int, default=1, help="drains per level (median reported)")
    p.add_argument("--window", default="incident", choices=["incident", "month"])
    p.add_argument(
        "--claim",
        default="endpoint",
        choices=["endpoint", "simple"],
        help="endpoint: the endpoint's own claim, re-check and load; simple: a bare claim",
    )
    p.add_argument("--json-out", type=Path, help="also write the result as JSON here")
    args = p.parse_args(argv)
    url = common.resolve_database_url(args.database_url)
    meta = common.generated_meta(url)
    if meta is None:
        return 2
    levels = [int(c) for c in args.clients.split(",") if c.strip()]
    print(f"raw-SQL ceiling on {redacted(url)}, {args.window} window, {args.claim} claim")
    result = measure(url, meta, levels, args.repeat, args.window, claim_mode=args.claim)
    if args.json_out:
        common.write_json(args.json_out, {"ceiling": result})
    else:
        print(json.dumps([{k: v for k, v in lvl.items() if k != "runs"} for lvl in result]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
