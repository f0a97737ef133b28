"""The cost-growth measure (`--measures growth`): the same endpoint on a database five times the
bench's size, to see whether its cost follows the rows in scope and not the table.

A second bench database (`onramp_bench_5m` on the bench database's server, `--growth-executions`
rows, default 5,000,000; generated once by generate.py and kept) gets:

- dry runs over windows holding about 5,000 / 50,000 / 200,000 ERROR rows in scope, each ending
  where the incident window starts (so only background rows, one error mix); the window's start
  is the created_at of the N-th ERROR row before that point, the real count is the dry run's;
- the fixed incident (5,000 ERROR rows, as in the 1M database): dry-run p50 and executing
  replays/s at 1 and 4 callers, next to the same figures of the 1M database (this run's, else the
  newest result file holding them).
"""

from __future__ import annotations

import json
import os
import secrets

import common
import generate
from api_key import create_bench_api_key
from measures import Caller, measure_dry_runs, measure_executes

from devtools.dbtools import database_name, database_url, redacted
from devtools.service import ServiceProcess

DEFAULT_EXECUTIONS = 5_000_000
DEFAULT_DB_NAME = "onramp_bench_5m"
SCOPE_SIZES = (5_000, 50_000, 200_000)
EXECUTE_LEVELS = (1, 4)


def add_arguments(p) -> None:
    p.add_argument(
        "--growth-executions",
        type=int,
        default=DEFAULT_EXECUTIONS,
        help="executions in the growth database (a smaller one to try the measure out)",
    )
    p.add_argument(
        "--growth-database-url",
        help=f"growth database (default: {DEFAULT_DB_NAME} on the bench database's server)",
    )


def growth_url(url: str, args) -> str:
    if args.growth_database_url:
        return common.resolve_database_url(args.growth_database_url)
    return database_url(url, DEFAULT_DB_NAME)


_NTH_ERROR_SQL = """
SELECT created_at FROM or_ramp_executions
WHERE status_code = 'ERROR' AND created_at < %s
ORDER BY created_at DESC
OFFSET %s LIMIT 1
"""


def scope_windows(url: str, meta: dict) -> dict:
    """Windows ending at the incident's start holding about SCOPE_SIZES ERROR rows; a size the
    database cannot hold starts at the first ERROR row (the real count says so)."""
    until = meta["windows"]["incident"]["since"]
    out = {}
    with common.connect(url) as conn, conn.cursor() as cur:
        for size in SCOPE_SIZES:
            cur.execute(_NTH_ERROR_SQL, (until, size - 1))
            row = cur.fetchone()
            if row is None:
                cur.execute("SELECT min(created_at) FROM or_ramp_executions WHERE status_code = 'ERROR'")
                row = cur.fetchone()
            out[f"scope_{size // 1000}k"] = {"since": row[0].isoformat(), "until": until}
    return out


