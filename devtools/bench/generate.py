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

Every row is made by INSERT ... SELECT over generate_series; random() is seeded, so two runs with
the same parameters make the same data (up to uuids and the time anchor).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from psycopg2 import sql

RUNTIME_REGRESSION = "cannot access local variable 'new_task' where it is not associated with a value"

# (error_type, category, step, message). The first column of each mix is the upper bound of the
# bucket on a uniform draw, so each mix reads as cumulative shares.
BACKGROUND_ERRORS = [
    (0.09, "MissingTriggerField", "config", "find_or_create_account", "trigger payload has no 'company.id'"),
    (
        0.11,
        "MissingRelatedAccount",
        "config",
        "create_project",
        "create_project needs an account: run find_or_create_account first",
    ),
    (0.12, "InvalidConfigurationError", "config", None, "unknown step type 'create_task'"),
    (0.27, "IntegrationConnectionError", "integration", "notify", "cannot reach CRM: ConnectionError"),
    (0.35, "RateLimitError", "integration", "notify", "CRM rate limit hit (429)"),
    (0.40, "InvalidAccessTokenError", "integration", "notify", "CRM refused our token (401)"),
    (0.47, "ModuleTimeoutError", "integration", "notify", "CRM did not answer within 5s"),
    (0.72, "UnboundLocalError", "runtime", "create_project", RUNTIME_REGRESSION),
    (0.82, "KeyError", "runtime", "notify", "'owner'"),
    (0.92, "TypeError", "runtime", "create_project", "'NoneType' object is not subscriptable"),
    (1.00, "AttributeError", "runtime", "find_or_create_account", "'NoneType' object has no attribute 'get'"),
]
INCIDENT_ERRORS = [
    (0.02, "MissingTriggerField", "config", "find_or_create_account", "trigger payload has no 'company.id'"),
    (0.04, "RateLimitError", "integration", "notify", "CRM rate limit hit (429)"),
    (0.05, "IntegrationConnectionError", "integration", "notify", "cannot reach CRM: ConnectionError"),
    (1.00, "UnboundLocalError", "runtime", "create_project", RUNTIME_REGRESSION),
]
# Extra skip reasons, as cumulative shares of a second uniform draw:
# (linked project, later SUCCESS duplicate, earlier replay attempt).
BACKGROUND_EXTRAS = (0.03, 0.07, 0.12)
INCIDENT_EXTRAS = (0.01, 0.02, 0.03)
# Ramps by id % 100, vendors' integrations by id % 50 (the two never pick the same vendor).
RAMP_STATUS_BY_MOD100 = {3: "archived", 13: "deleted", 23: "draft"}
INTEGRATION_BY_MOD50 = {5: "not_configured", 15: "revoked", 25: "expired", 35: "missing"}
# Companies per vendor named in payloads; the first ACCOUNTS_PER_VENDOR already have an account
# (so replays both reuse and create accounts).
COMPANIES_PER_VENDOR = 800
ACCOUNTS_PER_VENDOR = 400
# Share of SUCCESS rows that keep their INFO log lines.
SUCCESS_LOG_SHARE = 0.10
SEED = 0.4242


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
    name = common.database_name(url)
    with common.connect(url, autocommit=True, dbname="postgres") as conn, conn.cursor() as cur:
        if reset:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    from app.migrate import upgrade

    upgrade(url)


def ensure_empty(cur) -> None:
    cur.execute("SELECT EXISTS (SELECT 1 FROM or_ramp_executions) OR EXISTS (SELECT 1 FROM or_vendors)")
    if cur.fetchone()[0]:
        raise SystemExit(
            "error: the database already holds data but no complete bench generation record; "
            "rerun with --reset to drop and recreate it"
        )


# --------------------------------------------------------------------------- the fill


