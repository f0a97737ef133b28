"""Every public endpoint, one `Operation` each (see app/openapi/__init__.py for how to add one)."""

from __future__ import annotations

from app.models.jobs import JOB_STATES
from app.openapi.document import ADMIN, Body, Operation, RequestShape, errors
from app.retries.job_schemas import ControlRequestSchema, RetryJobListSchema, RetryJobRequestSchema, RetryJobSchema
from app.retries.schemas import RetryBatchRequestSchema, RetryBatchResponseSchema
from app.retries.toolbox_schemas import DismissRequestSchema, DismissResponseSchema, ErrorSummarySchema
from app.triggers.schemas import TriggerRequestSchema, TriggerResponseSchema

_WINDOW_FIELDS = ("since", "until", "vendor_ids", "ramp_uuids")

_PLAN_ONLY = ("plan_token",)

RETRY_BATCH_SHAPES = (
    RequestShape(
        "RetryBatchWindowRequest",
        "Window scope",
        "Failed executions created in [since, until), optionally narrowed by vendor_ids and ramp_uuids.",
        required=("since",),
        excluded=(*_PLAN_ONLY, "payload_patches"),
        null_only=("execution_uuids",),
        example={"since": "2026-05-11T12:30:00Z", "until": "2026-05-11T14:00:00Z", "error_pattern": "new_task"},
        notes={
            "since": "Naive times are read as UTC. Must stay within 0001-01-01..9999-12-31 once converted to UTC.",
            "until": "Default: now. Must be later than `since` (400 otherwise); the window is half-open "
            "[since, until). Must stay within 0001-01-01..9999-12-31 once converted to UTC.",
        },
    ),
    RequestShape(
        "RetryBatchHandPickedRequest",
        "Hand-picked executions",
        "Exactly these executions (unknown uuids are reported as `not_found`); no window or other scope.",
        required=("execution_uuids",),
        excluded=_PLAN_ONLY,
        null_only=_WINDOW_FIELDS,
        example={"execution_uuids": ["0b9d2f4e-5c1a-4e8b-9f3d-7a6c5b4e3d21"], "force_retry": True, "dry_run": True},
        notes={
            "payload_patches": "execution uuid (one of execution_uuids) -> a JSON merge patch (RFC 7396) of "
            "its stored trigger payload, at most 64 KB each; `null` removes a key."
        },
    ),
    RequestShape(
        "RetryBatchPlanRequest",
        "A plan",
        "Exactly the rows of the plan a dry run answered (`plan_token`), re-checked with the plan's own "
        "request; 404 plan_not_found, 410 plan_expired.",
        required=("plan_token",),
        allowed=("dry_run", "suppress_notifications"),
        example={"plan_token": "plan_3q9XbM0yY4wGmK2rL7sV1c8dT5eH6fJa", "dry_run": False},
        notes={"suppress_notifications": "Default: the plan's own setting."},
    ),
)

RETRY_JOB_SHAPES = (
    RequestShape(
        "RetryJobWindowRequest",
        "Window scope",
        "The rows eligible in [since, until) when the job is created.",
        required=("since",),
        excluded=(*_PLAN_ONLY, "payload_patches"),
        null_only=("execution_uuids",),
        example={"since": "2026-05-11T12:30:00Z", "suppress_notifications": True, "max_replays_per_second": 5},
        notes={"until": "Default: now. Must be later than `since`."},
    ),
    RequestShape(
        "RetryJobHandPickedRequest",
        "Hand-picked executions",
        "The eligible rows among these executions.",
        required=("execution_uuids",),
        excluded=_PLAN_ONLY,
        null_only=_WINDOW_FIELDS,
    ),
    RequestShape(
        "RetryJobPlanRequest",
        "A plan",
        "The rows of the plan not handled yet.",
        required=("plan_token",),
        allowed=("suppress_notifications", "max_replays_per_second", "halt_error_rate", "halt_window"),
        example={"plan_token": "plan_3q9XbM0yY4wGmK2rL7sV1c8dT5eH6fJa", "halt_error_rate": 0.2, "halt_window": 25},
    ),
)

