"""The retry endpoint's benchmark: one command, `make bench`.

    .venv/bin/python devtools/bench/run.py [--database-url URL] [--quick]

1. generates the bench database if it is not already generated (generate.py);
2. starts gunicorn on a free 127.0.0.1 port against it, with a fresh ONRAMP_ADMIN API key;
3. measures, resetting the data before every executing measure so each drains the same rows:
   - dry runs over the incident window (5,000 in scope) and the 30-day window (50,000);
   - executing calls (25 replays, suppressed) by 1, 2, 4, 8 concurrent callers draining the
     incident window: replays/s and per-call latency;
   - the raw-SQL ceiling (ceiling.py) at the same concurrency, and our share of it;
   - SQL statements per call (in-process call, counted by a SQLAlchemy event) and the peak RSS of
     the gunicorn processes (psutil);
   - EXPLAIN (ANALYZE, BUFFERS) of the scope and claim statements the endpoint really ran;
4. prints a table with the targets and writes JSON to devtools/bench/results/.

Not part of the test suite: it takes a few minutes and needs the whole machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ceiling
import common
import generate
import psutil
import requests

from devtools.health import wait_healthy

ENDPOINT = "/api/ramps/executions/retry-batch"
# dry: measure 1; execute: 2; ceiling: 3; statements: 4 (counts) and 5 (EXPLAIN). RSS comes with
# dry and execute (the server runs only for those).
MEASURES = ("dry", "execute", "ceiling", "statements")
TARGETS = {
    "dry_run_incident_p50_ms": 100,
    "dry_run_month_p50_ms": 400,
    "replays_per_s_1_caller": 100,
    "replays_per_s_4_callers": 250,
    "ceiling_share_min": 0.30,
    "peak_rss_mb": 200,
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark of POST /api/ramps/executions/retry-batch.")
    p.add_argument("--database-url", help="bench database (default: onramp_bench, see generate.py)")
    p.add_argument("--dry-runs", type=int, default=20, help="dry runs per window (median/p95 over them)")
    p.add_argument("--callers", default="1,2,4,8", help="concurrency levels of the executing measure")
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
    p.add_argument("--quick", action="store_true", help="5 dry runs, callers 1 and 4: a smoke run")
    p.add_argument("--regenerate", action="store_true", help="drop and regenerate the database first")
    p.add_argument(
        "--measures", default=",".join(MEASURES), help=f"comma-separated subset of {','.join(MEASURES)} (default: all)"
    )
    # Passed to the generator when the database has to be made (see generate.py --help).
    p.add_argument("--executions", type=int, default=1_000_000)
    args = p.parse_args(argv)
    if args.quick:
        args.dry_runs, args.callers = 5, "1,4"
    args.levels = [int(c) for c in args.callers.split(",") if c.strip()]
    args.measures = {m.strip() for m in args.measures.split(",") if m.strip()}
    if not args.measures <= set(MEASURES):
        p.error(f"--measures: unknown {sorted(args.measures - set(MEASURES))}")
    return args


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn serving wsgi:app against the bench database, plus an RSS sampler."""

    def __init__(self, url: str, workers: int, threads: int, log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            DATABASE_URL=url,
            SECRET_KEY=secrets.token_hex(32),
            ONRAMP_ENV="bench",
            SESSION_COOKIE_SECURE="false",
        )
        env.pop("SENTRY_DSN", None)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [
                str(common.REPO_ROOT / ".venv" / "bin" / "gunicorn"),
                "-w",
                str(workers),
                "--threads",
                str(threads),
                "-b",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "120",
                "wsgi:app",
            ],
            cwd=common.REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.peak_worker_rss = 0
        self.peak_master_rss = 0
        self.peak_total_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        state = wait_healthy(self.base, self.proc, timeout)
        if state == "exited":
            raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self._log.name}")
        if state == "ready":
            self._sampler.start()
            return
        raise RuntimeError(f"gunicorn did not answer /healthz within {timeout}s; see {self._log.name}")

    def _sample(self) -> None:
        master = psutil.Process(self.proc.pid)
        while not self._stop.is_set():
            try:
                master_rss = master.memory_info().rss
                workers = [c.memory_info().rss for c in master.children(recursive=True)]
            except psutil.Error:
                break
            self.peak_master_rss = max(self.peak_master_rss, master_rss)
            self.peak_worker_rss = max([self.peak_worker_rss, *workers])
            self.peak_total_rss = max(self.peak_total_rss, master_rss + sum(workers))
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Caller:
    def __init__(self, base: str, key: str, secret: str) -> None:
        self.url = base + ENDPOINT
        self.http = requests.Session()
        self.http.headers.update({"Authorization": key, "or-internal-api-auth-secret": secret})

    def call(self, body: dict) -> tuple[float, dict]:
        t0 = time.perf_counter()
        response = self.http.post(self.url, json=body, timeout=120)
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{ENDPOINT} answered {response.status_code}: {response.text[:500]}")
        return elapsed, response.json()