class Timer:
    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self._start = time.perf_counter()

    def step(self, name: str):
        timer = self

        class _Step:
            def __enter__(self_inner):
                self_inner.t0 = time.perf_counter()
                print(f"  {name} ...", end="", flush=True)

            def __exit__(self_inner, *exc):
                elapsed = time.perf_counter() - self_inner.t0
                timer.steps[name] = round(elapsed, 2)
                if exc[0] is None:
                    print(f" {elapsed:.1f}s", flush=True)

        return _Step()

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self._start, 2)


def _error_catalog_values(mix, scope: str) -> list[tuple]:
    return [
        (scope, bucket, etype, category, step, message)
        for bucket, (_share, etype, category, step, message) in enumerate(mix, start=1)
    ]


def _thresholds(mix) -> list[float]:
    # width_bucket(x, array[t1..tn]) returns 0 below t1, i for t_i <= x < t_{i+1}: the bucket
    # ids must start at 1 for x in [0, t1), so the array starts at 0 and drops the final 1.0.
    return [0.0] + [hi for hi, *_ in mix[:-1]]


def fill(conn, args: argparse.Namespace, anchor: datetime, timer: Timer) -> dict:
    n_total = args.executions
    n_err_total = round(n_total * args.error_rate)
    n_inc = args.incident
    n_bg_err = n_err_total - n_inc
    n_bg = n_total - n_inc  # background rows are g in 1..n_bg; ERROR ones are g <= n_bg_err
    span = timedelta(days=args.days)
    window = timedelta(hours=args.incident_hours)
    b0 = anchor - span
    inc0 = anchor - timedelta(days=1) - window
    inc1 = inc0 + window
    version_switch = anchor - timedelta(days=10)
    p = dict(
        n_bg=n_bg,
        n_bg_err=n_bg_err,
        n_inc=n_inc,
        n_vendors=args.vendors,
        n_ramps=args.ramps,
        b0=b0,
        span=span,
        inc0=inc0,
        window=window,
        anchor=anchor,
        version_switch=version_switch,
        companies=COMPANIES_PER_VENDOR,
        accounts=ACCOUNTS_PER_VENDOR,
        seed=SEED,
        bg_thresholds=_thresholds(BACKGROUND_ERRORS),
        inc_thresholds=_thresholds(INCIDENT_ERRORS),
        bg_x1=BACKGROUND_EXTRAS[0],
        bg_x2=BACKGROUND_EXTRAS[1],
        bg_x3=BACKGROUND_EXTRAS[2],
        inc_x1=INCIDENT_EXTRAS[0],
        inc_x2=INCIDENT_EXTRAS[1],
        inc_x3=INCIDENT_EXTRAS[2],
        success_log_share=SUCCESS_LOG_SHARE,
        success_projects=args.success_projects,
    )
    cur = conn.cursor()
    # Generation only: the data is rebuilt from scratch if the server dies mid-way.
    cur.execute("SET synchronous_commit = off")
    cur.execute("SET work_mem = '256MB'")
    cur.execute("SET maintenance_work_mem = '512MB'")
    cur.execute("SET temp_buffers = '512MB'")
    # One process evaluates random() in a fixed order: seeded runs make the same data.
    cur.execute("SET max_parallel_workers_per_gather = 0")

    with timer.step("vendors, integrations, ramps, versions"):
        cur.execute(
            """
            INSERT INTO or_vendors (id, name, created_at)
            SELECT v, 'Vendor ' || v, %(b0)s - interval '400 days' FROM generate_series(1, %(n_vendors)s) v
            """,
            p,
        )
        cur.execute(
            """
            INSERT INTO or_crm_integrations (vendor_id, provider, user_configured, token_revoked,
                token_expires_at, api_base_url, webhook_url, signing_secret, created_at, updated_at)
            SELECT v, CASE WHEN v %% 3 = 0 THEN 'salesforce' ELSE 'hubspot' END,
                   v %% 50 <> 5, v %% 50 = 15,
                   CASE WHEN v %% 50 = 25 THEN %(anchor)s - interval '2 days'
                        WHEN v %% 2 = 0 THEN %(anchor)s + interval '365 days' END,
                   'http://127.0.0.1:9/crm/' || v, 'http://127.0.0.1:9/webhooks/' || v,
                   md5('bench-signing-' || v), %(b0)s - interval '300 days', %(b0)s - interval '300 days'
            FROM generate_series(1, %(n_vendors)s) v
            WHERE v %% 50 <> 35
            """,
            p,
        )
        cur.execute(
            """
            INSERT INTO or_ramps (id, uuid, vendor_id, name, status, current_version, created_at, updated_at)
            SELECT r, gen_random_uuid(), 1 + (r - 1) %% %(n_vendors)s, 'Project Create ' || r,
                   CASE r %% 100 WHEN 3 THEN 'archived' WHEN 13 THEN 'deleted' WHEN 23 THEN 'draft'
                        ELSE 'active' END,
                   CASE WHEN r %% 100 = 23 THEN 1 ELSE 2 END,
                   %(b0)s - interval '200 days', %(version_switch)s
            FROM generate_series(1, %(n_ramps)s) r
            """,
            p,
        )
        steps = json.dumps(
            {"steps": [{"type": "find_or_create_account"}, {"type": "create_project"}, {"type": "notify"}]}
        )
        cur.execute(
            """
            INSERT INTO or_ramp_versions (ramp_id, version, draft, definition, created_at)
            SELECT r.id, v, r.status = 'draft', %(steps)s::jsonb,
                   CASE v WHEN 1 THEN r.created_at ELSE %(version_switch)s END
            FROM or_ramps r CROSS JOIN generate_series(1, 2) v
            WHERE v <= r.current_version
            ORDER BY r.id, v
            """,
            dict(p, steps=steps),
        )

    with timer.step("accounts and entity links"):
        cur.execute(
            """
            INSERT INTO or_accounts (id, uuid, vendor_id, name, created_at)
            SELECT (v - 1) * %(accounts)s + k + 1, gen_random_uuid(), v, 'Company ' || v || '-' || k,
                   %(b0)s - interval '60 days'
            FROM generate_series(1, %(n_vendors)s) v CROSS JOIN generate_series(0, %(accounts)s - 1) k
            ORDER BY 1
            """,
            p,
        )
        cur.execute(
            """
            INSERT INTO or_object_entity_ids (id, vendor_id, account_id, object_type, external_id, created_at)
            SELECT id, vendor_id, id, 'company',
                   'c-' || vendor_id || '-' || ((id - 1) %% %(accounts)s), created_at
            FROM or_accounts ORDER BY id
            """,
            p,
        )

    with timer.step("plan the executions (temp tables)"):
        cur.execute("SELECT setseed(%(seed)s)", p)
        cur.execute(
            """
            CREATE TEMP TABLE bench_draw ON COMMIT DROP AS
            SELECT g, g > %(n_bg)s AS incident, (g <= %(n_bg_err)s OR g > %(n_bg)s) AS is_error,
                   random() AS r_time, random() AS r_ramp, random() AS r_kind,
                   random() AS r_company, random() AS r_extra
            FROM generate_series(1, %(n_bg)s + %(n_inc)s) g
            """,
            p,
        )
        cur.execute(
            """
            CREATE TEMP TABLE bench_error_kind (
                scope text, bucket int, error_type text, category text, step text, message text
            ) ON COMMIT DROP
            """
        )
        cur.executemany(
            "INSERT INTO bench_error_kind VALUES (%s, %s, %s, %s, %s, %s)",
            _error_catalog_values(BACKGROUND_ERRORS, "bg") + _error_catalog_values(INCIDENT_ERRORS, "inc"),
        )
        cur.execute(
            """
            CREATE TEMP TABLE bench_plan ON COMMIT DROP AS
            SELECT d.g, d.incident, d.is_error, d.r_extra,
                   1 + floor(d.r_ramp * %(n_ramps)s)::int AS ramp_id,
                   CASE
                     WHEN d.incident THEN %(inc0)s + d.r_time * %(window)s
                     WHEN d.is_error THEN
                       %(b0)s + d.r_time * (%(span)s - %(window)s)
                       + CASE WHEN %(b0)s + d.r_time * (%(span)s - %(window)s) >= %(inc0)s
                              THEN %(window)s ELSE interval '0' END
                     ELSE %(b0)s + d.r_time * %(span)s
                   END AS created_at,
                   floor(d.r_company * %(companies)s)::int AS company,
                   CASE WHEN d.is_error THEN
                     CASE WHEN d.incident THEN width_bucket(d.r_kind, %(inc_thresholds)s::float8[])
                          ELSE width_bucket(d.r_kind, %(bg_thresholds)s::float8[]) END
                   END AS bucket,
                   d.is_error AND d.r_extra < CASE WHEN d.incident THEN %(inc_x1)s ELSE %(bg_x1)s END
                       AS has_project,
                   d.is_error AND d.r_extra >= CASE WHEN d.incident THEN %(inc_x1)s ELSE %(bg_x1)s END
                       AND d.r_extra < CASE WHEN d.incident THEN %(inc_x2)s ELSE %(bg_x2)s END
                       AS has_duplicate,
                   CASE WHEN d.is_error
                         AND d.r_extra >= CASE WHEN d.incident THEN %(inc_x2)s ELSE %(bg_x2)s END
                         AND d.r_extra < CASE WHEN d.incident THEN %(inc_x3)s ELSE %(bg_x3)s END
                        THEN 1 + (d.g %% 2) ELSE 0 END AS replay_attempts,
                   'deal-' || d.g AS trigger_key
            FROM bench_draw d
            """,
            p,
        )
        cur.execute("ALTER TABLE bench_plan ADD PRIMARY KEY (g)")
        # Later SUCCESS duplicates: the i-th ERROR row flagged has_duplicate takes over the i-th
        # background SUCCESS row's identity (same ramp and trigger key, a few minutes later).
        cur.execute(
            """
            WITH src AS (
                SELECT row_number() OVER (ORDER BY g) AS i, ramp_id, trigger_key, company, created_at
                FROM bench_plan WHERE has_duplicate
            )
            UPDATE bench_plan t
               SET ramp_id = src.ramp_id, trigger_key = src.trigger_key, company = src.company,
                   created_at = src.created_at + interval '7 minutes', r_extra = 1.0
              FROM src
             WHERE t.g = %(n_bg_err)s + src.i
            """,
            p,
        )
        cur.execute(
            """
            CREATE TEMP TABLE bench_rows ON COMMIT DROP AS
            SELECT row_number() OVER (ORDER BY p.created_at, p.g) AS id, p.*,
                   1 + (p.ramp_id - 1) %% %(n_vendors)s AS vendor_id,
                   k.error_type, k.category, k.step, k.message
            FROM bench_plan p
            LEFT JOIN bench_error_kind k
                   ON k.scope = CASE WHEN p.incident THEN 'inc' ELSE 'bg' END AND k.bucket = p.bucket
            """,
            p,
        )
        cur.execute("ANALYZE bench_rows")

    with timer.step(f"insert {n_total:,} executions"):
        cur.execute(
            """
            INSERT INTO or_ramp_executions (id, uuid, vendor_id, ramp_id, ramp_version, status_code,
                trigger_key, trigger_payload, replay_attempts, last_error_type, last_error_category,
                last_error_message, created_at, updated_at, finished_at)
            SELECT b.id, gen_random_uuid(), b.vendor_id, b.ramp_id,
                   CASE WHEN b.ramp_id %% 100 = 23 OR b.created_at < %(version_switch)s THEN 1 ELSE 2 END,
                   CASE WHEN b.is_error THEN 'ERROR' ELSE 'SUCCESS' END,
                   b.trigger_key,
                   jsonb_build_object(
                       'company',
                       CASE WHEN b.error_type = 'MissingTriggerField'
                            THEN jsonb_build_object('name', 'Company ' || b.vendor_id || '-' || b.company)
                            ELSE jsonb_build_object('id', 'c-' || b.vendor_id || '-' || b.company,
                                                    'name', 'Company ' || b.vendor_id || '-' || b.company)
                       END,
                       'owner', jsonb_build_object('email', 'owner' || b.company || '@vendor' || b.vendor_id
                                                            || '.example')),
                   b.replay_attempts, b.error_type, b.category, b.message,
                   b.created_at,
                   b.created_at + CASE WHEN b.replay_attempts > 0 THEN interval '1 hour'
                                       ELSE interval '2 seconds' END,
                   b.created_at + CASE WHEN b.replay_attempts > 0 THEN interval '1 hour'
                                       ELSE interval '2 seconds' END
            FROM bench_rows b
            ORDER BY b.id
            """,
            p,
        )

    with timer.step("execution logs, projects, history"):
        # One ERROR entry per ERROR execution (its last attempt); two INFO lines for a share of
        # the SUCCESS rows.
        cur.execute(
            """
            INSERT INTO or_execution_logs (execution_id, attempt, step, level, message, error_type,
                                           error_category, created_at)
            SELECT id, attempt, step, level, message, error_type, error_category, created_at
            FROM (
                SELECT b.id, b.replay_attempts AS attempt, b.step, 'ERROR' AS level, b.message,
                       b.error_type, b.category AS error_category, b.created_at + interval '2 seconds'
                       AS created_at, 1 AS n
                FROM bench_rows b WHERE b.is_error
                UNION ALL
                SELECT b.id, 0, l.step, 'INFO', l.message, NULL, NULL,
                       b.created_at + l.n * interval '1 second', l.n
                FROM bench_rows b
                CROSS JOIN (VALUES (0, NULL::text, 'run started: version 2, attempt 0'),
                                   (1, 'create_project', 'created project')) AS l(n, step, message)
                WHERE NOT b.is_error AND b.r_extra < %(success_log_share)s
            ) x
            ORDER BY id, n
            """,
            p,
        )
        cur.execute(
            """
            INSERT INTO or_projects (uuid, vendor_id, account_id, execution_id, name, created_at)
            SELECT gen_random_uuid(), b.vendor_id,
                   CASE WHEN b.company < %(accounts)s THEN (b.vendor_id - 1) * %(accounts)s + b.company + 1 END,
                   b.id, 'Company ' || b.vendor_id || '-' || b.company, b.created_at + interval '1 second'
            FROM bench_rows b
            WHERE b.has_project OR (NOT b.is_error AND (b.g::bigint * 7919) %% 10000 < %(success_projects)s * 10000)
            ORDER BY b.id
            """,
            p,
        )
        cur.execute(
            """
            INSERT INTO or_workflow_history (execution_id, action, actor, batch_id, details, created_at)
            SELECT b.id, 'WORKFLOW_HISTORY_ACTION_REPLAYED', 'bench-seed@example.com', NULL,
                   jsonb_build_object('outcome', 'error', 'attempt', a, 'suppress_notifications', false),
                   b.created_at + a * interval '30 minutes'
            FROM bench_rows b CROSS JOIN LATERAL generate_series(1, b.replay_attempts) a
            WHERE b.replay_attempts > 0 ORDER BY b.id, a
            """
        )

    with timer.step("sequences, snapshot, metadata"):
        for table in (
            "or_vendors",
            "or_crm_integrations",
            "or_ramps",
            "or_ramp_versions",
            "or_accounts",
            "or_object_entity_ids",
            "or_ramp_executions",
            "or_execution_logs",
            "or_projects",
            "or_workflow_history",
        ):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)"
            )
        cur.execute(f"DROP TABLE IF EXISTS {common.SNAPSHOT_TABLE}")
        cur.execute(
            f"CREATE TABLE {common.SNAPSHOT_TABLE} AS SELECT id, {', '.join(common.SNAPSHOT_COLUMNS)} "
            f"FROM or_ramp_executions WHERE status_code = 'ERROR'"
        )
        cur.execute(f"ALTER TABLE {common.SNAPSHOT_TABLE} ADD PRIMARY KEY (id)")
        baseline = {}
        for table in common.GROWN_TABLES:
            cur.execute(f"SELECT COALESCE(max(id), 0) FROM {table}")
            baseline[table] = cur.fetchone()[0]
    cur.close()
    return {
        "anchor": anchor.isoformat(),
        "windows": {
            "incident": {"since": inc0.isoformat(), "until": inc1.isoformat()},
            "month": {"since": b0.isoformat(), "until": anchor.isoformat()},
        },
        "counts": {"executions": n_total, "error": n_err_total, "incident_error": n_inc},
        "baseline_max_ids": baseline,
    }


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
                   AND s.trigger_key = e.trigger_key AND s.created_at > e.created_at)
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


