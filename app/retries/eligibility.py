"""All the SQL of the retry paths, in one place: the statements built on the shape in filters.py.

  * `count_by_reason`   one GROUP BY over the whole scope (the summary counts);
  * `write_plan`        the same pass, also storing the eligible rows as a plan (dry runs);
  * `list_rows`         one statement listing the first eligible and first skipped rows;
  * `claim_next`        the next eligible row after a keyset position, `FOR UPDATE OF e SKIP LOCKED`;
  * `claim_plan_row`    the next row of a plan not handled yet, locked the same way;
  * `recheck`           the reason of one row, in a fresh statement (run under the row lock);
  * `reasons_of`        the reasons of the few rows an executing call replayed, to tell its own
                        work apart in the counts taken after it;
  * `lock_for_failure_record`  the row lock for recording a replay that failed outside the runner;
  * `error_summary`     the blast radius: the window's ERROR rows grouped, with how many of each
                        group a retry with the defaults would take, in one pass.

So a call costs a fixed number of statements whatever the number of rows in scope; nothing here
loops over rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.prepared import execute_prepared
from app.retries.filters import (
    NOT_IN_PLAN,
    PARAM_TYPES,
    PLAN_ORDER,
    PLAN_ROW_DONE,
    PLAN_SOURCE,
    ROW_COLUMNS,
    ScopedRow,
    bind_params,
    detail_case,
    eligible_predicate,
    joins,
    scope,
)
from app.retries.schemas import RetryRequest
from app.workflow.trigger_keys import TRY_TRIGGER_KEY_SQL

# JIT compilation costs about a second on the whole-scope statements and saves nothing on
# queries that are index probes per row. SET LOCAL ends with the transaction.
NO_JIT = "SET LOCAL jit = off"
# For the transaction that counts and lists the scope: no JIT, and no sort where the index gives
# the order. The planner underestimates how many rows pass the eligibility conjuncts and would
# otherwise sort the whole window (parallel bitmap scan + sort) to list the first 25 rows; with
# sorts discouraged it walks the index and stops early. The GROUP BY of the count hashes instead.
SCOPE_READ_SETTINGS = f"{NO_JIT}; SET LOCAL enable_sort = off"


# ---- statements -------------------------------------------------------------------------------
# `plan_id` (keyword, default None) switches every statement below from the request's own scope to
# the rows of that plan.


def count_by_reason_sql(request: RetryRequest, *, in_plan: bool = False) -> str:
    found = scope(request, report_missing=True, ordered=False, in_plan=in_plan)
    return f"SELECT f.reason AS reason, count(*) AS n\n{found.source}\nWHERE {found.where}\nGROUP BY f.reason"


# For the whole-scope count only: the planner underestimates the scope (it cannot see through the
# reason CASE) and so never spreads it over parallel workers, which on the bench's 30-day window
# (50,000 rows) takes the count from about 550 to 370 ms. Run it last in its transaction: the
# settings stay until the transaction ends, and the ordered walks must not become parallel.
PARALLEL_COUNT_SETTINGS = (
    "SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_index_scan_size = 0"
)


def count_by_reason(session: Session, request: RetryRequest, *, plan_id: int | None = None) -> dict[str | None, int]:
    """Rows in scope per reason over the whole scope; key None = eligible. Changes the planner
    settings of the rest of the transaction (see PARALLEL_COUNT_SETTINGS)."""
    sql = f"{PARALLEL_COUNT_SETTINGS};\n{count_by_reason_sql(request, in_plan=plan_id is not None)}"
    rows = session.execute(text(sql), bind_params(request, plan_id)).all()
    return {row.reason: row.n for row in rows}


def write_plan_sql(request: RetryRequest) -> str:
    found = scope(request, report_missing=True, ordered=False)
    # One pass over the scope does both jobs: every row's reason is computed once, the eligible
    # ones are written as the plan's rows, and the counts come back for the summary.
    return f"""WITH scoped AS MATERIALIZED (
    SELECT e.id AS id, e.created_at AS created_at, f.reason AS reason
    {found.source}
    WHERE {found.where}
), planned AS (
    INSERT INTO or_retry_plan_rows (plan_id, created_at, execution_id)
    SELECT :plan_id, scoped.created_at, scoped.id FROM scoped WHERE scoped.reason IS NULL
)
SELECT scoped.reason AS reason, count(*) AS n FROM scoped GROUP BY scoped.reason"""


def write_plan(session: Session, request: RetryRequest, plan_id: int) -> dict[str | None, int]:
    """Store every eligible row of the request's scope as a row of plan `plan_id`, in the caller's
    snapshot; returns the scope's counts per reason (as `count_by_reason`)."""
    rows = session.execute(text(write_plan_sql(request)), bind_params(request, plan_id)).all()
    return {row.reason: row.n for row in rows}


