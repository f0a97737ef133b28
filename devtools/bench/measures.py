"""The HTTP measures of the benchmark, against a running service: dry-run latency, executing
throughput at several concurrency levels, the cost of one API-key check, and the service's peak
memory while they run."""

from __future__ import annotations

import threading
import time

import common
import psutil
import requests

ENDPOINT = "/api/ramps/executions/retry-batch"


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


class RssSampler:
    """Peak resident memory of a gunicorn master and its workers (psutil), sampled every 50 ms
    from a thread while a measure runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_worker_rss = 0
        self.peak_master_rss = 0
        self.peak_total_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> dict:
        """Stop sampling; the peaks in MB."""
        self._stop.set()
        self._thread.join(5)
        return {
            "worker": round(self.peak_worker_rss / 2**20, 1),
            "master": round(self.peak_master_rss / 2**20, 1),
            "total": round(self.peak_total_rss / 2**20, 1),
        }

    def _sample(self) -> None:
        master = psutil.Process(self.pid)
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


def measure_dry_runs(caller: Caller, meta: dict, runs: int, windows: dict | None = None) -> dict:
    """Dry runs over each window (default: the generator's incident and month windows), checked
    against the generator's expected counts where it has them."""
    out = {}
    windows = windows or {name: meta["windows"][name] for name in ("incident", "month")}
    for name, window in windows.items():
        body = {"since": window["since"], "until": window["until"], "dry_run": True}
        caller.call(body)  # warm-up: connection pool, plan cache, buffers
        latencies, summary = [], None
        for _ in range(runs):
            ms, payload = caller.call(body)
            latencies.append(ms)
            summary = payload["summary"]
        expected = meta["expected_reasons"].get(name)
        if expected is None:
            expected = dict(summary["skipped_by_reason"], eligible=summary["eligible"])
        got = dict(summary["skipped_by_reason"], eligible=summary["eligible"])
        mismatches = {
            k: {"expected": expected.get(k, 0), "endpoint": got.get(k, 0)}
            for k in set(expected) | set(got)
            if expected.get(k, 0) != got.get(k, 0)
        }
        out[name] = {
            "latency_ms": common.rounded(common.summarize(latencies)),
            "matched": summary["matched"],
            # Rows in scope, as the table labels them: eligible plus every skipped one.
            "in_scope": summary["eligible"] + summary["skipped"],
            "eligible": summary["eligible"],
            "skipped_by_reason": summary["skipped_by_reason"],
            "mismatch_with_generator": mismatches,
        }
        print(
            f"  dry run {name}: {out[name]['in_scope']:,} in scope, p50 {out[name]['latency_ms']['median']} ms, "
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
        "call_latency_ms": common.rounded(common.summarize(latencies)),
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
