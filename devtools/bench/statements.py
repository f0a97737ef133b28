"""Statements per call, counted in-process (the same app code as the server, one process),
and EXPLAIN (ANALYZE, BUFFERS) of the statements the endpoint really ran."""

from __future__ import annotations

import logging
import re
import secrets

import common
from measures import ENDPOINT


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


def bench_app(url: str):
    """The app on the bench database, in this process (`create_app`, as the server builds it)."""
    from app import create_app
    from app.config import Config

    config = Config(
        database_url=url,
        secret_key=secrets.token_hex(32),
        environment="bench",
        instance_dir=common.RESULTS_DIR / "instance",
    )
    app = create_app(config)
    # Keep request and engine log lines out of the report.
    logging.getLogger("app").setLevel(logging.WARNING)
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    return app


def measure_statements(url: str, meta: dict, key: str, secret: str) -> tuple[dict, list]:
    """Statements per call, counted in-process (the same app code as the server, one process)."""
    app = bench_app(url)
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


def plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


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
            if "INSERT INTO or_retry_plan_rows" in body:
                # EXPLAIN ANALYZE really writes: the captured dry run's plan rows are already
                # there (same plan id), so start from no plan rows, in this rolled-back transaction.
                cur.execute("DELETE FROM or_retry_plan_rows")
            cur.execute("SAVEPOINT explained")
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement)
            plan = cur.fetchone()[0][0]
            cur.execute("ROLLBACK TO SAVEPOINT explained")
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement)
            text_plan = "\n".join(r[0] for r in cur.fetchall())
            conn.rollback()
        seq_scans = sorted({n.get("Relation Name") for n in plan_nodes(plan["Plan"]) if n["Node Type"] == "Seq Scan"})
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
