"""Fill a benchmark database with a month of executions, set-based.

    .venv/bin/python devtools/bench/generate.py [--database-url URL] [--reset] [--executions N]

Default target: database `onramp_bench` on DATABASE_URL's server, or on the embedded server
when DATABASE_URL is unset. The database is created and migrated if needed. Running again on a
complete database with the same parameters does nothing; `--reset` drops and recreates it.

Shape (defaults): 1,000,000 executions over 30 days, 500 vendors, 2,000 ramps; 5% ERROR
(50,000), of which 5,000 fall in a 2-hour incident window one day before the anchor, the rest
spread over the month outside that window. Every skip reason of the retry endpoint occurs among
the ERROR rows; the incident rows are mostly eligible runtime errors (the `new_task`
UnboundLocalError regression). Ramps run find_or_create_account, create_project, notify (no
fetch_crm_record), so replays make no network calls. As in production, every SUCCESS execution
has its onboarding project (`--success-projects` lowers the share), so the `project_already_exists`
check runs against a realistically large or_projects.

The rows themselves are made by fill.py (set-based, seeded: two runs with the same parameters make
the same data, up to uuids and the time anchor); this module creates and migrates the database,
runs the fill, and records what the endpoint must find in it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from api_key import create_bench_api_key
from fill import Timer, fill

from app.embedded_db import ensure_database
from devtools.dbtools import database_name, drop_database, redacted


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--database-url", help="target database (default: onramp_bench on DATABASE_URL's server or the embedded server)"
    )
    p.add_argument("--reset", action="store_true", help="drop and recreate the database first")
    p.add_argument("--executions", type=int, default=1_000_000, help="total executions (incident included)")
    p.add_argument("--error-rate", type=float, default=0.05, help="share of ERROR rows (incident included)")
    p.add_argument("--incident", type=int, default=5_000, help="ERROR rows in the incident window")
    p.add_argument("--incident-hours", type=int, default=2)
    p.add_argument("--vendors", type=int, default=500)
    p.add_argument("--ramps", type=int, default=2_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument(
        "--success-projects",
        type=float,
        default=1.0,
        help="share of SUCCESS executions that have their project (production: all of them)",
    )
    p.add_argument("--json", action="store_true", help="print the generation record as JSON")
    args = p.parse_args(argv)
    if args.ramps < args.vendors:
        p.error("--ramps must be >= --vendors (every vendor has at least one ramp)")
    if round(args.executions * args.error_rate) < args.incident:
        p.error("--incident must not exceed the ERROR rows (executions * error-rate)")
    return args


def params_of(args: argparse.Namespace) -> dict:
    return {
        "executions": args.executions,
        "error_rate": args.error_rate,
        "incident": args.incident,
        "incident_hours": args.incident_hours,
        "vendors": args.vendors,
        "ramps": args.ramps,
        "days": args.days,
        "success_projects": args.success_projects,
    }


# --------------------------------------------------------------------------- database lifecycle


def prepare_database(url: str, reset: bool) -> None:
    """Create (or with reset: drop and recreate) the database, then migrate it to head."""
    name = database_name(url)
    if reset:
        drop_database(url, name)
    ensure_database(url, name)
    from app.migrate import upgrade

    upgrade(url)


def ensure_empty(cur) -> None:
    cur.execute("SELECT EXISTS (SELECT 1 FROM or_ramp_executions) OR EXISTS (SELECT 1 FROM or_vendors)")
    if cur.fetchone()[0]:
        raise SystemExit(
            "error: the database already holds data but no complete bench generation record; "
            "rerun with --reset to drop and recreate it"
        )


# --------------------------------------------------------------------------- expectations

# An independent reading of the spec's ordered filters (as they apply to window scopes without
# error_pattern, max_attempts 1, force_retry false), used to cross-check the endpoint's counts.
EXPECTED_REASONS_SQL = """
SELECT reason, count(*) FROM (
  SELECT CASE
    WHEN EXISTS (SELECT 1 FROM or_projects p WHERE p.execution_id = e.id) THEN 'project_already_exists'
    WHEN r.status = 'deleted' THEN 'ramp_deleted'
    WHEN r.status = 'archived' THEN 'ramp_archived'
    WHEN r.status = 'draft' OR v.draft THEN 'workflow_is_draft'
    WHEN EXISTS (SELECT 1 FROM or_ramp_executions s
                 WHERE s.status_code = 'SUCCESS' AND s.ramp_id = e.ramp_id
                   AND s.trigger_key = e.trigger_key AND s.id <> e.id)
      THEN 'duplicate_trigger_succeeded'
    WHEN e.last_error_category = 'config' THEN 'config_error'
    WHEN i.id IS NULL OR NOT i.user_configured OR i.token_revoked
         OR (i.token_expires_at IS NOT NULL AND i.token_expires_at <= now())
      THEN 'integration_disconnected'
    WHEN e.replay_attempts >= 1 THEN 'retry_limit_reached'
    ELSE 'eligible' END AS reason
  FROM or_ramp_executions e
  JOIN or_ramps r ON r.id = e.ramp_id
  LEFT JOIN or_ramp_versions v ON v.ramp_id = e.ramp_id AND v.version = e.ramp_version
  LEFT JOIN or_crm_integrations i ON i.vendor_id = e.vendor_id
  WHERE e.status_code = 'ERROR' AND e.created_at >= %s AND e.created_at < %s
) x GROUP BY reason ORDER BY count(*) DESC, reason
"""


def expected_reasons(conn, since: str, until: str) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute(EXPECTED_REASONS_SQL, (since, until))
        return dict(cur.fetchall())


# --------------------------------------------------------------------------- entry points


def generate(url: str, args: argparse.Namespace) -> dict:
    """Create, migrate and fill the database unless it already holds this generation."""
    params = params_of(args)
    meta = None if args.reset else common.read_meta(url)
    if common.is_generated(meta, params):
        print(
            f"bench database {redacted(url)} already generated "
            f"({meta['generated_at']}, {meta['duration_s']}s); use --reset to rebuild"
        )
        # Data made by older code still gets the newer migrations (a no-op at head), so the bench
        # never measures a schema the code no longer runs on.
        from app.migrate import upgrade

        upgrade(url)
        return meta
    if meta is not None:
        # Ours but incomplete or other parameters: rebuilding it is the only safe move.
        args.reset = True
    print(
        f"generating bench data in {redacted(url)} "
        f"({args.executions:,} executions, {args.vendors} vendors, {args.ramps} ramps)"
    )
    timer = Timer()
    with timer.step("create/migrate database"):
        prepare_database(url, args.reset)
    anchor = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with common.connect(url) as conn:
        with conn.cursor() as cur:
            ensure_empty(cur)
            cur.execute(f"CREATE TABLE IF NOT EXISTS {common.META_TABLE} (key text PRIMARY KEY, value jsonb)")
            cur.execute(
                f"INSERT INTO {common.META_TABLE} VALUES ('generation', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (json.dumps({"status": "incomplete", "params": params}),),
            )
        conn.commit()
        record = fill(conn, args, anchor, timer)
        conn.commit()
    with timer.step("VACUUM ANALYZE"), common.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    with timer.step("bench API key"):
        create_bench_api_key(url)
    fill_seconds = timer.total
    with common.connect(url) as conn:
        expected = {name: expected_reasons(conn, w["since"], w["until"]) for name, w in record["windows"].items()}
        with conn.cursor() as cur:
            cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
            size = cur.fetchone()[0]
        meta = {
            "status": "complete",
            "data_version": common.DATA_VERSION,
            "params": params,
            "generated_at": datetime.now(UTC).isoformat(),
            "duration_s": fill_seconds,
            "steps_s": timer.steps,
            "database_size": size,
            "api_key_created": True,
            "expected_reasons": expected,
            **record,
        }
        with conn.cursor() as cur:
            cur.execute(f"UPDATE {common.META_TABLE} SET value = %s WHERE key = 'generation'", (json.dumps(meta),))
        conn.commit()
    print(f"generated in {fill_seconds:.1f}s (database size {size})")
    for name, w in record["windows"].items():
        total = sum(expected[name].values())
        eligible = expected[name].get("eligible", 0)
        print(
            f"  {name} window [{w['since']}, {w['until']}): {total:,} ERROR rows in scope, "
            f"{eligible:,} expected eligible"
        )
        print("    " + ", ".join(f"{k}={v}" for k, v in expected[name].items()))
    return meta


def main(argv=None) -> int:
    args = parse_args(argv)
    url = common.resolve_database_url(args.database_url)
    meta = generate(url, args)
    if args.json:
        print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