# --------------------------------------------------------------------------- measures


def measure_dry_runs(caller: Caller, meta: dict, runs: int) -> dict:
    out = {}
    for name in ("incident", "month"):
        window = meta["windows"][name]
        body = {"since": window["since"], "until": window["until"], "dry_run": True}
        caller.call(body)  # warm-up: connection pool, plan cache, buffers
        latencies, summary = [], None
        for _ in range(runs):
            ms, payload = caller.call(body)
            latencies.append(ms)
            summary = payload["summary"]
        expected = meta["expected_reasons"][name]
        got = dict(summary["skipped_by_reason"], eligible=summary["eligible"])
        mismatches = {
            k: {"expected": expected.get(k, 0), "endpoint": got.get(k, 0)}
            for k in set(expected) | set(got)
            if expected.get(k, 0) != got.get(k, 0)
        }
        out[name] = {
            "latency_ms": _rounded(common.summarize(latencies)),
            "matched": summary["matched"],
            "eligible": summary["eligible"],
            "skipped_by_reason": summary["skipped_by_reason"],
            "mismatch_with_generator": mismatches,
        }
        print(
            f"  dry run {name}: matched {summary['matched']:,}, p50 {out[name]['latency_ms']['median']} ms, "
            f"p95 {out[name]['latency_ms']['p95']} ms"
            + (f"  (counts differ from the generator's: {mismatches})" if mismatches else ""),
            flush=True,
        )
    return out


def drain(base: str, key: str, secret: str, window: dict, callers: int, timeout: float) -> dict:
    """`callers` threads call the executing endpoint until it has nothing left to replay."""
    body = {"since": window["since"], "until": window["until"], "dry_run": False, "suppress_notifications": True}
    results: list[dict] = [dict(latencies=[], success=0, error=0, calls=0, failure=None) for _ in range(callers)]
    start = threading.Barrier(callers + 1)
    ends: list[float] = [0.0] * callers

    def work(i: int) -> None:
        caller, mine = Caller(base, key, secret), results[i]
        start.wait()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ms, payload = caller.call(body)
                s = payload["summary"]
                mine["calls"] += 1
                if s["selected"] == 0:
                    break
                mine["latencies"].append(ms)
                mine["success"] += s["success"]
                mine["error"] += s["error"]
        except Exception as exc:  # reported in the result, the other callers go on
            mine["failure"] = f"{type(exc).__name__}: {exc}"
        ends[i] = time.monotonic()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    wall = max(ends) - t0
    latencies = [ms for r in results for ms in r["latencies"]]
    replays = sum(r["success"] + r["error"] for r in results)
    return {
        "callers": callers,
        "replays": replays,
        "success": sum(r["success"] for r in results),
        "error": sum(r["error"] for r in results),
        "calls": sum(r["calls"] for r in results),
        "wall_s": round(wall, 3),
        "replays_per_s": round(replays / wall, 1) if wall > 0 else None,
        "call_latency_ms": _rounded(common.summarize(latencies)),
        "failures": [r["failure"] for r in results if r["failure"]],
    }


