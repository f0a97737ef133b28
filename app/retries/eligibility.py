"""All the SQL of the retry endpoint, in one place.

One query shape serves every purpose. For each execution in scope it joins what the filters need
(ramp, the version that would run, a linked project, the vendor's integration, a later successful
run of the same trigger) and computes, in a single CASE built from `reasons.REASONS`, the FIRST skip
reason that applies (NULL = eligible) plus a human-readable detail. Around that shape:

  * `count_by_reason`   one GROUP BY over the whole scope (the summary counts);
  * `list_rows`         one statement listing the first eligible and first skipped rows;
  * `claim_next`        the next eligible row after a keyset position, `FOR UPDATE OF e SKIP LOCKED`;
  * `recheck`           the reason of one row, in a fresh statement (run under the row lock);
  * `reasons_of`        the reasons of the few rows an executing call replayed, to tell its own
                        work apart in the counts taken after it;
  * `lock_for_failure_record`  the row lock for recording a replay that failed outside the runner.

So a call costs a fixed number of statements whatever the number of rows in scope; nothing here
loops over rows. Request values travel as bind parameters; only the scope shape (window or
hand-picked, optional vendor/ramp narrowing, keyset) changes the SQL text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.prepared import execute_prepared
from app.retries.reasons import REASON_CODES
from app.retries.schemas import RetryRequest

# reason -> (condition, detail). Conditions may rely on the reasons before them having failed.
# `p`, `dup`, `i`, `v` are outer-joined, so their columns are NULL when there is no such row.
FILTERS: dict[str, tuple[str, str]] = {
    "not_found": (
        "e.id IS NULL",
        "'no execution has this uuid'",
    ),
    "status_not_error": (
        "e.status_code <> 'ERROR'",
        "'status is ' || e.status_code",
    ),
    "project_already_exists": (
        "p.id IS NOT NULL",
        "'project ' || p.uuid::text || ' is linked to this execution'",
    ),
    "ramp_deleted": (
        "r.status = 'deleted'",
        "'ramp ' || r.uuid::text || ' is deleted'",
    ),
    "ramp_archived": (
        "r.status = 'archived'",
        "'ramp ' || r.uuid::text || ' is archived'",
    ),
    "workflow_is_draft": (
        "r.status = 'draft' OR v.id IS NULL OR v.draft",
        "CASE WHEN r.status = 'draft' THEN 'ramp is a draft'"
        " WHEN v.id IS NULL THEN 'version ' || run_version.n || ' does not exist'"
        " ELSE 'version ' || run_version.n || ' is a draft' END",
    ),
    "duplicate_trigger_succeeded": (
        "dup.uuid IS NOT NULL",
        "'execution ' || dup.uuid::text || ' of trigger ' || e.trigger_key || ' succeeded later'",
    ),
    "config_error": (
        "NOT :force_retry AND e.last_error_category = 'config'",
        "coalesce(e.last_error_type, 'error') || ': ' || coalesce(e.last_error_message, '')",
    ),
    "integration_disconnected": (
        "i.id IS NULL OR NOT i.user_configured OR i.token_revoked OR i.token_expires_at <= now()",
        "CASE WHEN i.id IS NULL THEN 'vendor has no CRM integration'"
        " WHEN NOT i.user_configured THEN 'integration is not configured'"
        " WHEN i.token_revoked THEN 'integration token is revoked'"
        " ELSE 'integration token expired at ' || i.token_expires_at::text END",
    ),
    "outside_time_window": (
        ":window_scope AND NOT (e.created_at >= :since AND e.created_at < :until)",
        "'created_at ' || e.created_at::text || ' is outside the window'",
    ),
    "error_pattern_mismatch": (
        # A literal substring: strpos, not LIKE, so `_` and `%` mean themselves.
        ":error_pattern IS NOT NULL AND (e.last_error_message IS NULL"
        " OR strpos(lower(e.last_error_message), lower(:error_pattern)) = 0)",
        "CASE WHEN e.last_error_message IS NULL THEN 'no error message'"
        " ELSE 'last error: ' || left(e.last_error_message, 200) END",
    ),
    "retry_limit_reached": (
        "e.replay_attempts >= :max_attempts",
        "e.replay_attempts || ' replay attempt(s), max_attempts is ' || :max_attempts",
    ),
}

if tuple(FILTERS) != REASON_CODES:  # pragma: no cover - guarded by a unit test as well
    raise RuntimeError("eligibility.FILTERS must follow reasons.REASONS exactly")


def reason_case() -> str:
    """`CASE WHEN <filter 0> THEN 'not_found' ... END`, in the order of `reasons.REASONS`."""
    whens = "\n".join(f"        WHEN {FILTERS[code][0]} THEN '{code}'" for code in REASON_CODES)
    return f"CASE\n{whens}\n    END"


def detail_case() -> str:
    whens = "\n".join(f"        WHEN '{code}' THEN {FILTERS[code][1]}" for code in REASON_CODES)
    return f"CASE f.reason\n{whens}\n    END"


def eligible_predicate() -> str:
    """`reason IS NULL`, spelled as one conjunct per filter, generated from the same FILTERS.

    A CASE yields NULL exactly when none of its WHEN conditions is TRUE, so this is equivalent to
    `f.reason IS NULL`; unlike it, each conjunct can be pushed down to the scan or join that
    provides its columns (the `e`-only ones filter the index walk before any join runs), and a
    walk in index order can stop at the first row that passes.
    """
    return "\n  AND ".join(f"({FILTERS[code][0]}) IS NOT TRUE" for code in REASON_CODES)


# Everything a filter looks at, joined to the execution `e`. `run_version.n` is the version a
# replay would run (original: the execution's own; latest: the ramp's current one).
#
# The project and the later success are per-row index probes (LATERAL ... LIMIT 1 on
# uq_or_projects_execution_id / ix_or_ramp_executions_success_trigger): a hash join would read
# all of or_projects. With `ordered`, the ramp, version and integration are probes too: nested
# loops keep the (created_at, id) order of the index walk, so ORDER BY ... LIMIT needs no sort of
# the scope and stops early. Without it (whole-scope counts) they are plain joins, which the
# planner hashes: these tables are small. Every lookup is on a unique key, so LIMIT 1 changes
# no result.
def _joins(*, ordered: bool) -> str:
    if ordered:
        lookups = """