JOBS = "/api/ramps/executions/retry-jobs"
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The same key from the same actor with the same body returns the existing job (200); "
    "with another body, 422 idempotency_key_reused.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_SUMMARY_QUERY = [
    {"name": "since", "in": "query", "required": True, "schema": {"type": "string", "format": "date-time"}},
    {
        "name": "until",
        "in": "query",
        "required": False,
        "description": "Default: now. Must be later than `since`.",
        "schema": {"type": "string", "format": "date-time"},
    },
    {
        "name": "vendor_ids",
        "in": "query",
        "required": False,
        "description": "Comma-separated vendor ids.",
        "schema": {"type": "string", "pattern": r"^[1-9][0-9]{0,17}(,[1-9][0-9]{0,17})*$"},
    },
    {
        "name": "group_by",
        "in": "query",
        "required": False,
        "description": "Comma-separated, of vendor, ramp, category, error_type (default "
        "vendor,ramp,error_type); a repeated name counts once.",
        "schema": {
            "type": "string",
            "pattern": r"^(vendor|ramp|category|error_type)(,(vendor|ramp|category|error_type))*$",
        },
    },
]
_JOB_LIST_QUERY = [
    {"name": "state", "in": "query", "required": False, "schema": {"type": "string", "enum": list(JOB_STATES)}},
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
]

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/api/ramps/executions/retry-batch",
        "Replay (or dry-run) failed executions in bulk",
        request=Body(RetryBatchRequestSchema, shapes=RETRY_BATCH_SHAPES),
        responses={200: RetryBatchResponseSchema, **errors(400, 401, 403, 404, 410, 413, 415, 429, 503)},
        security=ADMIN,
        description='A dry run unless the body says `"dry_run": false`. The body takes one of two '
        "forms: a time window, or hand-picked execution uuids.",
    ),
    Operation(
        "get",
        "/api/ramps/executions/error-summary",
        "The blast radius: failed executions of a window, grouped, with how many a retry would take",
        responses={200: ErrorSummarySchema, **errors(400, 401, 403, 429, 503)},
        security=ADMIN,
        parameters=_SUMMARY_QUERY,
        description="Viewers may read it. `total` equals the runbook's COUNT(*) over the window; "
        "`eligible` what a dry run of the window (with the defaults) reports.",
    ),
    Operation(
        "post",
        "/api/ramps/executions/dismiss-batch",
        "Dismiss failed executions without replay (dry run unless dry_run is false)",
        request=Body(
            DismissRequestSchema,
            examples={
                "handled": {"execution_uuids": ["0b9d2f4e-5c1a-4e8b-9f3d-7a6c5b4e3d21"], "reason": "handled by hand"}
            },
        ),
        responses={200: DismissResponseSchema, **errors(400, 401, 403, 413, 415, 429, 503)},
        security=ADMIN,
    ),
    Operation(
        "post",
        JOBS,
        "Start a retry job: a paced background drain with an automatic brake",
        request=Body(RetryJobRequestSchema, shapes=RETRY_JOB_SHAPES),
        responses={
            202: RetryJobSchema,
            200: RetryJobSchema,
            **errors(400, 401, 403, 404, 410, 413, 415, 422, 429, 503),
        },
        security=ADMIN,
        parameters=[_IDEMPOTENCY_KEY],
        description="202 with a Location header naming the job; 200 for a repeated Idempotency-Key.",
    ),
    Operation(
        "get",
        JOBS,
        "Retry jobs, newest first",
        responses={200: RetryJobListSchema, **errors(400, 401, 403, 429, 503)},
        security=ADMIN,
        parameters=_JOB_LIST_QUERY,
    ),
    Operation(
        "get",
        JOBS + "/{job_id}",
        "One retry job: state, progress, rate, ETA, recent errors",
        responses={200: RetryJobSchema, **errors(401, 403, 404, 429, 503)},
        security=ADMIN,
        parameters=[_JOB_ID],
    ),
    *(
        Operation(
            "post",
            JOBS + "/{job_id}/" + action,
            f"{action.capitalize()} a retry job",
            request=Body(ControlRequestSchema, examples={"why": {"reason": "CRM flapping"}}),
            responses={200: RetryJobSchema, **errors(400, 401, 403, 404, 409, 413, 415, 429, 503)},
            security=ADMIN,
            parameters=[_JOB_ID],
            description="409 invalid_transition when the job's state does not allow it.",
        )
        for action in ("pause", "resume", "cancel")
    ),
    Operation(
        "post",
        "/api/ramps/{ramp_uuid}/trigger",
        "CRM webhook: start an execution of the ramp",
        request=Body(
            TriggerRequestSchema,
            examples={
                "deal_won": {
                    "trigger_key": "deal-42",
                    "data": {"company": {"id": "c-1", "name": "Globex"}, "owner": {"email": "owner@example.com"}},
                }
            },
        ),
        # 200: a re-delivery of a trigger key that already succeeded (nothing ran again).
        responses={201: TriggerResponseSchema, 200: TriggerResponseSchema, **errors(400, 401, 404, 409, 413, 415, 503)},
        parameters=[
            {"name": "ramp_uuid", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
            {
                "name": "X-Onramp-Signature",
                "in": "header",
                "required": True,
                "description": "sha256=<hex HMAC-SHA256 of the raw body with the integration's secret>",
                "schema": {"type": "string"},
            },
        ],
    ),
)
