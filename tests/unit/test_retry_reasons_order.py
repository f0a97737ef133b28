"""The ordered reason list is the single source of truth for the eligibility SQL and the summary."""

from __future__ import annotations

import re

from app.retries import eligibility, filters
from app.retries.reasons import REASON_CODES, empty_counts
from app.retries.schemas import RetryBatchRequestSchema

SPEC_ORDER = (
    "not_found",
    "status_not_error",
    "project_already_exists",
    "ramp_deleted",
    "ramp_archived",
    "workflow_is_draft",
    "duplicate_trigger_succeeded",
    "config_error",
    "integration_disconnected",
    "outside_time_window",
    "error_pattern_mismatch",
    "retry_limit_reached",
)


def test_reasons_follow_the_spec_order():
    assert REASON_CODES == SPEC_ORDER


def test_the_sql_case_is_generated_in_that_order():
    assert re.findall(r"THEN '(\w+)'", filters.reason_case()) == list(REASON_CODES)
    assert re.findall(r"WHEN '(\w+)' THEN", filters.detail_case()) == list(REASON_CODES)


def test_every_statement_carries_the_same_case():
    window = RetryBatchRequestSchema().load({"since": "2026-05-11T12:30:00Z"})
    picked = RetryBatchRequestSchema().load({"execution_uuids": ["00000000-0000-0000-0000-000000000001"]})
    case = filters.reason_case()
    for request in (window, picked):
        for sql in (
            eligibility.count_by_reason_sql(request),
            eligibility.list_rows_sql(request),
            eligibility.claim_next_sql(request, after=True),
            eligibility.reasons_of_sql(request),
        ):
            assert case in sql
    assert case in eligibility.recheck_sql()
    assert "FOR UPDATE OF e SKIP LOCKED" in eligibility.claim_next_sql(window, after=False)


def test_summary_keys_come_from_the_list():
    assert list(empty_counts()) == list(REASON_CODES)
    assert set(empty_counts().values()) == {0}


def test_error_pattern_is_never_a_like():
    assert "LIKE" not in filters.reason_case().upper()
    assert "strpos(lower(e.last_error_message), lower(:error_pattern))" in filters.reason_case()