def measure_executes(
    url: str, meta: dict, base: str, key: str, secret: str, levels: list[int], repeat: int, timeout: float
) -> list[dict]:
    window = meta["windows"]["incident"]
    out = []
    for callers in levels:
        runs = []
        for _ in range(repeat):
            common.reset(url, meta)
            runs.append(drain(base, key, secret, window, callers, timeout))
        rates = [r["replays_per_s"] for r in runs if r["replays_per_s"]]
        last = runs[-1]
        out.append(
            {
                "callers": callers,
                "replays_per_s_median": common.summarize(rates)["median"],
                "replays_per_s_p95": common.summarize(rates)["p95"],
                "runs": runs,
            }
        )
        print(
            f"  execute callers={callers}: {out[-1]['replays_per_s_median']} replays/s "
            f"({last['replays']} replays in {last['calls']} calls, {last['wall_s']}s; call p50 "
            f"{last['call_latency_ms']['median']} ms, p95 {last['call_latency_ms']['p95']} ms)"
            + (f"  FAILURES: {last['failures']}" if last["failures"] else ""),
            flush=True,
        )
    common.reset(url, meta)
    return out


class StatementRecorder:
    """Counts (and keeps the rendered text of) every statement an engine sends."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.engine = engine
        self.statements: list[tuple[str, str]] = []
        self.active = False
        event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany):
        if not self.active:
            return
        try:
            rendered = cursor.mogrify(statement, parameters).decode() if not executemany else statement
        except Exception:
            rendered = statement
        self.statements.append((statement, rendered))

    def record(self, fn):
        self.statements, self.active = [], True
        try:
            result = fn()
        finally:
            self.active = False
        return result, list(self.statements)


def measure_statements(url: str, meta: dict, key: str, secret: str) -> tuple[dict, list]:
    """Statements per call, counted in-process (the same app code as the server, one process)."""
    from app import create_app
    from app.config import Config

    config = Config(
        database_url=url,
        secret_key=secrets.token_hex(32),
        environment="bench",
        instance_dir=common.RESULTS_DIR / "instance",
    )
    app = create_app(config)
    logging.getLogger("app").setLevel(logging.WARNING)  # keep request log lines out of the report
    recorder = StatementRecorder(app.extensions["onramp_db"].engine)
    client = app.test_client()
    headers = {"Authorization": key, "or-internal-api-auth-secret": secret}

    def call(body):
        response = client.post(ENDPOINT, json=body, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        return response.get_json()["summary"]

    counts, captured = {}, []
    common.reset(url, meta)
    for name in ("incident", "month"):
        w = meta["windows"][name]
        summary, statements = recorder.record(lambda w=w: call({"since": w["since"], "until": w["until"]}))
        counts[f"dry_run_{name}"] = {"statements": len(statements), "matched": summary["matched"]}
        captured += [(f"dry_run_{name}", s) for s in statements]
    w = meta["windows"]["incident"]
    summary, statements = recorder.record(
        lambda: call({"since": w["since"], "until": w["until"], "dry_run": False, "suppress_notifications": True})
    )
    counts["execute_incident"] = {
        "statements": len(statements),
        "replays": summary["selected"],
        "statements_per_replay": round(len(statements) / summary["selected"], 1) if summary["selected"] else None,
    }
    captured += [("execute_incident", s) for s in statements]
    app.extensions["onramp_db"].dispose()
    common.reset(url, meta)
    return counts, captured


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def explain_statements(url: str, captured: list) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) each distinct SELECT on or_ramp_executions the endpoint ran, in a
    rolled-back transaction (a claim's FOR UPDATE locks nothing for long).

    The claim and re-check run as prepared statements (app/prepared.py): those are explained as
    `EXPLAIN EXECUTE`, after the captured PREPARE, with the plan cache mode the endpoint set, so
    the plan shown is the one the endpoint really ran."""
    prepares = {}
    for _phase, (template, rendered) in captured:
        if template.lstrip().upper().startswith("PREPARE "):
            prepares[template.split()[1]] = rendered
    seen, plans = set(), []
    for phase, (template, rendered) in captured:
        setup: list[str] = []
        statement = rendered
        head = template.lstrip().upper()
        if head.startswith("PREPARE"):
            continue
        # Statements may carry `SET LOCAL ...;` settings in the same round trip: keep them.
        settings = []
        shape = template
        if head.startswith("SET "):
            *settings, statement = [part.strip() for part in rendered.split(";") if part.strip()]
            shape = template.split(";")[-1].strip()
        if statement.upper().startswith("EXECUTE "):
            name = statement.split()[1]
            if name not in prepares:
                continue
            body = prepares[name].split(" AS ", 1)[1]
            setup = [prepares[name], *settings]
            shape = name
        else:
            body = statement
            setup = settings
        if not body.lstrip().upper().startswith(("SELECT", "WITH", "(")) or "or_ramp_executions" not in body:
            continue
        key = (phase, shape)
        if key in seen:
            continue
        seen.add(key)
        kind = "claim" if "SKIP LOCKED" in body.upper() else "scope"
        with common.connect(url) as conn, conn.cursor() as cur:
            for command in setup:
                cur.execute(command)
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement)
            plan = cur.fetchone()[0][0]
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement)
            text_plan = "\n".join(r[0] for r in cur.fetchall())
            conn.rollback()
        seq_scans = sorted({n.get("Relation Name") for n in _plan_nodes(plan["Plan"]) if n["Node Type"] == "Seq Scan"})
        plans.append(
            {
                "phase": phase,
                "kind": kind,
                "statement": re.sub(r"\s+", " ", body.strip())[:160],
                "execution_ms": plan.get("Execution Time"),
                "seq_scans": seq_scans,
                "seq_scan_of_executions": "or_ramp_executions" in seq_scans,
                "plan": text_plan,
            }
        )
    return plans


