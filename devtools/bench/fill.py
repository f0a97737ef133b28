"""The bench data itself: one set-based fill of a migrated, empty database (the shape is
shape.py's, the command generate.py).

Every row is made by INSERT ... SELECT over generate_series; random() is seeded, so two fills with
the same parameters make the same data (up to uuids and the time anchor). The fill runs in the
caller's transaction; each step is timed.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime

import common
import shape


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


def fill(conn, args: argparse.Namespace, anchor: datetime, timer: Timer) -> dict:
    """Fill the database in `conn`'s transaction; returns the windows, counts and baseline ids."""
    p = shape.parameters(args, anchor)
    with conn.cursor() as cur:
        # Generation only: the data is rebuilt from scratch if the server dies mid-way.
        cur.execute("SET synchronous_commit = off")
        cur.execute("SET work_mem = '256MB'")
        cur.execute("SET maintenance_work_mem = '512MB'")
        cur.execute("SET temp_buffers = '512MB'")
        # One process evaluates random() in a fixed order: seeded runs make the same data.
        cur.execute("SET max_parallel_workers_per_gather = 0")
        with timer.step("vendors, integrations, ramps, versions"):
            _tenants(cur, p)
        with timer.step("accounts and entity links"):
            _accounts(cur, p)
        with timer.step("plan the executions (temp tables)"):
            _plan(cur, p)
        with timer.step(f"insert {args.executions:,} executions"):
            # The superseded-marker trigger would recompute a trigger key's markers per inserted
            # row; the rebuild after the bulk insert makes the same markers in one pass.
            cur.execute("ALTER TABLE or_ramp_executions DISABLE TRIGGER or_superseded_on_insert")
            _executions(cur, p)
            cur.execute("ALTER TABLE or_ramp_executions ENABLE TRIGGER or_superseded_on_insert")
        with timer.step("superseded markers"):
            cur.execute("SELECT or_rebuild_superseded()")
        with timer.step("execution logs, projects, history"):
            _logs_projects_history(cur, p)
        with timer.step("sequences, snapshot, metadata"):
            baseline = _sequences_and_snapshot(cur, p)
    anchor, inc0, b0 = p["anchor"], p["inc0"], p["b0"]
    return {
        "anchor": anchor.isoformat(),
        "windows": {
            "incident": {"since": inc0.isoformat(), "until": (inc0 + p["window"]).isoformat()},
            "month": {"since": b0.isoformat(), "until": anchor.isoformat()},
        },
        "counts": {"executions": args.executions, "error": p["n_err_total"], "incident_error": p["n_inc"]},
        "baseline_max_ids": baseline,
    }


def _tenants(cur, p: dict) -> None:
    """Vendors, their CRM integrations (some broken on purpose), ramps and their versions."""
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
    steps = json.dumps({"steps": [{"type": "find_or_create_account"}, {"type": "create_project"}, {"type": "notify"}]})
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


def _accounts(cur, p: dict) -> None:
    """The accounts and live entity links replays find (the first shape.ACCOUNTS_PER_VENDOR companies)."""
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


def _plan(cur, p: dict) -> None:
    """Temp tables: one seeded draw per execution, its plan (time, ramp, company, error kind,
    extras), then bench_rows with ids in created_at order."""
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
        shape.error_catalog(),
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


def _executions(cur, p: dict) -> None:
    """Every execution, from bench_rows."""
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


def _logs_projects_history(cur, p: dict) -> None:
    """The ERROR log entry of each ERROR execution, INFO lines for a share of the SUCCESS
    rows, projects (every SUCCESS and the linked-project extras) and earlier replay attempts."""
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


def _sequences_and_snapshot(cur, p: dict) -> dict[str, int]:
    """Sequences past the inserted ids, the snapshot common.reset restores, and the
    baseline max id of every table a replay grows."""
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
    return baseline