def reference_figures(url: str, result: dict) -> tuple[dict, dict]:
    """The bench database's incident figures (`dry_runs`, `execute`, `generation`): each from this
    run if it measured it, else from the newest result file (latest.json first) of a run on the
    same database holding it; and where each came from."""
    reference: dict = {}
    sources: dict = {}
    paths = [common.RESULTS_DIR / "latest.json"] + sorted(common.RESULTS_DIR.glob("bench-*.json"), reverse=True)
    candidates = [("this run", result)]
    for path in paths:
        try:
            candidates.append((path.name, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    for source, old in candidates:
        if old.get("database") != redacted(url):
            continue
        for part, present in (
            ("dry_runs", "incident" in old.get("dry_runs", {})),
            ("execute", bool(old.get("execute"))),
        ):
            if present and part not in reference:
                reference[part], sources[part] = old[part], source
                reference.setdefault("generation", old.get("generation", {}))
    return reference, sources


def _comparisons(measured: dict, reference: dict) -> list[dict]:
    out = []
    ref_dry = reference.get("dry_runs", {}).get("incident")
    value = measured["dry_runs"]["incident"]["latency_ms"]["median"]
    ref = ref_dry["latency_ms"]["median"] if ref_dry else None
    out.append(
        {
            "label": "incident dry run p50",
            "value": value,
            "text": f"{value:.0f} ms",
            "reference": ref,
            "reference_text": f"{ref:.0f} ms" if ref is not None else None,
            "lower_is_better": True,
        }
    )
    ref_exec = {lvl["callers"]: lvl["replays_per_s_median"] for lvl in reference.get("execute", [])}
    for lvl in measured["execute"]:
        c, value = lvl["callers"], lvl["replays_per_s_median"]
        ref = ref_exec.get(c)
        out.append(
            {
                "label": f"incident execute at {c} caller(s)",
                "value": value,
                "text": f"{value:.0f} replays/s",
                "reference": ref,
                "reference_text": f"{ref:.0f} replays/s" if ref is not None else None,
                "lower_is_better": False,
            }
        )
    return out


def _drop_dry_run_plans(url: str, after_id: int) -> None:
    # Every dry run stores its eligible rows as a plan; the kept database should not pile them up.
    with common.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM or_retry_plans p WHERE p.id > %s "
            "AND NOT EXISTS (SELECT 1 FROM or_retry_jobs j WHERE j.plan_id = p.id)",
            (after_id,),
        )
        conn.commit()


def _max_plan_id(url: str) -> int:
    with common.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM or_retry_plans")
        return cur.fetchone()[0]


def measure(url: str, args, result: dict, stamp: str) -> dict:
    big = growth_url(url, args)
    if database_name(big) == database_name(url):
        raise SystemExit("error: the growth database must not be the bench database")
    print(f"cost growth on {redacted(big)} ({args.growth_executions:,} executions):")
    meta = generate.generate(big, generate.parse_args(["--executions", str(args.growth_executions)]))
    windows = {"incident": meta["windows"]["incident"], **scope_windows(big, meta)}
    common.reset(big, meta)
    key, secret = create_bench_api_key(big)
    first_plan = _max_plan_id(big)
    env = {**os.environ, "ONRAMP_ENV": "bench", "SESSION_COOKIE_SECURE": "false", "SECRET_KEY": secrets.token_hex(32)}
    log_path = common.RESULTS_DIR / f"gunicorn-growth-{stamp}.log"
    service = ServiceProcess(big, log_path, env=env, workers=args.workers, threads=args.threads)
    with service.start(timeout=60):
        dry = measure_dry_runs(Caller(service.url, key, secret), meta, args.dry_runs, windows)
        _drop_dry_run_plans(big, first_plan)
        executes = measure_executes(
            big, meta, service.url, key, secret, list(EXECUTE_LEVELS), args.drain_repeat, args.drain_timeout
        )
    _drop_dry_run_plans(big, first_plan)

    scopes = []
    for name in windows:
        if name == "incident":
            continue
        n, p50 = dry[name]["in_scope"], dry[name]["latency_ms"]["median"]
        scopes.append({"name": name, **windows[name], "in_scope": n, "p50_ms": p50, "ms_per_1000": p50 / n * 1000})
    scopes.sort(key=lambda w: w["in_scope"])
    out = {
        "database": redacted(big),
        "executions": meta["counts"]["executions"],
        "generation": {k: meta[k] for k in ("generated_at", "duration_s", "database_size", "windows")},
        "windows": scopes,
        "dry_runs": dry,
        "execute": executes,
    }
    if len(scopes) >= 2 and scopes[-1]["in_scope"] > scopes[-2]["in_scope"]:
        # The largest two windows: at 5,000 rows the fixed cost of a call (auth, plan, response)
        # weighs most, so the marginal cost per row shows between the large ones.
        out["rise_from"], out["rise_to"] = scopes[-2]["in_scope"], scopes[-1]["in_scope"]
        out["per_row_rise"] = scopes[-1]["ms_per_1000"] / scopes[-2]["ms_per_1000"] - 1
    reference, sources = reference_figures(url, result)
    out["reference_source"] = sources
    out["reference_executions"] = reference.get("generation", {}).get("counts", {}).get("executions")
    out["incident"] = _comparisons(out, reference)
    return out