LEFT JOIN LATERAL (
    SELECT * FROM or_ramps WHERE or_ramps.id = e.ramp_id LIMIT 1
) r ON TRUE
CROSS JOIN LATERAL (
    SELECT CASE WHEN :use_latest THEN r.current_version ELSE e.ramp_version END AS n
) run_version
LEFT JOIN LATERAL (
    SELECT * FROM or_ramp_versions
    WHERE or_ramp_versions.ramp_id = e.ramp_id AND or_ramp_versions.version = run_version.n LIMIT 1
) v ON TRUE
LEFT JOIN LATERAL (
    SELECT * FROM or_crm_integrations WHERE or_crm_integrations.vendor_id = e.vendor_id LIMIT 1
) i ON TRUE"""
    else:
        lookups = """
LEFT JOIN or_ramps r ON r.id = e.ramp_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN :use_latest THEN r.current_version ELSE e.ramp_version END AS n
) run_version
LEFT JOIN or_ramp_versions v ON v.ramp_id = e.ramp_id AND v.version = run_version.n
LEFT JOIN or_crm_integrations i ON i.vendor_id = e.vendor_id"""
    return f"""{lookups}
LEFT JOIN LATERAL (
    SELECT linked.id, linked.uuid FROM or_projects linked WHERE linked.execution_id = e.id LIMIT 1
) p ON TRUE
LEFT JOIN LATERAL (
    SELECT later.uuid FROM or_ramp_executions later
    WHERE e.trigger_key IS NOT NULL
      AND later.ramp_id = e.ramp_id AND later.trigger_key = e.trigger_key
      AND later.status_code = 'SUCCESS' AND later.created_at > e.created_at
    ORDER BY later.created_at
    LIMIT 1
) dup ON TRUE
CROSS JOIN LATERAL (
    SELECT {reason_case()} AS reason
) f"""


_ROW_COLUMNS = """
    e.id AS id,
    {uuid_column} AS execution_uuid,
    e.vendor_id AS vendor_id,
    r.uuid AS ramp_uuid,
    e.created_at AS created_at,
    e.last_error_message AS error_message,
    e.ramp_version AS ramp_version,
    r.current_version AS current_version,
    coalesce(e.ramp_version <> r.current_version, false) AS workflow_version_drift,
    f.reason AS reason"""


@dataclass(frozen=True)
class ScopedRow:
    id: int | None
    execution_uuid: uuid.UUID
    vendor_id: int | None
    ramp_uuid: uuid.UUID | None
    created_at: datetime | None
    error_message: str | None
    ramp_version: int | None
    current_version: int | None
    workflow_version_drift: bool
    reason: str | None
    detail: str | None


def bind_params(request: RetryRequest) -> dict:
    return {
        "force_retry": request.force_retry,
        "window_scope": not request.hand_picked,
        "since": request.since,
        "until": request.until,
        "error_pattern": request.error_pattern,
        "max_attempts": request.max_attempts,
        "use_latest": request.workflow_version == "latest",
        "execution_uuids": [str(u) for u in request.execution_uuids or ()],
        "vendor_ids": list(request.vendor_ids or ()),
        "ramp_uuids": [str(u) for u in request.ramp_uuids or ()],
    }


# PostgreSQL types of the binds above, for the statements run as prepared statements.
PARAM_TYPES: dict[str, str] = {
    "force_retry": "boolean",
    "window_scope": "boolean",
    "since": "timestamptz",
    "until": "timestamptz",
    "error_pattern": "text",
    "max_attempts": "integer",
    "use_latest": "boolean",
    "execution_uuids": "uuid[]",
    "vendor_ids": "bigint[]",
    "ramp_uuids": "uuid[]",
    "after_created_at": "timestamptz",
    "after_id": "bigint",
    "execution_id": "bigint",
}


def _window_where(request: RetryRequest) -> str:
    # The scope predicates match the partial index ix_or_ramp_executions_error_created_at.
    parts = ["e.status_code = 'ERROR'", "e.created_at >= :since", "e.created_at < :until"]
    if request.vendor_ids is not None:
        parts.append("e.vendor_id = ANY(CAST(:vendor_ids AS bigint[]))")
    if request.ramp_uuids is not None:
        parts.append("r.uuid = ANY(CAST(:ramp_uuids AS uuid[]))")
    return " AND ".join(parts)


def _scope(request: RetryRequest, *, report_missing: bool, ordered: bool) -> tuple[str, str, str]:
    """(FROM clause, WHERE clause, uuid column) for the request's scope.

    `report_missing` (hand-picked only) drives the scope from the uuid list, so uuids with no row
    come back with reason `not_found`. The claim cannot use that form: `FOR UPDATE OF e` is not
    allowed on the nullable side of an outer join. `ordered`: see `_joins`.
    """
    joins = _joins(ordered=ordered)
    if not request.hand_picked:
        return f"FROM or_ramp_executions e{joins}", _window_where(request), "e.uuid"
    if report_missing:
        source = (
            "FROM unnest(CAST(:execution_uuids AS uuid[])) AS picked(uuid)\n"
            "LEFT JOIN or_ramp_executions e ON e.uuid = picked.uuid"
        )
        return f"{source}{joins}", "TRUE", "picked.uuid"
    return (
        f"FROM or_ramp_executions e{joins}",
        "e.uuid = ANY(CAST(:execution_uuids AS uuid[]))",
        "e.uuid",
    )


# JIT compilation costs about a second on the whole-scope statements and saves nothing on
# queries that are index probes per row. SET LOCAL ends with the transaction.
NO_JIT = "SET LOCAL jit = off"
# For the transaction that counts and lists the scope: no JIT, and no sort where the index gives
# the order. The planner underestimates how many rows pass the eligibility conjuncts and would
# otherwise sort the whole window (parallel bitmap scan + sort) to list the first 25 rows; with
# sorts discouraged it walks the index and stops early. The GROUP BY of the count hashes instead.
SCOPE_READ_SETTINGS = f"{NO_JIT}; SET LOCAL enable_sort = off"


# ---- statements -------------------------------------------------------------------------------


def count_by_reason_sql(request: RetryRequest) -> str:
    source, where, _ = _scope(request, report_missing=True, ordered=False)
    return f"SELECT f.reason AS reason, count(*) AS n\n{source}\nWHERE {where}\nGROUP BY f.reason"


# For the whole-scope count only: the planner underestimates the scope (it cannot see through the
# reason CASE) and so never spreads it over parallel workers, which on the bench's 30-day window
# (50,000 rows) takes the count from about 550 to 370 ms. Run it last in its transaction: the
# settings stay until the transaction ends, and the ordered walks must not become parallel.
PARALLEL_COUNT_SETTINGS = (
    "SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_index_scan_size = 0"
)


def count_by_reason(session: Session, request: RetryRequest) -> dict[str | None, int]:
    """Rows in scope per reason over the whole scope; key None = eligible. Changes the planner
    settings of the rest of the transaction (see PARALLEL_COUNT_SETTINGS)."""
    sql = f"{PARALLEL_COUNT_SETTINGS};\n{count_by_reason_sql(request)}"
    rows = session.execute(text(sql), bind_params(request)).all()
    return {row.reason: row.n for row in rows}


def list_rows_sql(request: RetryRequest) -> str:
    source, where, uuid_column = _scope(request, report_missing=True, ordered=True)
    columns = _ROW_COLUMNS.format(uuid_column=uuid_column)
    # NULLS FIRST only where there can be NULLs: the index's own order is NULLS LAST, and a
    # different one would force a sort of the whole window.
    order = "e.created_at NULLS FIRST, e.id" if request.hand_picked else "e.created_at, e.id"
    # Two ordered walks with their own LIMIT instead of numbering the whole scope: each stops as
    # soon as it has its rows, and the detail is computed only for the rows returned. Oldest
    # first; hand-picked uuids with no row (no created_at) lead.
    listed = f"""SELECT {columns},
    {detail_case()} AS detail
{source}
WHERE {where}
  AND {{condition}}