def auth_cost_ms() -> float | None:
    """What one API-key check costs (scrypt), part of every call's latency."""
    try:
        from app.auth.api_keys import hash_secret, verify_secret
    except ImportError:
        return None
    stored = hash_secret("bench-probe")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        verify_secret("bench-probe", stored)
        times.append((time.perf_counter() - t0) * 1000)
    return round(common.summarize(times)["median"], 1)


# --------------------------------------------------------------------------- report


def _rounded(summary: dict) -> dict:
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in summary.items()}


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def evaluate(result: dict) -> list[tuple[str, str, str, str]]:
    """(measure, value, target, verdict) rows."""
    rows = []
    dry = result.get("dry_runs", {})
    for name, target_key, label in (
        ("incident", "dry_run_incident_p50_ms", "dry run 5,000 in scope p50"),
        ("month", "dry_run_month_p50_ms", "dry run 50,000 in scope p50"),
    ):
        if name in dry:
            v = dry[name]["latency_ms"]["median"]
            rows.append(
                (
                    f"{label} (p95 {dry[name]['latency_ms']['p95']:.0f} ms)",
                    f"{v:.0f} ms",
                    f"< {TARGETS[target_key]} ms",
                    _verdict(v < TARGETS[target_key]),
                )
            )
    ceiling_by = {lvl["clients"]: lvl["tps_median"] for lvl in result.get("ceiling", [])}
    for lvl in result.get("execute", []):
        c, rate = lvl["callers"], lvl["replays_per_s_median"]
        lat = lvl["runs"][-1]["call_latency_ms"]
        target = {1: TARGETS["replays_per_s_1_caller"], 4: TARGETS["replays_per_s_4_callers"]}.get(c)
        rows.append(
            (
                f"execute {c} caller(s), call p50/p95 {lat['median']:.0f}/{lat['p95']:.0f} ms",
                f"{rate:.0f} replays/s",
                f">= {target}/s" if target else "-",
                _verdict(rate >= target) if target else "-",
            )
        )
        if c in ceiling_by and ceiling_by[c]:
            share = rate / ceiling_by[c]
            rows.append(
                (
                    f"  share of raw-SQL ceiling ({ceiling_by[c]:.0f} tx/s) at {c}",
                    f"{share:.0%}",
                    f">= {TARGETS['ceiling_share_min']:.0%}",
                    _verdict(share >= TARGETS["ceiling_share_min"]),
                )
            )
    for lvl in result.get("ceiling", []):
        if not any(e["callers"] == lvl["clients"] for e in result.get("execute", [])):
            rows.append((f"raw-SQL ceiling at {lvl['clients']} client(s)", f"{lvl['tps_median']:.0f} tx/s", "-", "-"))
    st = result.get("statements")
    if st:
        a, b = st["dry_run_incident"]["statements"], st["dry_run_month"]["statements"]
        rows.append(("statements per dry run (5,000 / 50,000 in scope)", f"{a} / {b}", "constant", _verdict(a == b)))
        ex = st["execute_incident"]
        rows.append(
            (
                f"statements per executing call ({ex['replays']} replays)",
                f"{ex['statements']} ({ex['statements_per_replay']}/replay)",
                "-",
                "-",
            )
        )
    rss = result.get("rss_mb")
    if rss:
        rows.append(
            (
                f"peak RSS of a serving worker (master {rss['master']}, all {rss['total']} MB)",
                f"{rss['worker']} MB",
                f"< {TARGETS['peak_rss_mb']} MB",
                _verdict(rss["worker"] < TARGETS["peak_rss_mb"]),
            )
        )
    plans = result.get("explain")
    if plans is not None:
        bad = [p for p in plans if p["seq_scan_of_executions"]]
        kinds = sorted({p["kind"] for p in plans})
        rows.append(
            (
                f"EXPLAIN of {len(plans)} statements ({', '.join(kinds)}): seq scan of executions",
                f"{len(bad)}",
                "0",
                _verdict(not bad and {"scope", "claim"} <= set(kinds)),
            )
        )
    return rows