def list_rows_sql(request: RetryRequest, *, in_plan: bool = False) -> str:
    found = scope(request, report_missing=True, ordered=True, in_plan=in_plan)
    plan_done = PLAN_ROW_DONE if in_plan else NOT_IN_PLAN
    columns = ROW_COLUMNS.format(uuid_column=found.uuid_column)
    # Two ordered walks with their own LIMIT instead of numbering the whole scope: each stops as
    # soon as it has its rows, and the detail is computed only for the rows returned. Oldest
    # first; hand-picked uuids with no row (no created_at) lead.
    listed = f"""SELECT {columns},
    {detail_case(plan_done)} AS detail
{found.source}
WHERE {found.where}
  AND {{condition}}
ORDER BY {found.order}
LIMIT {{limit}}"""
    eligible = listed.format(condition=eligible_predicate(plan_done), limit=":eligible_limit")
    # `exclude_ids`: the rows an executing call just replayed are reported in eligible[], not
    # again as skipped (a success now reads `status_not_error`).
    skipped = listed.format(
        condition="f.reason IS NOT NULL\n  AND (e.id IS NULL OR e.id <> ALL(CAST(:exclude_ids AS bigint[])))",
        limit=":skipped_limit",
    )
    return f"(\n{eligible}\n)\nUNION ALL\n(\n{skipped}\n)"


def list_rows(
    session: Session,
    request: RetryRequest,
    *,
    eligible_limit: int,
    skipped_limit: int,
    exclude_ids: list[int] | None = None,
    plan_id: int | None = None,
) -> tuple[list[ScopedRow], list[ScopedRow]]:
    """(first `eligible_limit` eligible rows, first `skipped_limit` skipped rows not in
    `exclude_ids`), oldest first."""
    params = bind_params(request, plan_id) | {
        "eligible_limit": eligible_limit,
        "skipped_limit": skipped_limit,
        "exclude_ids": list(exclude_ids or ()),
    }
    eligible: list[ScopedRow] = []
    skipped: list[ScopedRow] = []
    for row in session.execute(text(list_rows_sql(request, in_plan=plan_id is not None)), params).mappings():
        item = ScopedRow(**row)
        (eligible if item.reason is None else skipped).append(item)
    return eligible, skipped


def claim_next_sql(request: RetryRequest, *, after: bool) -> str:
    found = scope(request, report_missing=False, ordered=True)
    keyset = "\n  AND (e.created_at, e.id) > (:after_created_at, :after_id)" if after else ""
    # Walks ix_or_ramp_executions_error_created_at in (created_at, id) order through nested
    # loops and stops at the first eligible row nobody holds: no sort, no pass over the scope.
    return _taking_trigger_key(f"""SELECT {ROW_COLUMNS.format(uuid_column=found.uuid_column)},
    NULL AS detail
{found.source}
WHERE {found.where}
  AND {eligible_predicate()}{keyset}
ORDER BY {found.order}
LIMIT 1
FOR UPDATE OF e SKIP LOCKED""")