# --------------------------------------------------------------------------- API key


def create_bench_api_key(url: str, name: str = "bench-runner") -> tuple[str, str] | None:
    """A fresh ONRAMP_ADMIN API key (key, secret) for the bench run, replacing an older one of the
    same name; None while app.auth.api_keys does not exist yet. The secret is never printed."""
    try:
        from app.auth import api_keys  # noqa: F401
    except ImportError:
        return None
    return _create_api_key_with(url, name)


def _create_api_key_with(url: str, name: str) -> tuple[str, str]:
    from sqlalchemy import delete

    from app.auth.api_keys import create_api_key
    from app.config import Config
    from app.db import make_engine, make_session_factory
    from app.models import ApiKey
    from app.models.identity import ROLE_ADMIN

    engine = make_engine(url, Config(database_url=url), pool_size=1, max_overflow=0)
    try:
        session = make_session_factory(engine)()
        with session.begin():
            session.execute(delete(ApiKey).where(ApiKey.name == name))
        with session.begin():
            created = create_api_key(session, name=name, role=ROLE_ADMIN)
        session.close()
    finally:
        engine.dispose()
    return _key_and_secret(created)


def _key_and_secret(created) -> tuple[str, str]:
    """Accept the shapes a create function commonly returns: (key, secret), a tuple whose first
    element is the row, an object or dict with `key`/`secret` attributes."""
    if isinstance(created, tuple):
        strings = [part for part in created if isinstance(part, str)]
        if len(strings) >= 2:
            return strings[-2], strings[-1]
    for attr_key, attr_secret in (("key", "secret"), ("api_key", "api_secret"), ("key", "plain_secret")):
        if isinstance(created, dict) and attr_key in created and attr_secret in created:
            return created[attr_key], created[attr_secret]
        if hasattr(created, attr_key) and hasattr(created, attr_secret):
            return getattr(created, attr_key), getattr(created, attr_secret)
    raise RuntimeError(f"cannot read key and secret from create_api_key's result ({type(created).__name__})")


# --------------------------------------------------------------------------- entry points


def generate(url: str, args: argparse.Namespace) -> dict:
    """Create, migrate and fill the database unless it already holds this generation."""
    params = params_of(args)
    meta = None if args.reset else common.read_meta(url)
    if common.is_generated(meta, params):
        print(
            f"bench database {common.redacted(url)} already generated "
            f"({meta['generated_at']}, {meta['duration_s']}s); use --reset to rebuild"
        )
        return meta
    if meta is not None:
        # Ours but incomplete or other parameters: rebuilding it is the only safe move.
        args.reset = True
    print(
        f"generating bench data in {common.redacted(url)} "
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
        has_key = create_bench_api_key(url) is not None
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
            "api_key_created": has_key,
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
