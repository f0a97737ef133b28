"""Where an executing call's time goes: in-process calls on the bench database, per statement.

    .venv/bin/python devtools/bench/profile_calls.py [--database-url URL] [--calls 8] [--cprofile]

Resets the bench data, makes one warm-up call and then `--calls` executing calls (25 replays each,
suppressed) through the app's test client, and prints replays per second, CPU per replay of this
Python process and of the PostgreSQL backends serving the bench database (psutil), and the wall
time per call of each distinct statement. `--cprofile` adds the top functions by cumulative time.
Resets the data again at the end. Not a benchmark (no HTTP, one caller): a tool to see what a
change to the replay path did; `run.py` gives the figures.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import logging
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import psutil
from api_key import create_bench_api_key
from sqlalchemy import event

from devtools.dbtools import database_name

ENDPOINT = "/api/ramps/executions/retry-batch"


def backend_cpu_seconds(database: str) -> float:
    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if (proc.info["name"] or "").startswith("postgres") and database in " ".join(proc.info["cmdline"] or []):
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url")
    p.add_argument("--calls", type=int, default=8)
    p.add_argument("--cprofile", action="store_true")
    args = p.parse_args(argv)
    url = common.resolve_database_url(args.database_url)
    meta = common.generated_meta(url)
    if meta is None:
        return 2
    common.reset(url, meta)
    key, secret = create_bench_api_key(url)

    from app import create_app
    from app.config import Config

    app = create_app(
        Config(
            database_url=url,
            secret_key=secrets.token_hex(32),
            environment="bench",
            instance_dir=common.RESULTS_DIR / "instance",
        )
    )
    logging.getLogger("app").setLevel(logging.WARNING)
    engine = app.extensions["onramp_db"].engine
    per_statement: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["profile_t0"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        entry = per_statement[" ".join(statement.split())[:70]]
        entry[0] += 1
        entry[1] += time.perf_counter() - conn.info.pop("profile_t0")

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    client = app.test_client()
    headers = {"Authorization": key, "or-internal-api-auth-secret": secret}
    window = meta["windows"]["incident"]
    body = {"since": window["since"], "until": window["until"], "dry_run": False, "suppress_notifications": True}
    client.post(ENDPOINT, json=body, headers=headers)  # warm-up: pool, prepared statements, API-key cache
    per_statement.clear()

    database = database_name(url)
    me = psutil.Process()
    cpu0, pg0, t0 = sum(me.cpu_times()[:2]), backend_cpu_seconds(database), time.perf_counter()
    profiler = cProfile.Profile() if args.cprofile else None
    if profiler:
        profiler.enable()
    replays = 0
    for _ in range(args.calls):
        response = client.post(ENDPOINT, json=body, headers=headers)
        replays += response.get_json()["summary"]["selected"]
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - t0
    py_ms = (sum(me.cpu_times()[:2]) - cpu0) * 1000
    pg_ms = (backend_cpu_seconds(database) - pg0) * 1000
    app.extensions["onramp_db"].dispose()
    common.reset(url, meta)

    if not replays:
        print("nothing was replayed", file=sys.stderr)
        return 1
    sql = sum(t for _, t in per_statement.values())
    print(
        f"{args.calls} calls, {replays} replays in {wall:.2f}s = {replays / wall:.0f} replays/s, "
        f"{wall / args.calls * 1000:.0f} ms per call; statements' wall time {sql / wall:.0%}"
    )
    print(f"CPU per replay: Python {py_ms / replays:.2f} ms, PostgreSQL {pg_ms / replays:.2f} ms")
    for text, (n, t) in sorted(per_statement.items(), key=lambda kv: -kv[1][1])[:25]:
        print(f"{t * 1000 / args.calls:8.1f} ms/call {n / args.calls:6.1f}/call  {text}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(40)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