def _taking_trigger_key(claim_sql: str) -> str:
    # The claim also tries the row's (ramp, trigger key) lock, in the same round trip. Outside the
    # locking statement: inside it, the select list is computed for rows the lock then skips.
    return f"""WITH claimed AS MATERIALIZED (
{claim_sql}
)
SELECT claimed.*,
    claimed.trigger_key IS NULL OR {TRY_TRIGGER_KEY_SQL.format(ramp_id="claimed.ramp_id", key="claimed.trigger_key")}
        AS key_taken
FROM claimed"""


def _claimed(row) -> ScopedRow | None:
    """The claimed row (`key_taken` False: someone runs its trigger key), None if there was none."""
    return ScopedRow(**row) if row is not None else None


def _keyset(params: dict, after: tuple[datetime, int] | None) -> dict:
    if after is not None:
        params |= {"after_created_at": after[0], "after_id": after[1]}
    return params


def claim_next(session: Session, request: RetryRequest, *, after: tuple[datetime, int] | None) -> ScopedRow | None:
    """Lock and return the oldest eligible row after `after` that nobody else holds.

    Must run inside the transaction that replays the row: the lock is the only thing that keeps
    concurrent callers (and the trigger path) off it until that transaction commits.
    """
    params = _keyset(bind_params(request), after)
    sql = claim_next_sql(request, after=after is not None)
    # A generic plan: the claim walks the scope index in order and stops at the first free
    # eligible row, whatever the values; re-planning it per row cost more than running it.
    return _claimed(
        execute_prepared(session, "retry_claim", sql, params, PARAM_TYPES, generic_plan=True).mappings().first()
    )


def claim_plan_row_sql(*, after: bool) -> str:
    # Any row of the plan not handled yet, eligible or not: the re-check under the lock decides,
    # and an ineligible row is recorded as skipped with its reason. The plan row is locked too: a
    # lane whose snapshot predates another lane's commit re-reads the locked rows' latest versions
    # before taking them, and only a locked plan row shows its fresh `outcome` there, so a row
    # handled a moment ago is passed over instead of being claimed (and reported) a second time.
    keyset = "\n  AND (pr.created_at, pr.execution_id) > (:after_created_at, :after_id)" if after else ""
    return _taking_trigger_key(f"""SELECT {ROW_COLUMNS.format(uuid_column="e.uuid")},
    NULL AS detail
{PLAN_SOURCE}{joins(ordered=True)}
WHERE pr.plan_id = :plan_id AND pr.outcome IS NULL{keyset}
ORDER BY {PLAN_ORDER}
LIMIT 1
FOR UPDATE OF e, pr SKIP LOCKED""")


def claim_plan_row(
    session: Session, request: RetryRequest, plan_id: int, *, after: tuple[datetime, int] | None
) -> ScopedRow | None:
    """Lock and return the plan's oldest row not handled yet after `after` that nobody holds."""
    params = _keyset(bind_params(request, plan_id), after)
    sql = claim_plan_row_sql(after=after is not None)
    return _claimed(
        execute_prepared(session, "plan_claim", sql, params, PARAM_TYPES, generic_plan=True).mappings().first()
    )


def recheck_sql() -> str:
    return f"""SELECT f.reason AS reason, {detail_case()} AS detail
FROM or_ramp_executions e{joins(ordered=True)}
WHERE e.id = :execution_id"""


def recheck(session: Session, request: RetryRequest, execution_id: int) -> tuple[str | None, str | None]:
    """The row's first reason now: a new statement, so a new snapshot under READ COMMITTED.

    The claim's joins and subqueries saw the claim statement's snapshot; a project or a later
    success committed meanwhile is only visible to a fresh statement.
    """
    params = bind_params(request) | {"execution_id": execution_id}
    row = execute_prepared(session, "retry_recheck", recheck_sql(), params, PARAM_TYPES).first()
    return (row.reason, row.detail) if row is not None else ("not_found", "the execution no longer exists")