def print_table(rows) -> None:
    widths = [max(len(r[i]) for r in rows + [("measure", "value", "target", "verdict")]) for i in range(4)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format("measure", "value", "target", "verdict"))
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r))


# --------------------------------------------------------------------------- main


def endpoint_available() -> str | None:
    """None when the retry endpoint can be benchmarked, else why not."""
    try:
        from app.retries.batch import retry_batch  # noqa: F401
    except ImportError as exc:
        return f"app.retries is not importable ({exc})"
    try:
        from app.auth.api_keys import create_api_key  # noqa: F401
    except ImportError as exc:
        return f"app.auth.api_keys is not importable ({exc})"
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    url = common.resolve_database_url(args.database_url)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    gen_args = generate.parse_args(["--executions", str(args.executions)] + (["--reset"] if args.regenerate else []))
    meta = generate.generate(url, gen_args)

    result: dict = {
        "started_at": started.isoformat(),
        "database": common.redacted(url),
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "generation": {
            k: meta[k]
            for k in ("generated_at", "duration_s", "steps_s", "database_size", "counts", "windows", "expected_reasons")
        },
        "settings": {
            "dry_runs": args.dry_runs,
            "levels": args.levels,
            "drain_repeat": args.drain_repeat,
            "ceiling_repeat": args.ceiling_repeat,
            "gunicorn": {"workers": args.workers, "threads": args.threads},
        },
        "targets": TARGETS,
    }
    missing = endpoint_available()
    wanted = args.measures
    if missing:
        print(f"endpoint measures skipped: {missing}")
        result["endpoint_skipped"] = missing
    elif wanted & {"dry", "execute", "statements"}:
        common.reset(url, meta)
        key, secret = generate.create_bench_api_key(url)
        result["auth_check_ms"] = auth_cost_ms()
        if wanted & {"dry", "execute"}:
            server = Server(url, args.workers, args.threads, common.RESULTS_DIR / f"gunicorn-{stamp}.log")
            try:
                server.wait_ready()
                print(f"gunicorn on {server.base} ({args.workers} workers x {args.threads} threads)")
                if "dry" in wanted:
                    result["dry_runs"] = measure_dry_runs(Caller(server.base, key, secret), meta, args.dry_runs)
                if "execute" in wanted:
                    result["execute"] = measure_executes(
                        url, meta, server.base, key, secret, args.levels, args.drain_repeat, args.drain_timeout
                    )
            finally:
                server.stop()
            result["rss_mb"] = {
                "worker": round(server.peak_worker_rss / 2**20, 1),
                "master": round(server.peak_master_rss / 2**20, 1),
                "total": round(server.peak_total_rss / 2**20, 1),
            }
        if "statements" in wanted:
            result["statements"], captured = measure_statements(url, meta, key, secret)
            result["explain"] = explain_statements(url, captured)
            common.reset(url, meta)
    if "ceiling" in wanted:
        print("raw-SQL ceiling:")
        result["ceiling"] = ceiling.measure(url, meta, args.levels, args.ceiling_repeat)
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
