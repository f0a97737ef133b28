"""Shared plumbing of the benchmark scripts: where the bench database lives, its metadata, the
reset that lets every measure drain the same rows, and the statistics every measure reports.

The scripts are run by path (`.venv/bin/python devtools/bench/run.py`), so importing this module
also puts the repository root on sys.path for `import app`.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import psycopg2  # noqa: E402

from app.config import normalize_database_url  # noqa: E402
from devtools.dbtools import database_url, libpq_url, redacted, server_url  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DB_NAME = "onramp_bench"
# Bumped whenever the generator's data shape changes, so run.py regenerates a stale database.
DATA_VERSION = 2


def resolve_database_url(explicit: str | None, db_name: str = DEFAULT_DB_NAME) -> str:
    """SQLAlchemy URL (psycopg2 driver) of the bench database: `explicit`, else `db_name` on
    DATABASE_URL's server or the embedded one (the tests' rule without their own variable)."""
    if explicit:
        return normalize_database_url(explicit)
    return database_url(server_url(("DATABASE_URL",)), db_name)


@contextmanager
def connect(url: str, *, autocommit: bool = False, dbname: str | None = None) -> Iterator:
    dsn = libpq_url(database_url(url, dbname) if dbname else url)
    conn = psycopg2.connect(dsn, application_name="onramp-bench", options="-c timezone=UTC -c statement_timeout=0")
    conn.autocommit = autocommit
    try:
        yield conn
    finally:
        conn.close()


# --------------------------------------------------------------------------- metadata

META_TABLE = "bench_meta"


def read_meta(url: str) -> dict | None:
    """The generator's record ({"status": "complete", ...}) or None if there is no bench data."""
    try:
        with connect(url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (META_TABLE,))
            if cur.fetchone()[0] is None:
                return None
            cur.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'generation'")
            row = cur.fetchone()
            return row[0] if row else None
    except psycopg2.OperationalError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def is_generated(meta: dict | None, params: dict | None = None) -> bool:
    if not meta or meta.get("status") != "complete" or meta.get("data_version") != DATA_VERSION:
        return False
    return params is None or meta.get("params") == params


def generated_meta(url: str) -> dict | None:
    """The generation record of a complete bench database; None (after saying why on stderr)
    when there is none, for the scripts that measure an existing database."""
    meta = read_meta(url)
    if is_generated(meta):
        return meta
    print(f"error: {redacted(url)} holds no complete bench data; run generate.py first", file=sys.stderr)
    return None


# --------------------------------------------------------------------------- reset

# Tables whose rows a replay (ours or the ceiling's) adds; the generator records each one's max id.
GROWN_TABLES = (
    "or_notification_outbox",
    "or_workflow_history",
    "or_execution_logs",
    "or_projects",
    "or_object_entity_ids",
    "or_accounts",
    "or_retry_batches",
    "or_ramp_executions",
)
# Emptied by every reset (the generator writes none of them); jobs reference their plans.
PLAN_TABLES = ("or_retry_job_events", "or_retry_jobs", "or_retry_plan_rows", "or_retry_plans")
SNAPSHOT_TABLE = "bench_execution_snapshot"
SNAPSHOT_COLUMNS = (
    "status_code",
    "replay_attempts",
    "last_error_type",
    "last_error_category",
    "last_error_message",
    "updated_at",
    "finished_at",
)


def reset(url: str, meta: dict, *, vacuum: bool = True) -> dict:
    """Put the database back to its generated state: drop every row added since generation and
    restore the ERROR rows' replay columns from the snapshot. Returns counts of what it undid."""
    baseline = meta["baseline_max_ids"]
    undone: dict[str, int] = {}
    with connect(url) as conn, conn.cursor() as cur:
        # Children before parents (projects reference accounts and executions).
        for table in GROWN_TABLES:
            cur.execute(f"DELETE FROM {table} WHERE id > %s", (baseline[table],))
            undone[table] = cur.rowcount
        assigns = ", ".join(f"{c} = s.{c}" for c in SNAPSHOT_COLUMNS)
        cur.execute(
            f"UPDATE or_ramp_executions e SET {assigns} FROM {SNAPSHOT_TABLE} s "
            f"WHERE e.id = s.id AND ({', '.join('e.' + c for c in SNAPSHOT_COLUMNS)}) "
            f"IS DISTINCT FROM ({', '.join('s.' + c for c in SNAPSHOT_COLUMNS)})"
        )
        undone["restored_executions"] = cur.rowcount
        # Plans and retry jobs of earlier measures and runs: the service deletes plans after 24
        # hours, but here every dry run of every run added its rows (4 million after a few runs),
        # and the plan write of the next dry run slowed down as that table grew.
        cur.execute(f"TRUNCATE {', '.join(PLAN_TABLES)}")
        conn.commit()
    if vacuum:
        # Dead tuples left by the previous measure would slow the next one's scans and claims.
        with connect(url, autocommit=True) as conn, conn.cursor() as cur:
            for table in GROWN_TABLES:
                cur.execute(f"VACUUM ANALYZE {table}")
            # Write the reset's dirty pages out now, so that a checkpoint does not compete with
            # the measure that follows (on a slow disk it cost the first dry runs ~2x).
            try:
                cur.execute("CHECKPOINT")
            except psycopg2.Error:
                pass  # needs superuser or pg_checkpoint; the measure is then just noisier
    return undone


# --------------------------------------------------------------------------- stats


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (pct in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def summarize(values: list[float]) -> dict:
    return {
        "n": len(values),
        "median": statistics.median(values) if values else None,
        "p95": percentile(values, 95),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


def rounded(summary: dict) -> dict:
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in summary.items()}


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