ORDER BY {order}
LIMIT {{limit}}"""
    eligible = listed.format(condition=eligible_predicate(), limit=":eligible_limit")
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
) -> tuple[list[ScopedRow], list[ScopedRow]]:
    """(first `eligible_limit` eligible rows, first `skipped_limit` skipped rows not in
    `exclude_ids`), oldest first."""
    params = bind_params(request) | {
        "eligible_limit": eligible_limit,
        "skipped_limit": skipped_limit,
        "exclude_ids": list(exclude_ids or ()),
    }
    eligible: list[ScopedRow] = []
    skipped: list[ScopedRow] = []
    for row in session.execute(text(list_rows_sql(request)), params).mappings():
        item = ScopedRow(**row)
        (eligible if item.reason is None else skipped).append(item)
    return eligible, skipped


def claim_next_sql(request: RetryRequest, *, after: bool) -> str:
    source, where, uuid_column = _scope(request, report_missing=False, ordered=True)
    keyset = "\n  AND (e.created_at, e.id) > (:after_created_at, :after_id)" if after else ""
    # Walks ix_or_ramp_executions_error_created_at in (created_at, id) order through nested
    # loops and stops at the first eligible row nobody holds: no sort, no pass over the scope.
    return f"""SELECT {_ROW_COLUMNS.format(uuid_column=uuid_column)},
    NULL AS detail
{source}
WHERE {where}
  AND {eligible_predicate()}{keyset}
