"""The bench's verdict: each measure against its target, as table rows (printed, and kept in the
JSON result). The targets are issue 15's (retry-batch) and issue 10's (retry jobs); absolute
replays/s are printed without a verdict, since they move with the machine."""

from __future__ import annotations

TARGETS = {
    "dry_run_incident_p50_ms": 60,
    "dry_run_month_p50_ms": 250,
    "execute_ceiling_share_min": 0.50,
    "statements_per_replay_max": 13.6,  # strictly below
    "job_paced_ceiling_share_min": 0.70,  # of min(ceiling, the job's pace)
    "peak_rss_mb": 200,
    "growth_per_row_rise_max": 0.20,  # ms per 1,000 rows in scope, second-largest to largest window
    "growth_incident_slowdown_max": 0.20,  # the 5M database's incident figures against the 1M ones
}


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def in_scope(dry: dict) -> int:
    """Rows in scope of a dry run: eligible plus skipped (older results lack `in_scope`)."""
    return dry.get("in_scope", dry["eligible"] + sum(dry["skipped_by_reason"].values()))


def dry_rows(result: dict) -> list[tuple]:
    rows = []
    dry = result.get("dry_runs", {})
    for name, target_key in (("incident", "dry_run_incident_p50_ms"), ("month", "dry_run_month_p50_ms")):
        if name in dry:
            lat = dry[name]["latency_ms"]
            rows.append(
                (
                    f"dry run {in_scope(dry[name]):,} in scope ({name}) p50 (p95 {lat['p95']:.0f} ms)",
                    f"{lat['median']:.0f} ms",
                    f"< {TARGETS[target_key]} ms",
                    verdict(lat["median"] < TARGETS[target_key]),
                )
            )
    return rows


def execute_rows(result: dict, ceiling_by: dict) -> list[tuple]:
    rows = []
    share_min = TARGETS["execute_ceiling_share_min"]
    for lvl in result.get("execute", []):
        c, rate = lvl["callers"], lvl["replays_per_s_median"]
        lat = lvl["runs"][-1]["call_latency_ms"]
        rows.append(
            (
                f"execute {c} caller(s), call p50/p95 {lat['median']:.0f}/{lat['p95']:.0f} ms",
                f"{rate:.0f} replays/s",
                "-",
                "-",
            )
        )
        if ceiling_by.get(c):
            share = rate / ceiling_by[c]
            rows.append(
                (
                    f"  share of raw-SQL ceiling ({ceiling_by[c]:.0f} tx/s) at {c}",
                    f"{share:.0%}",
                    f">= {share_min:.0%}",
                    verdict(share >= share_min),
                )
            )
    return rows


def job_rows(result: dict, ceiling_by: dict) -> list[tuple]:
    rows = []
    share_min = TARGETS["job_paced_ceiling_share_min"]
    for lvl in result.get("jobs", []):
        w, rate, p = lvl["workers"], lvl["replays_per_s"], lvl["progress"]
        counts = f"{p['success']}/{p['error']}/{p['skipped']}/{p['remaining']}"
        rows.append(
            (
                f"job, {w} worker(s): {lvl['state']}, success/error/skipped/left {counts} of {p['total']}",
                f"{rate:.0f} rows/s" if rate else "-",
                "-",
                "-" if lvl["state"] == "completed" else "FAIL",
            )
        )
        ceiling = ceiling_by.get(w)
        if ceiling and rate:
            paced = min(ceiling, lvl.get("pace", 200))
            rows.append((f"  share of raw-SQL ceiling ({ceiling:.0f} tx/s) at {w}", f"{rate / ceiling:.0%}", "-", "-"))
            rows.append(
                (
                    f"  share of min(ceiling, pace) ({paced:.0f}/s) at {w}",
                    f"{rate / paced:.0%}",
                    f">= {share_min:.0%}",
                    verdict(rate / paced >= share_min),
                )
            )
    return rows


def statement_rows(result: dict) -> list[tuple]:
    rows = []
    st = result.get("statements")
    if st:
        a, b = st["dry_run_incident"]["statements"], st["dry_run_month"]["statements"]
        rows.append(("statements per dry run (incident / month window)", f"{a} / {b}", "constant", verdict(a == b)))
        ex = st["execute_incident"]
        limit = TARGETS["statements_per_replay_max"]
        per = ex["statements"] / ex["replays"] if ex["replays"] else None
        rows.append(
            (
                f"statements per replay, executing call ({ex['statements']} for {ex['replays']} replays)",
                f"{per:.2f}" if per is not None else "-",
                f"< {limit}",
                verdict(per < limit if per is not None else None),
            )
        )
    js = result.get("job_statements")
    if js:
        per = js["statements_per_replay"]
        rows.append(
            (
                f"statements per replay, job lane ({js['statements']} for {js['replays']} replays)",
                f"{per}" if per is not None else "-",
                "-",
                "-",
            )
        )
    return rows


def growth_rows(growth: dict | None) -> list[tuple]:
    if not growth:
        return []
    rows = []
    for w in growth["windows"]:
        rows.append(
            (
                f"growth: dry run {w['in_scope']:,} in scope p50 ({w['ms_per_1000']:.2f} ms per 1,000)",
                f"{w['p50_ms']:.0f} ms",
                "-",
                "-",
            )
        )
    rise = growth.get("per_row_rise")
    if rise is not None:
        rows.append(
            (
                f"growth: ms per 1,000 rows, {growth['rise_from']:,} -> {growth['rise_to']:,} in scope",
                f"{rise:+.0%}",
                f"<= +{TARGETS['growth_per_row_rise_max']:.0%}",
                verdict(rise <= TARGETS["growth_per_row_rise_max"]),
            )
        )
    limit = TARGETS["growth_incident_slowdown_max"]
    for c in growth.get("incident", []):
        ref = c.get("reference")
        if ref is None:
            rows.append(
                (
                    f"growth: {c['label']} on {growth['executions']:,} rows (no 1M figure to compare)",
                    c["text"],
                    "-",
                    "n/a",
                )
            )
            continue
        ok = c["value"] <= ref * (1 + limit) if c["lower_is_better"] else c["value"] >= ref * (1 - limit)
        rows.append(
            (
                f"growth: {c['label']}, {growth['executions']:,} vs {growth.get('reference_executions') or 0:,} rows",
                f"{c['text']} vs {c['reference_text']}",
                f"within {limit:.0%}",
                verdict(ok),
            )
        )
    return rows


def evaluate(result: dict) -> list[tuple[str, str, str, str]]:
    """(measure, value, target, verdict) rows."""
    ceiling_by = {lvl["clients"]: lvl["tps_median"] for lvl in result.get("ceiling", [])}
    rows = dry_rows(result) + execute_rows(result, ceiling_by) + job_rows(result, ceiling_by)
    shown = {e["callers"] for e in result.get("execute", [])} | {j["workers"] for j in result.get("jobs", [])}
    for lvl in result.get("ceiling", []):
        if lvl["clients"] not in shown:
            rows.append((f"raw-SQL ceiling at {lvl['clients']} client(s)", f"{lvl['tps_median']:.0f} tx/s", "-", "-"))
    rows += statement_rows(result)
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
    return rows + growth_rows(result.get("growth"))


def print_table(rows) -> None:
    widths = [max(len(r[i]) for r in rows + [("measure", "value", "target", "verdict")]) for i in range(4)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format("measure", "value", "target", "verdict"))
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r))