def reasons_of_sql(request: RetryRequest, *, in_plan: bool = False) -> str:
    found = scope(request, report_missing=False, ordered=True, in_plan=in_plan)
    return f"""SELECT e.id AS id, f.reason AS reason, coalesce(({found.where}), false) AS in_scope
{found.source}
WHERE e.id = ANY(CAST(:execution_ids AS bigint[])){" AND pr.plan_id = :plan_id" if in_plan else ""}"""


def reasons_of(
    session: Session, request: RetryRequest, execution_ids: list[int], *, plan_id: int | None = None
) -> dict[int, tuple[str | None, bool]]:
    """For a few executions: (first reason now, whether the request's scope still holds them)."""
    if not execution_ids:
        return {}
    params = bind_params(request, plan_id) | {"execution_ids": list(execution_ids)}
    rows = session.execute(text(reasons_of_sql(request, in_plan=plan_id is not None)), params).all()
    return {row.id: (row.reason, row.in_scope) for row in rows}


LOCK_FOR_FAILURE_RECORD_SQL = """SELECT e.id, e.status_code
FROM or_ramp_executions e
WHERE e.id = :execution_id
FOR UPDATE OF e SKIP LOCKED"""


def lock_for_failure_record(session: Session, execution_id: int) -> str | None:
    """Lock one execution without waiting; its status, or None when someone else holds it."""
    row = session.execute(text(LOCK_FOR_FAILURE_RECORD_SQL), {"execution_id": execution_id}).first()
    return row.status_code if row is not None else None


# ---- blast radius -----------------------------------------------------------------------------

# group_by name -> the columns it groups on (and reports), in the order of SPEC section 8.
SUMMARY_GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "vendor": (("vendor_id", "e.vendor_id"),),
    "ramp": (("ramp_uuid", "r.uuid"), ("ramp_name", "r.name")),
    "category": (("category", "e.last_error_category"),),
    "error_type": (("error_type", "e.last_error_type"),),
}
MAX_SUMMARY_GROUPS = 500


def error_summary_sql(request: RetryRequest, group_by: tuple[str, ...]) -> str:
    found = scope(request, report_missing=False, ordered=False)
    columns = [(alias, expr) for name in group_by for alias, expr in SUMMARY_GROUPS[name]]
    select_list = "".join(f"{expr} AS {alias}, " for alias, expr in columns)
    group_list = ", ".join(expr for _, expr in columns) or "()"
    order = ", ".join(["count(*) DESC", *(f"{expr} NULLS LAST" for _, expr in columns)])
    # One pass: per group its rows, the rows a retry with the defaults would take (the same CASE
    # as every other statement) and a sample; the window functions carry the totals over every
    # group, so truncating the list to MAX_SUMMARY_GROUPS changes no total.
    return f"""SELECT {select_list}count(*) AS count,
    count(*) FILTER (WHERE f.reason IS NULL) AS eligible,
    min(e.created_at) AS first_at,
    max(e.created_at) AS last_at,
    max(e.last_error_message) AS sample_message,
    sum(count(*)) OVER () AS total_rows,
    sum(count(*) FILTER (WHERE f.reason IS NULL)) OVER () AS total_eligible,
    count(*) OVER () AS total_groups
{found.source}
WHERE {found.where}
GROUP BY {group_list}
ORDER BY {order}
LIMIT :group_limit"""


def error_summary(session: Session, request: RetryRequest, group_by: tuple[str, ...]) -> list[dict]:
    """The window's groups, biggest first, at most MAX_SUMMARY_GROUPS; each row also carries the
    totals over all groups (`total_rows`, `total_eligible`, `total_groups`)."""
    params = bind_params(request) | {"group_limit": MAX_SUMMARY_GROUPS}
    return [dict(row) for row in session.execute(text(error_summary_sql(request, group_by)), params).mappings()]
