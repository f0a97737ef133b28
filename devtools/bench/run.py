"""The retry endpoint's benchmark: one command, `make bench`.

    .venv/bin/python devtools/bench/run.py [--database-url URL] [--quick]

1. generates the bench database if it is not already generated (generate.py);
2. starts gunicorn on a free 127.0.0.1 port against it (devtools/service.py: gunicorn.conf.py with
   this run's --workers and --threads), with a fresh ONRAMP_ADMIN API key;
3. measures, resetting the data before every executing measure so each drains the same rows:
   - dry runs over the incident window (5,000 in scope) and the 30-day window (50,000);
   - executing calls (25 replays, suppressed) by 1, 2, 4, 8 concurrent callers draining the
     incident window: replays/s and per-call latency;
   - the raw-SQL ceiling (ceiling.py) at the same concurrency, and our share of it;
   - SQL statements per call (in-process call, counted by a SQLAlchemy event) and the peak RSS of
     the gunicorn processes (psutil);
   - EXPLAIN (ANALYZE, BUFFERS) of the scope and claim statements the endpoint really ran;
   - one retry job on the incident window drained by 1, 2, 4, 8 worker processes (jobs_measure.py),
     and the statements per replay of a job lane (in-process);
   - with `--measures growth` only: the cost growth on a 5M-row database (growth.py);
4. prints a table with the targets and writes JSON to devtools/bench/results/.

Not part of the test suite: it takes a few minutes and needs the whole machine.

The parts: the data (generate.py: database and record; shape.py: what the rows look like; fill.py:
the SQL that makes them), the measures (measures.py over HTTP, statements.py in-process,
ceiling.py in raw SQL, jobs_measure.py on worker processes, growth.py on a second database), the verdict (report.py) and common.py (database, reset, statistics).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ceiling
import common
import generate
import growth
import psutil
from api_key import create_bench_api_key
from jobs_measure import lanes_for, measure_job_statements, measure_jobs
from measures import Caller, RssSampler, auth_cost_ms, measure_dry_runs, measure_executes
from report import TARGETS, evaluate, print_table
from statements import explain_statements, measure_statements

from devtools.dbtools import redacted
from devtools.service import ServiceProcess

# dry: measure 1; execute: 2; ceiling: 3; statements: 4 (counts) and 5 (EXPLAIN); jobs: 6; growth:
# 7. RSS comes with dry, execute and jobs (the server runs only for those). growth is opt-in: it
# needs a second, 5M-row database.
MEASURES = ("dry", "execute", "jobs", "ceiling", "statements")
OPT_IN = ("growth",)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark of POST /api/ramps/executions/retry-batch.")
    p.add_argument("--database-url", help="bench database (default: onramp_bench, see generate.py)")
    p.add_argument("--dry-runs", type=int, default=20, help="dry runs per window (median/p95 over them)")
    p.add_argument("--callers", default="1,2,4,8", help="concurrency levels of the executing measure")
    p.add_argument("--job-workers", help="worker processes of the job measure (default: --callers)")
    p.add_argument("--job-timeout", type=float, default=600.0, help="seconds before a job's drain gives up")
    p.add_argument(
        "--drain-repeat",
        type=int,
        default=1,
        help="drains per concurrency level, for the endpoint and the ceiling (median)",
    )
    p.add_argument(
        "--ceiling-repeat",
        type=int,
        default=3,
        help="drains per level for the raw-SQL ceiling (median; it is quick and noisy)",
    )
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    p.add_argument("--drain-timeout", type=float, default=300.0, help="seconds before a drain gives up")
    p.add_argument("--quick", action="store_true", help="5 dry runs, callers and job workers 1 and 4: a smoke run")
    p.add_argument("--regenerate", action="store_true", help="drop and regenerate the database first")
    p.add_argument(
        "--measures",
        default=",".join(MEASURES),
        help=f"comma-separated subset of {','.join(MEASURES + OPT_IN)} (default: all but {','.join(OPT_IN)})",
    )
    # Passed to the generator when the database has to be made (see generate.py --help).
    p.add_argument("--executions", type=int, default=1_000_000)
    growth.add_arguments(p)
    args = p.parse_args(argv)
    if args.quick:
        args.dry_runs, args.callers = 5, "1,4"
    args.levels = [int(c) for c in args.callers.split(",") if c.strip()]
    args.job_levels = [int(c) for c in (args.job_workers or args.callers).split(",") if c.strip()]
    args.measures = {m.strip() for m in args.measures.split(",") if m.strip()}
    if not args.measures <= set(MEASURES + OPT_IN):
        p.error(f"--measures: unknown {sorted(args.measures - set(MEASURES + OPT_IN))}")
    return args


def service_env(args) -> dict:
    """The server's and the job workers' environment: one SECRET_KEY, and enough lanes per job
    for the largest number of workers."""
    return {
        **os.environ,
        "ONRAMP_ENV": "bench",
        "SESSION_COOKIE_SECURE": "false",
        "SECRET_KEY": secrets.token_hex(32),
        "RETRY_JOB_LANES": str(lanes_for(args.job_levels)),
    }


def measure_over_http(url: str, meta: dict, args, key: str, secret: str, log_path: Path) -> dict:
    """Dry runs, executing calls and jobs against gunicorn on the bench database, and its peak RSS."""
    env = service_env(args)
    out: dict = {}
    service = ServiceProcess(url, log_path, env=env, workers=args.workers, threads=args.threads)
    with service.start(timeout=60):
        rss = RssSampler(service.pid).start()
        try:
            print(f"gunicorn on {service.url} ({args.workers} workers x {args.threads} threads)")
            if "dry" in args.measures:
                out["dry_runs"] = measure_dry_runs(Caller(service.url, key, secret), meta, args.dry_runs)
            if "execute" in args.measures:
                out["execute"] = measure_executes(
                    url, meta, service.url, key, secret, args.levels, args.drain_repeat, args.drain_timeout
                )
            if "jobs" in args.measures:
                print(f"retry jobs ({lanes_for(args.job_levels)} lanes each):")
                headers = {"Authorization": key, "or-internal-api-auth-secret": secret}
                log_dir = log_path.with_name(log_path.stem.replace("gunicorn", "workers"))
                out["jobs"] = measure_jobs(
                    url, meta, service.url, headers, env, args.job_levels, args.job_timeout, log_dir
                )
        finally:
            out["rss_mb"] = rss.stop()
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    url = common.resolve_database_url(args.database_url)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    gen_args = generate.parse_args(["--executions", str(args.executions)] + (["--reset"] if args.regenerate else []))
    meta = generate.generate(url, gen_args)

    result: dict = {
        "started_at": started.isoformat(),
        "database": redacted(url),
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "generation": {
            k: meta[k]
            for k in ("generated_at", "duration_s", "steps_s", "database_size", "counts", "windows", "expected_reasons")
        },
        "settings": {
            "dry_runs": args.dry_runs,
            "levels": args.levels,
            "job_levels": args.job_levels,
            "drain_repeat": args.drain_repeat,
            "ceiling_repeat": args.ceiling_repeat,
            "gunicorn": {"workers": args.workers, "threads": args.threads},
        },
        "targets": TARGETS,
    }
    wanted = args.measures
    if wanted & {"dry", "execute", "jobs", "statements"}:
        common.reset(url, meta)
        key, secret = create_bench_api_key(url)
        result["auth_check_ms"] = auth_cost_ms()
        if wanted & {"dry", "execute", "jobs"}:
            result.update(measure_over_http(url, meta, args, key, secret, common.RESULTS_DIR / f"gunicorn-{stamp}.log"))
        if "jobs" in wanted:
            result["job_statements"] = measure_job_statements(url, meta, key, secret)
            print(f"  job path: {result['job_statements']}")
        if "statements" in wanted:
            result["statements"], captured = measure_statements(url, meta, key, secret)
            result["explain"] = explain_statements(url, captured)
            common.reset(url, meta)
    if "ceiling" in wanted:
        print("raw-SQL ceiling:")
        levels = sorted(set(args.levels) | (set(args.job_levels) if "jobs" in wanted else set()))
        result["ceiling"] = ceiling.measure(url, meta, levels, args.ceiling_repeat)
    if "growth" in wanted:
        result["growth"] = growth.measure(url, args, result, stamp)
    result["finished_at"] = datetime.now(UTC).isoformat()

    rows = evaluate(result)
    result["table"] = [dict(zip(("measure", "value", "target", "verdict"), r, strict=True)) for r in rows]
    print()
    print(
        f"generation: {meta['duration_s']}s for {meta['counts']['executions']:,} executions "
        f"({meta['database_size']})"
        + (f"; one API-key check costs {result['auth_check_ms']} ms (scrypt)" if result.get("auth_check_ms") else "")
    )
    print_table(rows)
    out = common.RESULTS_DIR / f"bench-{stamp}.json"
    common.write_json(out, result)
    common.write_json(common.RESULTS_DIR / "latest.json", result)
    print(f"\nresults: {out.relative_to(common.REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
