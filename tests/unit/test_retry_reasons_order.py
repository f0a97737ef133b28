"""The skip reasons, their order and the SQL that applies them, pinned against the contract.

SPEC section 3 is written out below as it stands there (number, reason): the code's list, the
summary's keys and the eligibility SQL's CASE must all follow it. A reason renamed, dropped,
added or moved in the code, and not in the contract, fails here.
"""

from __future__ import annotations

import re

from app.retries import eligibility, filters
from app.retries.reasons import REASON_CODES, empty_counts
from app.retries.schemas import RetryBatchRequestSchema

# SPEC section 3, "Each row in scope gets the FIRST reason that applies, in this order".
SPEC_TABLE = """
| 0 | `not_found` |
| 1 | `status_not_error` |
| 2 | `project_already_exists` |
| 3 | `ramp_deleted` |
| 4 | `ramp_archived` |
| 5 | `workflow_is_draft` |
| 6 | `duplicate_trigger_succeeded` |
| 7 | `config_error` |
| 8 | `integration_disconnected` |
| 9 | `outside_time_window` |
| 10 | `error_pattern_mismatch` |
| 11 | `retry_limit_reached` |
"""
SPEC_REASONS = [(int(n), code) for n, code in re.findall(r"\|\s*(\d+)\s*\|\s*`(\w+)`", SPEC_TABLE)]


def test_the_spec_table_is_read_whole_and_numbered_in_order():
    assert [n for n, _ in SPEC_REASONS] == list(range(12))


def test_the_code_defines_the_spec_reasons_in_the_spec_order():
    assert list(REASON_CODES) == [code for _, code in SPEC_REASONS]


def test_skipped_by_reason_lists_every_spec_reason_in_order_at_zero():
    assert list(empty_counts().items()) == [(code, 0) for _, code in SPEC_REASONS]


def test_the_sql_case_tries_the_filters_in_the_spec_order():
    # The first WHEN that holds gives the reason, so the order of the WHENs is the contract.
    spec_codes = [code for _, code in SPEC_REASONS]
    assert re.findall(r"THEN '(\w+)'", filters.reason_case()) == spec_codes
    assert re.findall(r"WHEN '(\w+)' THEN", filters.detail_case()) == spec_codes


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


def test_error_pattern_is_never_a_like():
    assert "LIKE" not in filters.reason_case().upper()
    assert "strpos(lower(e.last_error_message), lower(:error_pattern))" in filters.reason_case()