ORDER BY e.created_at, e.id
LIMIT 1
FOR UPDATE OF e SKIP LOCKED"""


def claim_next(session: Session, request: RetryRequest, *, after: tuple[datetime, int] | None) -> ScopedRow | None:
    """Lock and return the oldest eligible row after `after` that nobody else holds.

    Must run inside the transaction that replays the row: the lock is the only thing that keeps
    concurrent callers (and the trigger path) off it until that transaction commits.
    """
    params = bind_params(request)
    if after is not None:
        params |= {"after_created_at": after[0], "after_id": after[1]}
    sql = claim_next_sql(request, after=after is not None)
    # A generic plan: the claim walks the scope index in order and stops at the first free
    # eligible row, whatever the values; re-planning it per row cost more than running it.
    row = execute_prepared(session, "retry_claim", sql, params, PARAM_TYPES, generic_plan=True).mappings().first()
    return ScopedRow(**row) if row is not None else None


def recheck_sql() -> str:
    return f"""SELECT f.reason AS reason, {detail_case()} AS detail
FROM or_ramp_executions e{_joins(ordered=True)}
WHERE e.id = :execution_id"""


def recheck(session: Session, request: RetryRequest, execution_id: int) -> tuple[str | None, str | None]:
    """The row's first reason now: a new statement, so a new snapshot under READ COMMITTED.

    The claim's joins and subqueries saw the claim statement's snapshot; a project or a later
    success committed meanwhile is only visible to a fresh statement.
    """
    params = bind_params(request) | {"execution_id": execution_id}
    row = execute_prepared(session, "retry_recheck", recheck_sql(), params, PARAM_TYPES).first()
    return (row.reason, row.detail) if row is not None else ("not_found", "the execution no longer exists")


def reasons_of_sql(request: RetryRequest) -> str:
    source, where, _ = _scope(request, report_missing=False, ordered=True)
    return f"""SELECT e.id AS id, f.reason AS reason, coalesce(({where}), false) AS in_scope
{source}
WHERE e.id = ANY(CAST(:execution_ids AS bigint[]))"""


def reasons_of(session: Session, request: RetryRequest, execution_ids: list[int]) -> dict[int, tuple[str | None, bool]]:
    """For a few executions: (first reason now, whether the request's scope still holds them)."""
    if not execution_ids:
        return {}
    params = bind_params(request) | {"execution_ids": list(execution_ids)}
    rows = session.execute(text(reasons_of_sql(request)), params).all()
    return {row.id: (row.reason, row.in_scope) for row in rows}


LOCK_FOR_FAILURE_RECORD_SQL = """SELECT e.id, e.status_code
FROM or_ramp_executions e
WHERE e.id = :execution_id
FOR UPDATE OF e SKIP LOCKED"""


def lock_for_failure_record(session: Session, execution_id: int) -> str | None:
    """Lock one execution without waiting; its status, or None when someone else holds it."""
    row = session.execute(text(LOCK_FOR_FAILURE_RECORD_SQL), {"execution_id": execution_id}).first()
    return row.status_code if row is not None else None
