"""The shape every retry statement shares: the ordered filters, the joins they need, the scopes.

For each execution in scope, one query shape joins what the filters need (ramp, the version that
would run, a linked project, the vendor's integration, a successful run of the same trigger)
and computes, in a single CASE built from `reasons.REASONS`, the FIRST skip reason that applies
(NULL = eligible) plus a human-readable detail. The statements built on it are in eligibility.py.
Request values travel as bind parameters; only the scope shape (window, hand-picked, a plan's
rows; optional vendor/ramp narrowing; keyset) changes the SQL text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

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
        "'execution ' || dup.uuid::text || ' of trigger ' || e.trigger_key || ' succeeded'",
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
        # {plan_done}: in a plan's scope, a row the plan already handled is not replayed again.
        "e.replay_attempts >= :max_attempts OR {plan_done}",
        "CASE WHEN {plan_done} THEN 'already handled by this plan'"
        " ELSE e.replay_attempts || ' replay attempt(s), max_attempts is ' || :max_attempts END",
    ),
}

# What {plan_done} means outside and inside a plan's scope (`pr` is the plan row there).
NOT_IN_PLAN = "FALSE"
PLAN_ROW_DONE = "pr.outcome IS NOT NULL"

if tuple(FILTERS) != REASON_CODES:  # pragma: no cover - guarded by a unit test as well
    raise RuntimeError("eligibility.FILTERS must follow reasons.REASONS exactly")


def condition(code: str, plan_done: str) -> str:
    return FILTERS[code][0].format(plan_done=plan_done)


def reason_case(plan_done: str = NOT_IN_PLAN) -> str:
    """`CASE WHEN <filter 0> THEN 'not_found' ... END`, in the order of `reasons.REASONS`."""
    whens = "\n".join(f"        WHEN {condition(code, plan_done)} THEN '{code}'" for code in REASON_CODES)
    return f"CASE\n{whens}\n    END"


def detail_case(plan_done: str = NOT_IN_PLAN) -> str:
    whens = "\n".join(
        f"        WHEN '{code}' THEN {FILTERS[code][1].format(plan_done=plan_done)}" for code in REASON_CODES
    )
    return f"CASE f.reason\n{whens}\n    END"


def eligible_predicate(plan_done: str = NOT_IN_PLAN) -> str:
    """`reason IS NULL`, spelled as one conjunct per filter, generated from the same FILTERS.

    A CASE yields NULL exactly when none of its WHEN conditions is TRUE, so this is equivalent to
    `f.reason IS NULL`; unlike it, each conjunct can be pushed down to the scan or join that
    provides its columns (the `e`-only ones filter the index walk before any join runs), and a
    walk in index order can stop at the first row that passes.
    """
    return "\n  AND ".join(f"({condition(code, plan_done)}) IS NOT TRUE" for code in REASON_CODES)


# Everything a filter looks at, joined to the execution `e`. `run_version.n` is the version a
# replay would run (original: the execution's own; latest: the ramp's current one).
#
# The project and the success of the same trigger are per-row index probes (LATERAL ... LIMIT 1 on
# uq_or_projects_execution_id / ix_or_ramp_executions_success_trigger): a hash join would read
# all of or_projects. With `ordered`, the ramp, version and integration are probes too: nested
# loops keep the (created_at, id) order of the index walk, so ORDER BY ... LIMIT needs no sort of
# the scope and stops early. Without it (whole-scope counts) they are plain joins, which the
# planner hashes: these tables are small. Every lookup is on a unique key, so LIMIT 1 changes
# no result.
def joins(*, ordered: bool, plan_done: str = NOT_IN_PLAN) -> str:
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
    SELECT marker.superseded_by_uuid AS uuid FROM or_superseded_executions marker WHERE marker.execution_id = e.id
) dup ON TRUE
CROSS JOIN LATERAL (
    SELECT {reason_case(plan_done)} AS reason
) f"""


ROW_COLUMNS = """
    e.id AS id,
    {uuid_column} AS execution_uuid,
    e.vendor_id AS vendor_id,
    e.ramp_id AS ramp_id,
    e.trigger_key AS trigger_key,
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
    ramp_id: int | None
    trigger_key: str | None
    ramp_uuid: uuid.UUID | None
    created_at: datetime | None
    error_message: str | None
    ramp_version: int | None
    current_version: int | None
    workflow_version_drift: bool
    reason: str | None
    detail: str | None
    key_taken: bool | None = None  # set by the claims: whether this transaction holds the trigger key


def bind_params(request: RetryRequest, plan_id: int | None = None) -> dict:
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
        "plan_id": plan_id,
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
    "plan_id": "bigint",
    "after_created_at": "timestamptz",
    "after_id": "bigint",
    "execution_id": "bigint",
}


def window_where(request: RetryRequest) -> str:
    # The scope predicates match the partial index ix_or_ramp_executions_error_created_at.
    parts = ["e.status_code = 'ERROR'", "e.created_at >= :since", "e.created_at < :until"]
    if request.vendor_ids is not None:
        parts.append("e.vendor_id = ANY(CAST(:vendor_ids AS bigint[]))")
    if request.ramp_uuids is not None:
        parts.append("r.uuid = ANY(CAST(:ramp_uuids AS uuid[]))")
    return " AND ".join(parts)


@dataclass(frozen=True)
class Scope:
    source: str  # FROM ... with every join the filters need
    where: str
    uuid_column: str
    order: str  # the walk order of the scope's index: oldest first


# A plan's rows in the order of its primary key, which is the replay order.
PLAN_SOURCE = "FROM or_retry_plan_rows pr\nJOIN or_ramp_executions e ON e.id = pr.execution_id"
PLAN_ORDER = "pr.created_at, pr.execution_id"


def scope(request: RetryRequest, *, report_missing: bool, ordered: bool, in_plan: bool = False) -> Scope:
    """The FROM and WHERE of the request's scope: a window, hand-picked uuids, or a plan's rows.

    `report_missing` (hand-picked only) drives the scope from the uuid list, so uuids with no row
    come back with reason `not_found`. The claim cannot use that form: `FOR UPDATE OF e` is not
    allowed on the nullable side of an outer join. `ordered`: see `_joins`. `in_plan`: exactly the
    rows of plan `:plan_id`, re-checked with the plan's request (the window still applies, as
    defence in depth, to a plan made from a window).
    """
    if in_plan:
        lookups = joins(ordered=ordered, plan_done=PLAN_ROW_DONE)
        return Scope(f"{PLAN_SOURCE}{lookups}", "pr.plan_id = :plan_id", "e.uuid", PLAN_ORDER)
    lookups = joins(ordered=ordered)
    if not request.hand_picked:
        return Scope(f"FROM or_ramp_executions e{lookups}", window_where(request), "e.uuid", "e.created_at, e.id")
    if report_missing:
        source = (
            "FROM unnest(CAST(:execution_uuids AS uuid[])) AS picked(uuid)\n"
            "LEFT JOIN or_ramp_executions e ON e.uuid = picked.uuid"
        )
        # NULLS FIRST only where there can be NULLs (uuids with no row lead).
        return Scope(f"{source}{lookups}", "TRUE", "picked.uuid", "e.created_at NULLS FIRST, e.id")
    return Scope(
        f"FROM or_ramp_executions e{lookups}",
        "e.uuid = ANY(CAST(:execution_uuids AS uuid[]))",
        "e.uuid",
        "e.created_at, e.id",
    )
