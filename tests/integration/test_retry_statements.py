"""A retry call costs a fixed number of SQL statements, whatever the number of rows in scope."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from app.retries.batch import SKIPPED_LIST_LIMIT, retry_batch
from app.retries.schemas import RetryBatchRequestSchema
from tests.support.retry_scenarios import ADMIN_ACTOR, backlog, iso
from tests.support.tables import empty_tables


@contextmanager
def counting(engine):
    statements: list[str] = []

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        # A PREPARE is sent once per pooled connection (app/prepared.py), so whether a call sends
        # one depends on which connection it gets, not on the scope.
        if not statement.startswith("PREPARE "):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before_cursor_execute)


def _statements_for(engine, session_factory, config, body) -> tuple[list[str], object]:
    request = RetryBatchRequestSchema().load({"since": iso(0), "until": iso(24 * 60), **body})
    with counting(engine) as statements:
        result = retry_batch(session_factory, request, ADMIN_ACTOR, config=config)
    return statements, result


def _load_with_skips(load, n: int) -> None:
    # Every third row has a project, so skipped[] and skipped_by_reason are exercised too.
    data = backlog(n, spacing=0.001)
    for i, row in enumerate(data["executions"]):
        row["has_project"] = i % 3 == 0
    load(data)


def test_dry_run_statement_count_does_not_grow_with_the_scope(load, engine, session_factory, config):
    _load_with_skips(load, 100)
    small, small_result = _statements_for(engine, session_factory, config, {})
    assert small_result.summary.matched == 100

    empty_tables(engine)
    _load_with_skips(load, 3000)
    large, large_result = _statements_for(engine, session_factory, config, {})
    assert large_result.summary.matched == 3000
    assert large_result.summary.eligible == 2000
    assert len(large_result.eligible) == 25
    assert len(large_result.skipped) == SKIPPED_LIST_LIMIT and large_result.skipped_truncated

    assert len(small) == len(large)
    # audit insert, SET TRANSACTION, lists, plan header, plan rows + counts, plan total, audit update
    assert len(large) <= 7, large


def test_executing_call_statement_count_does_not_grow_with_the_scope(load, engine, session_factory, config):
    body = {"dry_run": False, "suppress_notifications": True}
    _load_with_skips(load, 60)
    small, small_result = _statements_for(engine, session_factory, config, body)
    assert small_result.summary.selected == 25

    empty_tables(engine)
    _load_with_skips(load, 1500)
    large, large_result = _statements_for(engine, session_factory, config, body)
    assert large_result.summary.selected == 25
    assert large_result.summary.remaining == 1000 - 25

    assert len(small) == len(large)
