"""The bench's verdict: each measure against its target, as table rows (printed, and kept in the
JSON result)."""

from __future__ import annotations

TARGETS = {
    "dry_run_incident_p50_ms": 100,
    "dry_run_month_p50_ms": 400,
    "replays_per_s_1_caller": 100,
    "replays_per_s_4_callers": 250,
    "ceiling_share_min": 0.30,
    "peak_rss_mb": 200,
}


def verdict(ok: bool | None) -> str:
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
                    verdict(v < TARGETS[target_key]),
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
                verdict(rate >= target) if target else "-",
            )
        )
        if c in ceiling_by and ceiling_by[c]:
            share = rate / ceiling_by[c]
            rows.append(
                (
                    f"  share of raw-SQL ceiling ({ceiling_by[c]:.0f} tx/s) at {c}",
                    f"{share:.0%}",
                    f">= {TARGETS['ceiling_share_min']:.0%}",
                    verdict(share >= TARGETS["ceiling_share_min"]),
                )
            )
    for lvl in result.get("ceiling", []):
        if not any(e["callers"] == lvl["clients"] for e in result.get("execute", [])):
            rows.append((f"raw-SQL ceiling at {lvl['clients']} client(s)", f"{lvl['tps_median']:.0f} tx/s", "-", "-"))
    st = result.get("statements")
    if st:
        a, b = st["dry_run_incident"]["statements"], st["dry_run_month"]["statements"]
        rows.append(("statements per dry run (5,000 / 50,000 in scope)", f"{a} / {b}", "constant", verdict(a == b)))
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
                verdict(rss["worker"] < TARGETS["peak_rss_mb"]),
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
                verdict(not bad and {"scope", "claim"} <= set(kinds)),
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
